"""Independent draws per frame instead of per clip (CVRL's frame-wise augmentation ablation)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ultrassl.transforms.base import ClipRandomizable


class PerFrame(ClipRandomizable):
    """Apply a clip transform to each frame with its own random draw.

    Every frame gets an independent draw of ``transform`` (including whether it fires, with
    the transform's own ``prob``), so the augmentation is no longer consistent over time.
    The record keeps the wrapped transform's name and holds one parameter dict per frame::

        {"applied": True, "per_frame": True, "frames": [params of frame 0, ...]}

    The dictionary twin applies the same per-frame draws to every key; those keys must have
    as many frames as the first one (a static ``(1, 1, H, W)`` mask cannot follow per-frame
    draws and raises).

    Args:
        transform: the per-clip transform to draw per frame.
    """

    def __init__(self, transform: ClipRandomizable):
        super().__init__(prob=1.0)
        self.transform = transform
        self.name = transform.name

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.transform.set_random_state(state=self.R)
        return self

    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        channels, n_frames, height, width = shape
        frames = []
        for _ in range(n_frames):
            # mirrors ClipRandomizable.randomize, for a one-frame clip
            fire_frame = bool(self.transform.R.random_sample() < self.transform.prob)
            frame_params = self.transform.draw((channels, 1, height, width), fire_frame)
            frames.append({"applied": fire_frame, **frame_params})
        return {"per_frame": True, "frames": frames}

    def apply(self, clip: torch.Tensor, params: Mapping[str, Any], mode: str | None = None) -> torch.Tensor:
        frames = params["frames"]
        if clip.shape[1] != len(frames):
            raise ValueError(
                f"PerFrame({type(self.transform).__name__}) drew {len(frames)} frames but was given "
                f"a clip of {clip.shape[1]} frames, shape {tuple(clip.shape)}"
            )
        extra = {} if mode is None else {"mode": mode}
        out = []
        for t, frame_params in enumerate(frames):
            frame = clip[:, t : t + 1]
            if frame_params["applied"]:
                frame = self.transform.apply(frame, frame_params, **extra)
            out.append(frame)
        return torch.cat(out, dim=1)
