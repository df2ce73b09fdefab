"""Shared recipe of the frame-level downstream tasks (plane detection, saliency).

Per item: a clip of ``clip_frames`` consecutive frames (``clip_stride`` apart) from a random
start; the task predicts its centre frame, position ``clip_frames // 2``. Frame backbones take
``clip_frames = 1``; clip backbones a few frames around the annotated one.

Chain: ``SampleFramesd`` -> ``LoadClipd`` -> channels -> sector mask (ultrasound) -> the task's
annotation steps -> resize -> intensity jitter (training, ``intensity_prob``) -> normalise.
Validation draws the same way; the data module seeds validation items identically every
epoch. :meth:`AnnotatedFramesPipeline.cine_transform` loads a whole cine loop (every frame)
with its annotations, for per-frame predictions over the loop;
:meth:`AnnotatedFramesPipeline.inference_transform` the same without annotations.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from monai.transforms import Compose, Transform

from ultrassl.pipelines.base import ClipPipeline
from ultrassl.transforms.intensity import RandUltrasoundIntensityd
from ultrassl.transforms.temporal import ClipSampler, ClipSampling, UniformClipSampler


class AllFramesSampler(ClipSampler):
    """One view holding every ``stride``-th frame of the video, from frame 0 (whole cine loops).

    Recorded fields as the other samplers' (``num_frames`` is the loop's length).
    """

    def __init__(self, stride: int = 1):
        super().__init__(num_frames=1, stride=stride)

    def sample(self, n_frames: int, fps: float | None) -> ClipSampling:
        indices = np.arange(0, n_frames, self.stride, dtype=np.int64)[None]
        params = {
            "view": 0, "start_frame": 0, "end_frame": int(indices[0, -1]), "stride": self.stride,
            "num_frames": int(indices.shape[1]), "start_time_s": 0.0 if fps else math.nan,
            "fps": float(fps) if fps else math.nan, "video_frames": int(n_frames),
            "stride_reduced": False, "padded": False,
        }
        return ClipSampling(indices, [params])


class AnnotatedFramesPipeline(ClipPipeline):
    """Annotated frames (or short clips around them); subclasses add :meth:`annotation_steps`.

    Args:
        clip_frames: frames per item (1 for frame backbones; e.g. 4 for a 3D backbone).
        clip_stride: frames between consecutive frames of an item.
        intensity_prob: probability of a brightness/contrast/gamma jitter per training item.
        **kwargs: loading and finishing options of :class:`ClipPipeline` (``modality``,
            ``in_channels``, ``size``, ``mask_sector``, ``mean``, ``std`` ...).
    """

    def __init__(self, clip_frames: int = 1, clip_stride: int = 1, intensity_prob: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        if clip_frames < 1 or clip_stride < 1:
            raise ValueError(f"clip_frames and clip_stride must be >= 1, got {clip_frames}, {clip_stride}")
        self.clip_frames = int(clip_frames)
        self.clip_stride = int(clip_stride)
        self.intensity_prob = float(intensity_prob)

    def sampler(self) -> UniformClipSampler:
        return UniformClipSampler(self.clip_frames, self.clip_stride, random=True, **self.sampler_options())

    def annotation_steps(self) -> list[Transform]:
        """The task's annotations of the sampled frames."""
        raise NotImplementedError

    def augment_steps(self) -> list[Transform]:
        """Training-time augmentation of the resized ``clip``: the intensity jitter. Only tasks
        whose labels do not move with the pixels may add spatial steps (saliency's fixations do)."""
        return [RandUltrasoundIntensityd("clip", prob=self.intensity_prob)] if self.intensity_prob > 0 else []

    def _chain(self, sampler: ClipSampler, augment: bool) -> Compose:
        return Compose(self.load_steps(sampler, "clip") + self.annotation_steps() + self.resize_steps("clip")
                       + (self.augment_steps() if augment else []) + self.finish_steps("clip"))

    def train_transform(self) -> Compose:
        return self._chain(self.sampler(), augment=True)

    def val_transform(self) -> Compose:
        return self._chain(self.sampler(), augment=False)

    def cine_transform(self) -> Compose:
        """A whole loop: ``clip`` ``(C, N, H, W)`` with the annotations of its N frames."""
        return self._chain(AllFramesSampler(), augment=False)

    def inference_transform(self) -> Compose:
        """A whole loop as the model sees it, without annotations (new clips): ``clip``
        ``(C, N, H, W)`` from an item ``{"path": ...}``."""
        sampler = AllFramesSampler()
        return Compose(self.load_steps(sampler, "clip") + self.resize_steps("clip") + self.finish_steps("clip"))
