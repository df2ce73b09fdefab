"""The query clip played backwards, as a negative of contrastive video objectives.

Instance discrimination on video is solved by appearance whenever each clip looks like no
other: nothing in VTDL's, CATE's or CEP's published pretexts then asks the encoder which way
time runs, and on classes that are time reversals of each other (the motion clips' MoveLeft
and MoveRight) their features carry no more of the direction than a random network's (README,
"Transfer benchmark"). A clip and its time reversal hold the same frames, so they can only be
told apart by the order of the frames; scoring the reversal as a negative of the clip makes the
arrow of time part of the pretext (the arrow-of-time pretexts of Wei et al., CVPR 2018, and
the temporal-transformation negatives of Jenni et al., ECCV 2020, ask the same). This is an
extension, off by default in every objective, not part of the papers' recipes.

Written here because it is one flip of the time axis; no library names it.
"""

from __future__ import annotations

import torch

#: The time axis of a batch of clips ``(B, C, T, H, W)``.
TIME_AXIS = 2


def reversed_in_time(clips: torch.Tensor) -> torch.Tensor:
    """Clips ``(B, C, T, H, W)`` with their frames in reverse order (a copy)."""
    if clips.ndim != 5:
        raise ValueError(f"expected clips (B, C, T, H, W), got shape {tuple(clips.shape)}")
    return torch.flip(clips, dims=(TIME_AXIS,))
