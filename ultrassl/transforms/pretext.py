"""Pretext transforms whose drawn parameters are the labels of an objective.

Frame-order prediction (anatomy-aware order + geometry): :class:`RandPermuteFrames` shuffles
the frames of a clip and records which of the ``N! / 2`` order classes it applied. A frame
order and its reverse are one class, because the direction of an ultrasound sweep is
ambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from itertools import permutations
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection

from ultrassl.transforms.base import ClipRandomizable, ClipRandomizableD


@lru_cache(maxsize=None)
def _order_classes(num_frames: int) -> tuple[tuple[tuple[int, ...], ...], dict[tuple[int, ...], int]]:
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    # itertools yields permutations in lexicographic order, so the first member met of each
    # {p, time_reversed(p)} pair is the lexicographically smaller one: the class's representative.
    representatives: list[tuple[int, ...]] = []
    class_of: dict[tuple[int, ...], int] = {}
    for perm in permutations(range(num_frames)):
        if perm not in class_of:
            class_of[perm] = class_of[time_reversed(perm)] = len(representatives)
            representatives.append(perm)
    return tuple(representatives), class_of


def time_reversed(perm: Sequence[int]) -> tuple[int, ...]:
    """The permutation that shows the same frames as ``perm`` when the clip runs backwards.

    With output frame ``i`` = input frame ``perm[i]``, shuffling the time-reversed clip by
    ``q[i] = N - 1 - perm[i]`` gives exactly the frames ``perm`` gives on the clip itself.
    A sweep can go either way through the anatomy, so the frames alone cannot tell ``perm``
    from ``q``: they are one order class. (Reversing the *positions*, ``perm[::-1]``, is not
    that ambiguity: the model sees positions, and merging those pairs caps the best possible
    accuracy at 2/3 for N = 4.)
    """
    n = len(perm)
    return tuple(n - 1 - int(p) for p in perm)


def permutation_classes(num_frames: int) -> list[tuple[int, ...]]:
    """The frame-order classes of ``num_frames`` frames, one representative each.

    Each class is a permutation and its :func:`time_reversed` partner (the same frames shown
    by the clip run backwards); the representative is the lexicographically smaller of the two, and classes are numbered in lexicographic order of their
    representatives (class 0 is the identity). ``N! / 2`` classes for N >= 2 (12 for N = 4).
    """
    return list(_order_classes(num_frames)[0])


def permutation_class(perm: Sequence[int]) -> int:
    """Class id (index into :func:`permutation_classes`) of the frame order ``perm``.

    ``perm`` and :func:`time_reversed` ``(perm)`` have the same class.
    """
    key = tuple(int(p) for p in perm)
    class_of = _order_classes(len(key))[1]
    if key not in class_of:
        raise ValueError(f"{list(key)} is not a permutation of 0..{len(key) - 1}")
    return class_of[key]


class RandPermuteFrames(ClipRandomizable):
    """Shuffle the frames of a clip with a random permutation, the same for every channel.

    Output frame ``i`` is input frame ``permutation[i]``. Static maps (T = 1) pass unchanged.
    Every permutation is equally likely, hence every order class (each holds two permutations).

    Recorded parameters (name ``"permutation"``):
        ``applied`` (bool), ``permutation`` (list of N ints), ``index`` (int, the order class,
        see :func:`permutation_class`); when the transform does not fire, the identity and
        its class 0.

    Args:
        num_frames: N, the number of frames every clip must have (>= 3: with 2 frames the
            only order and its reverse are one class).
        prob: probability of shuffling.
    """

    name = "permutation"

    def __init__(self, num_frames: int = 4, prob: float = 1.0):
        super().__init__(prob)
        if num_frames < 3:
            raise ValueError(f"order prediction needs num_frames >= 3, got {num_frames}")
        self.num_frames = num_frames

    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        self._check_frames(shape[1])
        perm = self.R.permutation(self.num_frames) if fire else np.arange(self.num_frames)
        perm_list = [int(p) for p in perm]
        return {"permutation": perm_list, "index": permutation_class(perm_list)}

    def apply(self, clip: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        """``clip`` (C, T, H, W) with its frames reordered by ``params["permutation"]``."""
        if clip.shape[1] == 1:
            return clip
        self._check_frames(clip.shape[1])
        perm = list(params["permutation"])
        if isinstance(clip, torch.Tensor):
            return clip.index_select(1, torch.as_tensor(perm, device=clip.device))
        return clip[:, perm]

    def _check_frames(self, frames: int) -> None:
        if frames != self.num_frames:
            raise ValueError(
                f"RandPermuteFrames(num_frames={self.num_frames}) got a clip of {frames} frames; "
                "sample exactly num_frames frames per clip (e.g. with SpacedFramesSampler)"
            )


class RandPermuteFramesd(ClipRandomizableD):
    """Dictionary twin of :class:`RandPermuteFrames`: one permutation for every key.

    Recorded under ``sample["{key}_params"]["permutation"]`` for each key.

    Args:
        keys: keys of the clips (and masks/maps with T = N frames) to shuffle together.
        num_frames: N, see :class:`RandPermuteFrames`.
        prob: probability of shuffling.
        allow_missing_keys: do not fail when a key is absent.
    """

    def __init__(self, keys: KeysCollection, num_frames: int = 4, prob: float = 1.0,
                 allow_missing_keys: bool = False):
        super().__init__(keys, RandPermuteFrames(num_frames=num_frames, prob=prob), allow_missing_keys)
