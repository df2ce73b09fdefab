"""Shared machinery of the clip transforms.

Conventions (every transform in :mod:`ultrassl.transforms` follows them):

* A clip is a float32 tensor ``(C, T, H, W)`` with values in [0, 1] until normalised;
  masks and maps that travel with it are ``(1, T, H, W)`` or ``(1, 1, H, W)`` (static).
* A random transform draws **one** set of parameters per call (per clip), in
  :meth:`ClipRandomizable.randomize`, using only ``self.R``; :meth:`ClipRandomizable.apply`
  is the fixed twin that applies given parameters. So every frame of a clip gets the
  same crop, flip, affine, speckle strength..., and the drawn parameters can be read back.
* The dictionary twin (``...d``) draws once and applies the same parameters to every
  key (clip, sector mask, saliency map), then records them in the sample under
  ``"{key}_params"[transform.name]`` as plain numbers and lists, with the same fields
  whether or not the transform fired, so that batches collate. Objectives build their
  labels (order, geometry, CATE tokens) from these records: after collation a number
  becomes a tensor ``(B,)`` and a list of P numbers becomes P tensors ``(B,)``, which
  :func:`batch_param` turns back into one tensor.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import MAX_SEED


def params_key(key: Hashable) -> str:
    """Name of the sample entry where the parameters drawn for ``key`` are recorded."""
    return f"{key}_params"


def record_params(sample: dict, key: Hashable, name: str, params: Mapping[str, Any]) -> None:
    """Record ``params`` under ``sample["{key}_params"][name]`` without mutating shared dicts."""
    pk = params_key(key)
    record = dict(sample.get(pk, {}))
    record[name] = dict(params)
    sample[pk] = record


def batch_param(batch: Mapping[str, Any], key: str, transform: str, field: str) -> torch.Tensor:
    """The collated parameter ``field`` drawn by ``transform`` for ``key``.

    Returns ``(B,)`` for a scalar field and ``(B, P)`` for a list field.
    Raises ``KeyError`` naming what is missing (e.g. the transform was not in the pipeline).
    """
    record: Any = batch
    for level, name in enumerate((params_key(key), transform, field)):
        if not isinstance(record, Mapping) or name not in record:
            path = "][".join(repr(n) for n in (params_key(key), transform, field)[: level + 1])
            found = sorted(map(str, record)) if isinstance(record, Mapping) else type(record).__name__
            raise KeyError(
                f"batch has no [{path}] (found {found}): the data pipeline must apply the "
                f"transform {transform!r} to {key!r}"
            )
        record = record[name]
    if isinstance(record, torch.Tensor):
        return record
    if isinstance(record, (list, tuple)) and record and isinstance(record[0], torch.Tensor):
        return torch.stack(list(record), dim=1)  # P tensors (B,) -> (B, P)
    return torch.as_tensor(record)


def check_clip(clip: torch.Tensor | np.ndarray, who: str) -> None:
    """Raise a clear error unless ``clip`` is a (C, T, H, W) array."""
    if clip.ndim != 4:
        raise ValueError(
            f"{who} expects a clip of shape (C, T, H, W), got {tuple(clip.shape)} "
            f"({clip.ndim} dimensions)"
        )


class Reseedable(Randomizable):
    """A MONAI ``Randomizable`` whose ``set_random_state(seed=...)`` reseeds its own generator.

    MONAI makes a new ``np.random.RandomState`` for every seed, and NumPy seeds a new one from
    the operating system's entropy before the seed is applied: about 0.2 ms each. The data
    module reseeds every random step of the pipeline for every item (so that a resumed or
    rerun epoch draws the same augmentations), five generators an item in the demo's
    pretraining pipeline, which made seeding a tenth of a data-loading step. Reseeding the generator this object made for an
    earlier seed gives the same stream (NumPy's legacy seeding, as the constructor does) in
    about 3 us. A generator handed in with ``state=`` may be shared and is never reseeded in
    place: the next seed makes a new one, as MONAI does. Where a transform passes its own
    generator to an inner one (``state=self.R``), both see the reseeded stream, as both saw
    the new one before.
    """

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        if seed is None:
            return super().set_random_state(seed, state)
        value = np.int64(id(seed) if not isinstance(seed, (int, np.integer)) else seed) % MAX_SEED  # MONAI's rule
        own = self.__dict__.get("_own_generator")
        if own is not None and self.__dict__.get("R") is own:
            own.seed(value)
        else:
            own = self._own_generator = np.random.RandomState(value)
        self.R = own
        return self


class ClipRandomizable(Reseedable, Transform):
    """Base of random clip transforms: one draw per clip, a fixed twin, readable parameters.

    Subclasses implement :meth:`draw` (uses ``self.R`` only) and :meth:`apply`.

    Args:
        prob: probability that the transform fires; when it does not, :meth:`draw`'s
            ``"applied"`` field is False and :meth:`apply` returns the clip unchanged.
    """

    #: the name under which the drawn parameters are recorded
    name: str = ""

    def __init__(self, prob: float = 1.0):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must lie in [0, 1], got {prob}")
        self.prob = prob
        self.params: dict[str, Any] = {}

    def randomize(self, clip: torch.Tensor) -> None:
        fire = bool(self.R.random_sample() < self.prob)
        self.params = {"applied": fire, **self.draw(tuple(clip.shape), fire)}

    @abstractmethod
    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        """Parameters for a clip of ``shape`` (C, T, H, W); neutral values when not ``fire``."""

    @abstractmethod
    def apply(self, clip: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        """Apply the given parameters to every frame of ``clip`` (C, T, H, W)."""

    def __call__(self, clip: torch.Tensor, randomize: bool = True) -> torch.Tensor:
        check_clip(clip, type(self).__name__)
        if randomize:
            self.randomize(clip)
        if not self.params:
            raise RuntimeError(f"{type(self).__name__} has no parameters: call randomize first")
        if not self.params["applied"]:
            return clip
        return self.apply(clip, self.params)


class ClipRandomizableD(Reseedable, MapTransform):
    """Dictionary twin of a :class:`ClipRandomizable`: one draw, applied to every key.

    The draw is made from the first key's shape (the clip); other keys (masks, maps) get
    the same parameters, so they stay aligned with the clip.
    """

    def __init__(self, keys: KeysCollection, transform: ClipRandomizable, allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.transform = transform

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.transform.set_random_state(state=self.R)
        return self

    def randomize(self, data: Any = None) -> None:
        self.transform.randomize(data)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        keys = [k for k in self.key_iterator(d)]
        if not keys:
            return d
        self.randomize(d[keys[0]])
        params = self.transform.params
        for key in keys:
            check_clip(d[key], type(self).__name__)
            if params["applied"]:
                d[key] = self.transform.apply(d[key], params)
            record_params(d, key, self.transform.name, params)
        return d


def as_list(value: Sequence[float] | np.ndarray | torch.Tensor) -> list[float]:
    """Plain Python floats, so recorded parameters collate and serialise."""
    return [float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1)]
