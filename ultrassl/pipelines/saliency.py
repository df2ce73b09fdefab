"""Data recipe of saliency prediction (sonographer gaze).

Per item: a clip of ``clip_frames`` consecutive frames from a random start, with the gaze
fixations of its frames; the model predicts the centre frame's (position
``clip_frames // 2``). Frame backbones take ``clip_frames = 1``.

Chain: ``SampleFramesd`` -> ``LoadClipd`` -> channels -> sector mask (ultrasound) ->
:class:`~ultrassl.data.annotations.LoadFrameAnnotationsd` (``clip_fixations`` ``(T, K, 2)``,
``clip_fixations_valid`` ``(T, K)``) -> :class:`~ultrassl.transforms.fixations.ResizeFixationsd`
(points to pixels of the resized frame) -> resize -> intensity jitter (training) ->
normalise. No spatial augmentation: it would have to move the gaze too.

:meth:`SaliencyPipeline.cine_transform` loads every frame of a loop with its fixations, for
scoring every frame of the held-out videos.
"""

from __future__ import annotations

from typing import Any

from monai.transforms import Compose, Transform

from ultrassl.data.annotations import MAX_FIXATIONS_PER_FRAME, LoadFrameAnnotationsd
from ultrassl.pipelines.base import ClipPipeline
from ultrassl.pipelines.plane_detection import AllFramesSampler
from ultrassl.transforms.fixations import ResizeFixationsd
from ultrassl.transforms.intensity import RandUltrasoundIntensityd
from ultrassl.transforms.temporal import UniformClipSampler


class SaliencyPipeline(ClipPipeline):
    """Frames (or short clips around them) with their gaze fixations.

    Args:
        clip_frames: frames per item (1 for frame backbones).
        clip_stride: frames between consecutive frames of an item.
        max_fixations: K, fixations kept per frame (more raise; see ``LoadFrameAnnotationsd``).
        intensity_prob: probability of a brightness/contrast/gamma jitter per training item.
        **kwargs: loading and finishing options of :class:`ClipPipeline`.
    """

    def __init__(
        self,
        clip_frames: int = 1,
        clip_stride: int = 1,
        max_fixations: int = MAX_FIXATIONS_PER_FRAME,
        intensity_prob: float = 0.5,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if clip_frames < 1 or clip_stride < 1:
            raise ValueError(f"clip_frames and clip_stride must be >= 1, got {clip_frames}, {clip_stride}")
        self.clip_frames = int(clip_frames)
        self.clip_stride = int(clip_stride)
        self.max_fixations = int(max_fixations)
        self.intensity_prob = float(intensity_prob)

    def sampler(self) -> UniformClipSampler:
        return UniformClipSampler(self.clip_frames, self.clip_stride, random=True, **self.sampler_options())

    def annotation_steps(self) -> list[Transform]:
        """Fixations of the sampled frames, moved to pixels of the resized frame."""
        return [
            LoadFrameAnnotationsd("clip", frame_labels_key=None, fixations_key="fixations",
                                  max_fixations=self.max_fixations),
            ResizeFixationsd("clip", self.size),
        ]

    def train_transform(self) -> Compose:
        augment = [RandUltrasoundIntensityd("clip", prob=self.intensity_prob)] if self.intensity_prob > 0 else []
        return Compose(self.load_steps(self.sampler(), "clip") + self.annotation_steps()
                       + self.resize_steps("clip") + augment + self.finish_steps("clip"))

    def val_transform(self) -> Compose:
        return Compose(self.load_steps(self.sampler(), "clip") + self.annotation_steps()
                       + self.resize_steps("clip") + self.finish_steps("clip"))

    def cine_transform(self) -> Compose:
        """A whole loop: ``clip`` ``(C, N, H, W)``, ``clip_fixations`` ``(N, K, 2)``, ``clip_fixations_valid``."""
        return Compose(self.load_steps(AllFramesSampler(), "clip") + self.annotation_steps()
                       + self.resize_steps("clip") + self.finish_steps("clip"))
