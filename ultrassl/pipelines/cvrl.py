"""Data recipe of CVRL pretraining (METHODS.md section 2); CATE reuses it.

Per item: two clips of T frames at stride s from one video, their start gap drawn by
:class:`~ultrassl.transforms.temporal.PairSampler` (``"decreasing"`` density by default;
``"uniform"`` and ``"increasing"`` for the ablation); loaded, converted to ``in_channels`` and
sector-masked (ultrasound); then each view gets its own draw of the strong augmentation, the
same for all its frames (or per frame, ``per_frame=True``, CVRL's ablation):

* random resized crop to ``size`` (area ``crop_scale`` 0.3-1, aspect ``crop_ratio`` 0.5-2) and
  a horizontal flip (p ``flip_prob``);
* natural video: colour jitter (p 0.8; brightness, contrast, saturation 0.8, hue 0.2) and
  grayscale (p 0.2); ultrasound: brightness/contrast/gamma
  (:class:`~ultrassl.transforms.intensity.RandUltrasoundIntensity`, p 0.8) instead;
* Gaussian blur (sigma 0.1-2 px, kernel 10 % of the side) with p 1.0 on view 1 and 0.1 on
  view 2, solarisation with p 0 on view 1 and 0.2 on view 2 (the asymmetric pair);

and normalised. Views: ``view1`` and ``view2``, float32 ``(C, T, H, W)``, with the draws
recorded under ``"view{1,2}_params"`` (``temporal``, ``resized_crop``, ``flip``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai.transforms import Compose, Transform

from ultrassl.pipelines.base import ClipPipeline
from ultrassl.transforms.intensity import (
    RandGaussianBlurClipd,
    RandSolarizeClipd,
)
from ultrassl.transforms.temporal import GapDistribution, PairSampler

VIEWS = ("view1", "view2")


class CVRLPipeline(ClipPipeline):
    """Two temporally distant clips of one video, each strongly augmented.

    Args:
        num_frames: T frames per view.
        stride: s, frames between consecutive frames of a view (at ``target_fps`` when given).
        strides: when given, each view draws its own stride from this set instead of ``stride``
            (playback-speed augmentation, e.g. ``[1, 2, 4]``; CATE's speed encoding reads it);
            None keeps CVRL's one fixed stride.
        gap: start-gap distribution of the pair: ``"decreasing"``, ``"uniform"``, ``"increasing"``.
        max_gap: largest start gap in frames (at ``target_fps`` when given); None: the whole
            video (CVRL). 0 takes both views from the same frames (SimCLR's positives).
        per_frame: draw every augmentation per frame instead of per clip (ablation).
        crop_scale: range of the crop's area as a fraction of the frame's.
        crop_ratio: range of the crop's aspect ratio (width / height).
        flip_prob: probability of a horizontal flip per view.
        color_prob: probability of the colour jitter (natural) or intensity jitter (ultrasound).
        brightness, contrast, saturation, hue: colour jitter strengths (natural video).
        grayscale_prob: probability of grayscale (natural video).
        gamma: gamma jitter strength (ultrasound; brightness and contrast as above).
        blur_prob: probabilities of the Gaussian blur on (view 1, view 2).
        blur_sigma: range of the blur's sigma in pixels (of the output size).
        solarize_prob: probabilities of solarisation on (view 1, view 2).
        **kwargs: loading and finishing options of :class:`ClipPipeline` (``modality``,
            ``in_channels``, ``size``, ``mask_sector``, ``mean``, ``std`` ...).
    """

    def __init__(
        self,
        num_frames: int = 16,
        stride: int = 2,
        gap: GapDistribution = "decreasing",
        per_frame: bool = False,
        crop_scale: tuple[float, float] = (0.3, 1.0),
        crop_ratio: tuple[float, float] = (0.5, 2.0),
        flip_prob: float = 0.5,
        color_prob: float = 0.8,
        brightness: float = 0.8,
        contrast: float = 0.8,
        saturation: float = 0.8,
        hue: float = 0.2,
        grayscale_prob: float = 0.2,
        gamma: float = 0.3,
        blur_prob: tuple[float, float] = (1.0, 0.1),
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        solarize_prob: tuple[float, float] = (0.0, 0.2),
        strides: Sequence[int] | None = None,
        max_gap: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if self.keep_sector_mask:
            raise ValueError(
                f"{type(self).__name__} crops its two views independently, so one sector mask cannot "
                "follow both; set keep_sector_mask: false"
            )
        self.num_frames = num_frames
        self.stride = stride
        self.strides = None if strides is None else [int(s) for s in strides]
        self.gap = gap
        self.max_gap = max_gap
        self.per_frame = per_frame
        self.set_jitter(crop_scale, crop_ratio, flip_prob, color_prob, brightness, contrast, saturation, hue,
                        grayscale_prob, gamma)
        self.blur_prob = _pair(blur_prob, "blur_prob")
        self.blur_sigma = tuple(blur_sigma)
        self.solarize_prob = _pair(solarize_prob, "solarize_prob")
        # Built once here so that bad options fail when the config is read, not in a worker.
        self.sampler()
        self.augment_steps()

    def sampler(self) -> PairSampler:
        return PairSampler(
            self.num_frames, self.stride, gap=self.gap, strides=self.strides, max_gap=self.max_gap,
            **self.sampler_options()
        )

    def view_steps(self, view: str, index: int) -> list[Transform]:
        """The strong augmentation of one view; ``index`` 0 or 1 picks the blur/solarise pair."""
        per_frame = self.per_frame
        steps = self.jitter_steps(view, per_frame=per_frame)
        steps += [
            RandGaussianBlurClipd(view, sigma=self.blur_sigma, prob=self.blur_prob[index], per_frame=per_frame),
            RandSolarizeClipd(view, prob=self.solarize_prob[index], per_frame=per_frame),
        ]
        return steps

    def augment_steps(self) -> list[Transform]:
        return [step for index, view in enumerate(VIEWS) for step in self.view_steps(view, index)]

    def train_transform(self) -> Compose:
        return Compose(self.load_steps(self.sampler(), VIEWS) + self.augment_steps() + self.finish_steps(VIEWS))

    def val_transform(self) -> Compose:
        # The contrastive loss needs two augmented views; the data module seeds every
        # validation item the same way in every epoch, so the held-out loss is comparable.
        return self.train_transform()


def _pair(value: Any, name: str) -> tuple[float, float]:
    pair = tuple(float(v) for v in value)
    if len(pair) != 2 or not all(0.0 <= v <= 1.0 for v in pair):
        raise ValueError(f"{name} needs two probabilities in [0, 1] (view 1, view 2), got {value!r}")
    return pair
