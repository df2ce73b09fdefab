"""Data recipe of standard plane detection (frame-level, SonoNet style).

Per item: a clip of ``clip_frames`` consecutive frames (``clip_stride`` apart) from a random
start; the label is that of its centre frame, position ``clip_frames // 2``
(:class:`~ultrassl.downstream.plane_detection.PlaneDetection` reads it). Frame backbones take
``clip_frames = 1``; clip backbones a few frames around the labelled one.

Chain: ``SampleFramesd`` -> ``LoadClipd`` -> channels -> sector mask (ultrasound) ->
:class:`~ultrassl.data.annotations.LoadFrameAnnotationsd` (``clip_frame_labels`` ``(T,)``) ->
resize -> intensity jitter (training, ``intensity_prob``) -> normalise. Validation draws the
same way; the data module seeds validation items identically every epoch.

:meth:`PlaneDetectionPipeline.cine_transform` loads a whole cine loop (every frame) with its
labels, for per-frame predictions over the loop (:mod:`ultrassl.downstream.cine`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.transforms import Compose, Transform

from ultrassl.data.annotations import LoadFrameAnnotationsd
from ultrassl.pipelines.base import ClipPipeline
from ultrassl.transforms.intensity import RandUltrasoundIntensityd
from ultrassl.transforms.temporal import ClipSampler, ClipSampling, UniformClipSampler


def read_class_names(classes: Sequence[str] | str | os.PathLike | None) -> list[str]:
    """Class names in label order: a list as given, a text file with one name per line
    (e.g. the simulated data's ``planes.txt``), or None for Background + SonoNet's 13 planes."""
    if classes is None:
        from ultrassl.synth.fetal_sweep import PLANE_CLASSES

        return list(PLANE_CLASSES)
    if isinstance(classes, (str, os.PathLike)):
        path = Path(classes)
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if len(names) < 2:
            raise ValueError(f"{path}: a class list needs at least two names, one per line")
        return names
    return [str(c) for c in classes]


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


class PlaneDetectionPipeline(ClipPipeline):
    """Labelled frames (or short clips around them) for standard plane detection.

    Args:
        classes: class names in label order, a file of names, or None (Background + the 13
            SonoNet planes); sidecars naming classes are mapped through it.
        clip_frames: frames per item (1 for frame backbones; e.g. 4 for a 3D backbone).
        clip_stride: frames between consecutive frames of an item.
        intensity_prob: probability of a brightness/contrast/gamma jitter per training item.
        **kwargs: loading and finishing options of :class:`ClipPipeline` (``modality``,
            ``in_channels``, ``size``, ``mask_sector``, ``mean``, ``std`` ...).
    """

    def __init__(
        self,
        classes: Sequence[str] | str | None = None,
        clip_frames: int = 1,
        clip_stride: int = 1,
        intensity_prob: float = 0.5,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if clip_frames < 1 or clip_stride < 1:
            raise ValueError(f"clip_frames and clip_stride must be >= 1, got {clip_frames}, {clip_stride}")
        self.classes = read_class_names(classes)
        self.clip_frames = int(clip_frames)
        self.clip_stride = int(clip_stride)
        self.intensity_prob = float(intensity_prob)

    def sampler(self) -> UniformClipSampler:
        return UniformClipSampler(self.clip_frames, self.clip_stride, random=True, **self.sampler_options())

    def annotation_steps(self) -> list[Transform]:
        """Frame labels of the sampled frames (``clip_frame_labels``)."""
        return [LoadFrameAnnotationsd("clip", frame_labels_key="frame_labels", fixations_key=None, classes=self.classes)]

    def train_transform(self) -> Compose:
        augment = [RandUltrasoundIntensityd("clip", prob=self.intensity_prob)] if self.intensity_prob > 0 else []
        return Compose(self.load_steps(self.sampler(), "clip") + self.annotation_steps()
                       + self.resize_steps("clip") + augment + self.finish_steps("clip"))

    def val_transform(self) -> Compose:
        return Compose(self.load_steps(self.sampler(), "clip") + self.annotation_steps()
                       + self.resize_steps("clip") + self.finish_steps("clip"))

    def cine_transform(self) -> Compose:
        """A whole loop: ``clip`` ``(C, N, H, W)`` with ``clip_frame_labels`` ``(N,)``."""
        return Compose(self.load_steps(AllFramesSampler(), "clip") + self.annotation_steps()
                       + self.resize_steps("clip") + self.finish_steps("clip"))
