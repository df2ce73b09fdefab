"""Data recipe of CEP pretraining (METHODS.md section 5).

Per item: one window of 3T frames at stride s from one video
(:class:`~ultrassl.transforms.temporal.PastCurrentFutureSampler`), cut into the ``past``,
``current`` and ``future`` snippets of T frames, plus an ``instance`` view of T frames of the
same window subsampled in order at stride 3s; loaded, converted to ``in_channels`` and
sector-masked (ultrasound). Then:

* the three snippets share one draw of the augmentation (random resized crop to ``size``,
  horizontal flip, colour jitter + grayscale for natural video or brightness/contrast/gamma for
  ultrasound), so that what differs between them is time alone, which the predictors model;
* the instance view gets its own draw, so the instance term learns what stays the same across
  crops and intensities;

and normalised. Views: ``past``, ``current``, ``future``, ``instance``, float32
``(C, T, H, W)``, with the draws under ``"{view}_params"`` (``temporal`` with ``segment`` and
``window_start``, ``resized_crop`` ...).
"""

from __future__ import annotations

from typing import Any

from monai.transforms import Compose, Transform

from ultrassl.pipelines.base import ClipPipeline
from ultrassl.transforms.temporal import PastCurrentFutureSampler

SNIPPETS = ("past", "current", "future")
INSTANCE = "instance"
VIEWS = (*SNIPPETS, INSTANCE)


class CEPPipeline(ClipPipeline):
    """Past, current and future snippets of one window, and a second view of the window.

    Args:
        num_frames: T frames per snippet and in the instance view.
        stride: s, frames between consecutive frames of a snippet (at ``target_fps`` when given).
        crop_scale: range of the crop's area as a fraction of the frame's.
        crop_ratio: range of the crop's aspect ratio (width / height).
        flip_prob: probability of a horizontal flip per draw.
        color_prob: probability of the colour (natural) or intensity (ultrasound) jitter.
        brightness, contrast, saturation, hue: jitter strengths.
        grayscale_prob: probability of grayscale (natural video).
        gamma: gamma jitter strength (ultrasound).
        **kwargs: loading and finishing options of :class:`ClipPipeline` (``modality``,
            ``in_channels``, ``size``, ``mask_sector``, ``mean``, ``std`` ...).
    """

    def __init__(
        self,
        num_frames: int = 8,
        stride: int = 1,
        crop_scale: tuple[float, float] = (0.3, 1.0),
        crop_ratio: tuple[float, float] = (0.75, 1.333),
        flip_prob: float = 0.5,
        color_prob: float = 0.8,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.1,
        grayscale_prob: float = 0.2,
        gamma: float = 0.3,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if self.keep_sector_mask:
            raise ValueError("CEPPipeline crops the instance view apart from the snippets, so one sector mask "
                             "cannot follow both; set keep_sector_mask: false")
        self.num_frames = num_frames
        self.stride = stride
        self.set_jitter(crop_scale, crop_ratio, flip_prob, color_prob, brightness, contrast, saturation, hue,
                        grayscale_prob, gamma)
        # Built once here so that bad options fail when the config is read, not in a worker.
        self.sampler()
        self.augment_steps()

    def sampler(self) -> PastCurrentFutureSampler:
        return PastCurrentFutureSampler(self.num_frames, self.stride, with_instance_view=True,
                                        **self.sampler_options())

    def augment_steps(self) -> list[Transform]:
        return self.jitter_steps(SNIPPETS) + self.jitter_steps(INSTANCE)

    def train_transform(self) -> Compose:
        return Compose(self.load_steps(self.sampler(), VIEWS) + self.augment_steps() + self.finish_steps(VIEWS))

    def val_transform(self) -> Compose:
        # The loss needs the augmented views; the data module seeds validation items the same
        # way in every epoch, so the held-out loss is comparable.
        return self.train_transform()
