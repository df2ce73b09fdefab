"""Temporal consistent augmentation (TCA, VTDL: Wang, Lin, Ma, Yuen 2020).

One static frame of the clip itself is blended into every frame:
``x'_t = (1 - lam) x_t + lam x_k`` with ``k`` fixed per clip and ``lam ~ U(0, lam_max)``.
The static part cancels in every time difference, ``x'_{t+1} - x'_t = (1 - lam)(x_{t+1} - x_t)``,
so the motion is kept (only scaled) while the appearance changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from monai.config import KeysCollection

from ultrassl.transforms.base import ClipRandomizable, ClipRandomizableD


class RandTemporalConsistentAugment(ClipRandomizable):
    """Blend one frame of the clip into all its frames with weight ``lam``.

    Recorded (name ``"tca"``): ``applied``, ``lam`` (0 when not applied), ``frame_index``
    (``k``, the blended frame, in ``[0, T)``).

    Args:
        lam_max: upper end of the uniform draw of ``lam`` (VTDL: 0.1), in [0, 1).
        prob: probability that the transform fires.
    """

    name = "tca"

    def __init__(self, lam_max: float = 0.1, prob: float = 1.0):
        super().__init__(prob)
        if not 0.0 <= lam_max < 1.0:
            raise ValueError(f"lam_max must lie in [0, 1), got {lam_max}")
        self.lam_max = float(lam_max)

    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        lam = float(self.R.uniform(0.0, self.lam_max))
        frame_index = int(self.R.randint(shape[1]))
        return {"lam": lam if fire else 0.0, "frame_index": frame_index}

    def apply(self, clip: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        """``(C, T, H, W)`` -> ``(C, T, H, W)``: ``(1 - lam) x_t + lam x_k`` for every t."""
        k, lam = int(params["frame_index"]), float(params["lam"])
        if not 0 <= k < clip.shape[1]:
            raise ValueError(f"TCA frame_index {k} is outside a clip of {clip.shape[1]} frames")
        return (1.0 - lam) * clip + lam * clip[:, k : k + 1]


class RandTemporalConsistentAugmentd(ClipRandomizableD):
    """Dictionary twin of :class:`RandTemporalConsistentAugment` (give it image keys, not masks)."""

    def __init__(
        self,
        keys: KeysCollection,
        lam_max: float = 0.1,
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, RandTemporalConsistentAugment(lam_max, prob), allow_missing_keys)
