"""Data recipe of anatomy-aware order + geometry pretraining (METHODS.md section 1).

Per item: N frames ``spacing`` frames apart (:class:`SpacedFramesSampler`), loaded, converted
to ``in_channels``, sector-masked (ultrasound) and resized; then

* ``mode="parallel"``: copied into ``order_clip`` (frames shuffled by
  :class:`RandPermuteFramesd`) and ``geometry_clip`` (one :class:`RandAffineClipd` on every
  frame);
* ``mode="sequential"``: one ``clip``, transformed by the affine, then shuffled;

and normalised. The labels are the recorded draws, read by
:class:`ultrassl.objectives.order_geometry.OrderGeometry`:
``"{order_key}_params"["permutation"]["index"]`` and ``"{geometry_key}_params"["affine"]``
(``normalised``: 6 values in [-1, 1], or ``class_index`` with ``discrete_rotations``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from monai.transforms import Compose, Transform

from ultrassl.pipelines.base import SECTOR_MASK, ClipPipeline, SplitViewd
from ultrassl.transforms.intensity import RandUltrasoundIntensityd
from ultrassl.transforms.pretext import RandPermuteFramesd
from ultrassl.transforms.spatial import RandAffineClipd
from ultrassl.transforms.temporal import SpacedFramesSampler
from ultrassl.transforms.ultrasound import SectorMaskd


class OrderGeometryPipeline(ClipPipeline):
    """N spaced frames, shuffled for the order task and warped for the geometry task.

    Args:
        num_frames: N frames per clip (the order task has N!/2 classes; 12 for N = 4).
        spacing: k, frames between consecutive frames (at ``target_fps`` when given).
        mode: ``"parallel"`` (two views ``order_clip`` / ``geometry_clip``) or
            ``"sequential"`` (one view ``clip``, warped and shuffled); must match the model.
        rotate_range_deg, scale_range, shear_range, translate_range, flip_prob: ranges of the
            affine drawn once per clip (see :class:`~ultrassl.transforms.spatial.RandAffineClip`).
        discrete_rotations: angles (degrees) for the classification variant of the geometry
            task, e.g. ``[0, 90, 180, 270]``; None for regression.
        padding_mode: fill outside the warped frame (``"zeros"``, ``"border"``, ``"reflection"``).
        intensity_prob: probability of a gain/contrast/gamma jitter per view (0: off).
        warp_within_sector: after the affine, blank the warped view outside the scan sector
            found before warping, so that the sector's edges stay where they were and the
            transform can only be read from the anatomy inside (ultrasound with
            ``mask_sector``). Without it the rotated fan's straight edges give the rotation away.
        **kwargs: loading and finishing options of :class:`ClipPipeline` (``modality``,
            ``in_channels``, ``size``, ``mask_sector``, ``mean``, ``std`` ...).
    """

    def __init__(
        self,
        num_frames: int = 4,
        spacing: int = 4,
        mode: Literal["parallel", "sequential"] = "parallel",
        rotate_range_deg: float | tuple[float, float] = 30.0,
        scale_range: float | tuple[float, float] = 0.15,
        shear_range: float | tuple[float, float] = 0.1,
        translate_range: float | tuple[float, float] = 0.0,
        flip_prob: float = 0.5,
        discrete_rotations: Sequence[float] | None = None,
        padding_mode: Literal["zeros", "border", "reflection"] = "zeros",
        intensity_prob: float = 0.0,
        warp_within_sector: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if warp_within_sector and not self.mask_sector:
            raise ValueError("warp_within_sector needs the scan sector: set mask_sector (ultrasound)")
        self.warp_within_sector = bool(warp_within_sector)
        if mode not in ("parallel", "sequential"):
            raise ValueError(f"mode must be 'parallel' or 'sequential', got {mode!r}")
        self.num_frames = num_frames
        self.spacing = spacing
        self.mode = mode
        self.affine_options = dict(
            rotate_range_deg=rotate_range_deg, scale_range=scale_range, shear_range=shear_range,
            translate_range=translate_range, flip_prob=flip_prob,
            discrete_rotations=None if discrete_rotations is None else list(discrete_rotations),
            padding_mode=padding_mode,
        )
        self.intensity_prob = intensity_prob
        # Built once here so that bad options fail when the config is read, not in a worker.
        self._pretext_steps()

    @property
    def order_key(self) -> str:
        return "order_clip" if self.mode == "parallel" else "clip"

    @property
    def geometry_key(self) -> str:
        return "geometry_clip" if self.mode == "parallel" else "clip"

    @property
    def image_keys(self) -> tuple[str, ...]:
        return ("order_clip", "geometry_clip") if self.mode == "parallel" else ("clip",)

    def sampler(self) -> SpacedFramesSampler:
        return SpacedFramesSampler(self.num_frames, self.spacing, **self.sampler_options())

    def _pretext_steps(self) -> list[Transform]:
        steps: list[Transform] = []
        if self.mode == "parallel":
            steps.append(SplitViewd("clip", self.image_keys))
        if self.intensity_prob > 0:
            # One draw per view: the two parallel views need not share their gain.
            steps += [RandUltrasoundIntensityd(key, prob=self.intensity_prob) for key in self.image_keys]
        affine = RandAffineClipd(self.geometry_key, **self.affine_options)
        shuffle = RandPermuteFramesd(self.order_key, num_frames=self.num_frames)
        steps += [affine, shuffle]
        if self.warp_within_sector:
            # the mask found on the unwarped frames (kept in the sample since loading)
            steps.append(SectorMaskd(keys=self.geometry_key, mask_key=SECTOR_MASK))
        return steps

    def train_transform(self) -> Compose:
        return Compose(
            self.load_steps(self.sampler(), "clip")
            + self.resize_steps("clip")
            + self._pretext_steps()
            + self.finish_steps(self.image_keys)
        )

    def val_transform(self) -> Compose:
        # The labels are random draws, so validation draws too; the data module seeds every
        # validation item the same way in every epoch, so the held-out set is fixed.
        return self.train_transform()
