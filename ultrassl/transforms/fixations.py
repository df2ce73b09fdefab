"""Gaze fixations that follow their clip through resizing.

Fixations (from :class:`~ultrassl.transforms.annotations.LoadFrameAnnotationsd`) are points
``(x, y)`` in pixels of the stored frame, pixel centres at integer coordinates. When the
clip is resized, the points must move with it: :class:`ResizeFixationsd` maps them to the
same place on the resized frame (:func:`scale_fixations`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.transforms import Transform

from ultrassl.transforms.spatial import as_size


def scale_fixations(
    fixations: torch.Tensor, from_shape: tuple[int, int], to_shape: tuple[int, int]
) -> torch.Tensor:
    """Points ``(..., 2)`` of (x, y) on a frame of ``from_shape`` (H, W) moved to the same
    place on a resized frame of ``to_shape``: ``x' = (x + 0.5) W' / W - 0.5`` (pixel centres
    at integers, edges at -0.5 and W - 0.5, as OpenCV's and torch's ``align_corners=False``
    resizing)."""
    fixations = torch.as_tensor(fixations)
    if not fixations.is_floating_point():
        fixations = fixations.to(torch.float32)
    scale = torch.tensor([to_shape[1] / from_shape[1], to_shape[0] / from_shape[0]], dtype=fixations.dtype)
    return (fixations + 0.5) * scale - 0.5


class ResizeFixationsd(Transform):
    """Move ``"{view}_fixations"`` ``(T, K, 2)`` from the view's current frame size to ``size``.

    Run it before the clip is resized (it reads the current size from ``d[view]``, ``(C, T,
    H, W)``); padded entries (``"{view}_fixations_valid"`` False) stay at (0, 0).
    The input dict is not modified.

    Args:
        view_keys: the views whose fixations to move.
        size: the frame size ``(height, width)`` the clip will be resized to.
    """

    def __init__(self, view_keys: str | tuple[str, ...] = ("clip",), size: int | tuple[int, int] = (112, 112)):
        self.view_keys = (view_keys,) if isinstance(view_keys, str) else tuple(view_keys)
        self.size = as_size(size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for view in self.view_keys:
            key = f"{view}_fixations"
            if key not in d:
                raise KeyError(f"ResizeFixationsd needs {key!r}: run LoadFrameAnnotationsd with fixations first")
            height, width = (int(s) for s in torch.as_tensor(d[view]).shape[-2:])
            moved = scale_fixations(torch.as_tensor(d[key], dtype=torch.float32), (height, width), self.size)
            valid = d.get(f"{view}_fixations_valid")
            if valid is not None:
                moved = moved * torch.as_tensor(valid, dtype=torch.bool)[..., None]
            d[key] = moved
        return d
