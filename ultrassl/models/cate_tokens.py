"""CATE's augmentation encodings, built from the parameters the transforms recorded.

For a query view ``q`` and the other view ``o`` of the same video, each kind of encoding
describes how ``q`` was made relative to ``o`` (all zeros when the two were made alike,
which is what :func:`identity_tokens` gives the other view):

* ``"time"`` (1 value): ``(start_q - start_o) / time_scale_s``, start times in seconds from
  ``"{key}_params"["temporal"]["start_time_s"]``; where the frame rate is unknown (NaN), from
  ``start_frame / default_fps``.
* ``"crop"`` (4 values): the crop box of ``q`` in the coordinates of the box of ``o``, from
  ``["resized_crop"]["box_relative"]`` ``[y0, x0, h, w]`` (fractions of the frame):
  ``[(y0_q - y0_o) / h_o, (x0_q - x0_o) / w_o, log(h_q / h_o), log(w_q / w_o)]``.
* ``"flip"`` (1 value): 1 when exactly one of the two views was flipped
  (``["flip"]["flipped"]``), else 0.
* ``"speed"`` (1 value): ``log2`` of the ratio of the playback speeds, from the temporal
  ``stride`` (frames per step) and ``fps``; 0 for views sampled at one stride.

Batches are collated samples (see :func:`ultrassl.transforms.base.batch_param`); every value is a float
tensor ``(B, dim)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ultrassl.transforms.base import batch_param, params_key

#: values per encoding kind, in the order tokens are placed after the visual token
TOKEN_DIMS: dict[str, int] = {"time": 1, "crop": 4, "flip": 1, "speed": 1}

# names under which the data layer records its draws
_TEMPORAL, _CROP, _FLIP = "temporal", "resized_crop", "flip"


def check_token_kinds(kinds: Sequence[str]) -> list[str]:
    """``kinds`` as a list, after checking each is known and none repeats."""
    kinds = list(kinds)
    unknown = [k for k in kinds if k not in TOKEN_DIMS]
    if unknown:
        raise ValueError(f"unknown augmentation encodings {unknown}; choose from {list(TOKEN_DIMS)}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"augmentation encodings repeat: {kinds}")
    return kinds


def augmentation_tokens(
    batch: Mapping[str, Any],
    query_key: str,
    other_key: str,
    kinds: Sequence[str],
    time_scale_s: float = 1.0,
    default_fps: float = 30.0,
) -> dict[str, torch.Tensor]:
    """The encodings ``{kind: (B, TOKEN_DIMS[kind])}`` of ``query_key`` relative to ``other_key``."""
    builders = {"time": _time, "crop": _crop, "flip": _flip, "speed": _speed}
    tokens = {}
    for kind in check_token_kinds(kinds):
        _refuse_per_frame(batch, query_key, other_key, kind)
        value = builders[kind](batch, query_key, other_key, time_scale_s=time_scale_s, default_fps=default_fps)
        tokens[kind] = value.to(torch.float32).reshape(value.shape[0], TOKEN_DIMS[kind])
    return tokens


def identity_tokens(kinds: Sequence[str], batch_size: int, device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """The encodings of a view relative to itself: zeros ``(B, dim)`` for every kind."""
    return {kind: torch.zeros(batch_size, TOKEN_DIMS[kind], device=device) for kind in check_token_kinds(kinds)}


def _start_seconds(batch: Mapping[str, Any], key: str, default_fps: float) -> torch.Tensor:
    seconds = batch_param(batch, key, _TEMPORAL, "start_time_s").to(torch.float64)
    frames = batch_param(batch, key, _TEMPORAL, "start_frame").to(torch.float64)
    return torch.where(torch.isnan(seconds), frames / default_fps, seconds)


def _time(batch, query_key, other_key, time_scale_s: float, default_fps: float, **_) -> torch.Tensor:
    shift = _start_seconds(batch, query_key, default_fps) - _start_seconds(batch, other_key, default_fps)
    return shift / time_scale_s


def _crop(batch, query_key, other_key, **_) -> torch.Tensor:
    query = batch_param(batch, query_key, _CROP, "box_relative").to(torch.float64)
    other = batch_param(batch, other_key, _CROP, "box_relative").to(torch.float64)
    y_q, x_q, h_q, w_q = query.unbind(1)
    y_o, x_o, h_o, w_o = other.unbind(1)
    return torch.stack(
        [(y_q - y_o) / h_o, (x_q - x_o) / w_o, torch.log(h_q / h_o), torch.log(w_q / w_o)], dim=1
    )


def _flip(batch, query_key, other_key, **_) -> torch.Tensor:
    query = batch_param(batch, query_key, _FLIP, "flipped").to(torch.bool)
    other = batch_param(batch, other_key, _FLIP, "flipped").to(torch.bool)
    return (query ^ other).to(torch.float64)


def _speed(batch, query_key, other_key, default_fps: float, **_) -> torch.Tensor:
    def seconds_per_step(key: str) -> torch.Tensor:
        stride = batch_param(batch, key, _TEMPORAL, "stride").to(torch.float64)
        fps = batch_param(batch, key, _TEMPORAL, "fps").to(torch.float64)
        return stride / torch.where(torch.isnan(fps), torch.full_like(fps, default_fps), fps)

    return torch.log2(seconds_per_step(query_key) / seconds_per_step(other_key))


_TRANSFORM_OF = {"time": _TEMPORAL, "speed": _TEMPORAL, "crop": _CROP, "flip": _FLIP}


def _refuse_per_frame(batch: Mapping[str, Any], query_key: str, other_key: str, kind: str) -> None:
    for key in (query_key, other_key):
        record = batch.get(params_key(key), {}).get(_TRANSFORM_OF[kind], {})
        if isinstance(record, Mapping) and "per_frame" in record:
            raise ValueError(
                f"CATE encodes one {_TRANSFORM_OF[kind]!r} draw per clip, but {key!r} was augmented "
                "per frame; use clip-consistent augmentation (per_frame=False) with CATE"
            )
