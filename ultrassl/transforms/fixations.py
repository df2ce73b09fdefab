"""Gaze fixations that follow their clip through resizing.

Fixations (from :class:`~ultrassl.data.annotations.LoadFrameAnnotationsd`) are points
``(x, y)`` in pixels of the stored frame, pixel centres at integer coordinates. When the
clip is resized, the points must move with it: :class:`ResizeFixationsd` maps them to the
same place on the resized frame (:func:`ultrassl.metrics.saliency.scale_fixations`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.transforms import Transform

from ultrassl.metrics.saliency import scale_fixations
from ultrassl.transforms.spatial import as_size


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
