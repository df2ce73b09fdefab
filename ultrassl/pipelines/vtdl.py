"""Data recipe of VTDL pretraining (METHODS.md section 3).

Per item: a temporal triplet from one video (:class:`~ultrassl.transforms.temporal.TripletSampler`):
``anchor`` and ``positive`` from the same start, ``negative`` from another start; loaded,
converted to ``in_channels`` and sector-masked (ultrasound). Then, per view, its own draw:

* with ``basic_augmentation`` (VTDL's BA): random resized crop to ``size``, horizontal flip,
  and colour jitter + grayscale (natural video) or brightness/contrast/gamma (ultrasound),
  the same for every frame of the view; without it, every view is only resized (the anchor
  and positive are then the same frames);
* with ``tca``, temporal consistent augmentation on the anchor
  (:class:`~ultrassl.transforms.tca.RandTemporalConsistentAugmentd`, ``lam ~ U(0, tca_lam_max)``);

and normalised. Views: ``anchor``, ``positive``, ``negative``, float32 ``(C, T, H, W)``, with the
draws recorded under ``"{view}_params"`` (``temporal`` with ``negative_far_enough``, ``tca`` ...).
"""

from __future__ import annotations

from typing import Any

from monai.transforms import Compose, Transform

from ultrassl.pipelines.base import ClipPipeline
from ultrassl.transforms.tca import RandTemporalConsistentAugmentd
from ultrassl.transforms.temporal import TripletSampler

VIEWS = ("anchor", "positive", "negative")


class VTDLPipeline(ClipPipeline):
    """Anchor, positive and temporal negative of one video, with BA and TCA switches.

    Args:
        num_frames: T frames per view.
        stride: frames between consecutive frames of a view (at ``target_fps`` when given).
        min_negative_gap: the negative starts at least this many frames from the anchor where
            the video allows (else its sample is masked by the objective).
        basic_augmentation: crop, flip and colour/intensity jitter per view (BA).
        tca: temporal consistent augmentation on the anchor.
        tca_lam_max: upper end of TCA's blending weight (0.1).
        crop_scale: range of the crop's area as a fraction of the frame's.
        crop_ratio: range of the crop's aspect ratio (width / height).
        flip_prob: probability of a horizontal flip per view.
        color_prob: probability of the colour (natural) or intensity (ultrasound) jitter.
        brightness, contrast, saturation, hue: jitter strengths (MoCo v2's 0.4, 0.4, 0.4, 0.1).
        grayscale_prob: probability of grayscale (natural video).
        gamma: gamma jitter strength (ultrasound).
        **kwargs: loading and finishing options of :class:`ClipPipeline` (``modality``,
            ``in_channels``, ``size``, ``mask_sector``, ``mean``, ``std`` ...).
    """

    def __init__(
        self,
        num_frames: int = 16,
        stride: int = 2,
        min_negative_gap: int = 2,
        basic_augmentation: bool = True,
        tca: bool = True,
        tca_lam_max: float = 0.1,
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
        if self.keep_sector_mask and basic_augmentation:
            raise ValueError(
                "VTDLPipeline crops its three views independently, so one sector mask cannot follow "
                "them; set keep_sector_mask: false"
            )
        self.num_frames = num_frames
        self.stride = stride
        self.min_negative_gap = min_negative_gap
        self.basic_augmentation = basic_augmentation
        self.tca = tca
        self.tca_lam_max = tca_lam_max
        self.set_jitter(crop_scale, crop_ratio, flip_prob, color_prob, brightness, contrast, saturation, hue,
                        grayscale_prob, gamma)
        # Built once here so that bad options fail when the config is read, not in a worker.
        self.sampler()
        self.augment_steps()

    def sampler(self) -> TripletSampler:
        return TripletSampler(self.num_frames, self.stride, self.min_negative_gap, **self.sampler_options())

    def view_steps(self, view: str) -> list[Transform]:
        """Basic augmentation of one view (its own draws)."""
        return self.jitter_steps(view)

    def augment_steps(self) -> list[Transform]:
        if self.basic_augmentation:
            steps = [step for view in VIEWS for step in self.view_steps(view)]
        else:
            steps = self.resize_steps(VIEWS)
        if self.tca:
            steps.append(RandTemporalConsistentAugmentd("anchor", lam_max=self.tca_lam_max))
        return steps

    def train_transform(self) -> Compose:
        return Compose(self.load_steps(self.sampler(), VIEWS) + self.augment_steps() + self.finish_steps(VIEWS))

    def val_transform(self) -> Compose:
        # The loss needs the augmented triplet; the data module seeds validation items the
        # same way in every epoch, so the held-out loss is comparable.
        return self.train_transform()
