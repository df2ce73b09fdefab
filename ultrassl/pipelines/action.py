"""Data recipe of action recognition (UCF101/HMDB51 layouts, the embedded motion clips).

Training item: one clip of ``num_frames`` frames ``stride`` apart from a random start, a
random resized crop to ``size`` (area ``crop_scale``) and a horizontal flip, the same for
every frame; normalised. The integer ``label`` comes from the manifest.

Evaluation item: ``num_test_clips`` evenly spaced clips covering the video
(:class:`~ultrassl.transforms.temporal.MultiClipSampler`), resized to ``size`` and stacked
into ``clip`` ``(N, C, T, H, W)``, for multi-clip test-time averaging
(:class:`~ultrassl.downstream.action.ActionRecognition`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.transforms import Compose, Transform

from ultrassl.pipelines.base import ClipPipeline
from ultrassl.transforms.spatial import RandFlipClipd, RandResizedCropClipd
from ultrassl.transforms.temporal import MultiClipSampler, UniformClipSampler


class StackViewsd(Transform):
    """Stack views ``(C, T, H, W)`` into one entry ``(N, C, T, H, W)``; the views are removed."""

    def __init__(self, view_keys: Sequence[str], output_key: str = "clip"):
        self.view_keys = tuple(view_keys)
        self.output_key = output_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        d[self.output_key] = torch.stack([torch.as_tensor(d.pop(view)) for view in self.view_keys])
        return d


class ActionPipeline(ClipPipeline):
    """Clips for action classification, several per video at evaluation.

    Args:
        num_frames: T frames per clip.
        stride: frames between consecutive frames (at ``target_fps`` when given).
        num_test_clips: N, evenly spaced clips per evaluation item (1: the centre clip).
        crop_scale: range of the training crop's area as a fraction of the frame's.
        flip_prob: probability of a horizontal flip per training clip.
        **kwargs: loading and finishing options of :class:`ClipPipeline`; ``modality``
            defaults to ``"natural"`` and ``in_channels`` to 3.
    """

    def __init__(
        self,
        num_frames: int = 8,
        stride: int = 2,
        num_test_clips: int = 3,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        flip_prob: float = 0.5,
        **kwargs: Any,
    ):
        kwargs.setdefault("modality", "natural")
        kwargs.setdefault("in_channels", 3)
        super().__init__(**kwargs)
        if num_test_clips < 1:
            raise ValueError(f"num_test_clips must be >= 1, got {num_test_clips}")
        self.num_frames = int(num_frames)
        self.stride = int(stride)
        self.num_test_clips = int(num_test_clips)
        self.crop_scale = tuple(float(s) for s in crop_scale)
        self.flip_prob = float(flip_prob)

    @property
    def test_views(self) -> tuple[str, ...]:
        return tuple(f"clip{i}" for i in range(self.num_test_clips))

    def train_transform(self) -> Compose:
        sampler = UniformClipSampler(self.num_frames, self.stride, random=True, **self.sampler_options())
        augment: list[Transform] = [RandResizedCropClipd("clip", self.size, scale=self.crop_scale, antialias=self.antialias)]
        if self.flip_prob > 0:
            augment.append(RandFlipClipd("clip", prob=self.flip_prob))
        return Compose(self.load_steps(sampler, "clip") + augment + self.finish_steps("clip"))

    def val_transform(self) -> Compose:
        views = self.test_views
        sampler = MultiClipSampler(self.num_test_clips, self.num_frames, self.stride, **self.sampler_options())
        return Compose(self.load_steps(sampler, views) + self.resize_steps(views) + self.finish_steps(views)
                       + [StackViewsd(views, "clip")])
