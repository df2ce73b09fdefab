"""Pipelines: the MONAI transform chains an objective or a downstream task needs.

A pipeline is a small typed class, selected in YAML under ``data.init_args.pipeline`` with
``class_path``/``init_args``, that builds two chains (:class:`monai.transforms.Compose`):
:meth:`Pipeline.train_transform` and :meth:`Pipeline.val_transform`. The data module
(:class:`ultrassl.data.datamodule.ManifestDataModule`) applies them to manifest rows and
seeds every item, so pipelines hold no randomness of their own.

:class:`ClipPipeline` is the base every recipe reuses. A recipe's chain is::

    self.load_steps(sampler, views)       # SampleFramesd -> LoadClipd -> ToChannelsClipd
                                          #   -> SectorMaskd (ultrasound, optional)
    + self.resize_steps(views)            # every frame (and the sector mask) to `size`
    + [objective-specific steps]          # crops, shuffles, affines ... recording params
    + self.finish_steps(image_keys)       # NormalizeClipd -> KeepCollatabled

so every item leaves as a dict whose entries collate with ``torch.utils.data.default_collate``:
clips float32 ``(C, T, H, W)`` normalised with ``mean``/``std`` (C = ``in_channels``,
H x W = ``size``), the drawn parameters under ``"{key}_params"`` (see
:mod:`ultrassl.transforms.base`), the manifest row's plain fields (``path`` ...), each view's
``"{view}_frame_indices"`` and ``"{view}_meta"``, and ``"sector_mask"`` ``(1, 1, H, W)`` when
``keep_sector_mask``.

Writing a recipe (e.g. ``ultrassl/pipelines/cvrl.py``)::

    class CVRLPipeline(ClipPipeline):
        def __init__(self, num_frames: int = 16, stride: int = 2, **kwargs):
            super().__init__(**kwargs)
            ...
        def train_transform(self) -> Compose:
            views = ("view1", "view2")
            return Compose(
                self.load_steps(PairSampler(self.num_frames, self.stride, **self.sampler_options()), views)
                + [RandResizedCropClipd(...), ...]        # recipe steps; use self.size
                + self.finish_steps(views)
            )

Recipes that change the frame size themselves (random resized crops) skip
:meth:`ClipPipeline.resize_steps`; recipes that keep the sector mask must move it with the
clip (give it to the spatial transforms as a second key with ``mode="nearest"``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from monai.transforms import MapTransform, Transform

from ultrassl.data.pipeline import Pipeline
from ultrassl.transforms.intensity import NormalizeClipd, ToChannelsClipd
from ultrassl.transforms.io import LoadClipd
from ultrassl.transforms.spatial import ResizeClipd, as_size
from ultrassl.transforms.temporal import ClipSampler, SampleFramesd, ShortClipPolicy
from ultrassl.transforms.ultrasound import SectorMaskd

Modality = Literal["ultrasound", "natural"]

#: the sample entry holding the scan-sector mask ``(1, 1, H, W)`` (ultrasound)
SECTOR_MASK = "sector_mask"

#: per-channel intensity statistics used when none are given (Kinetics-400's, the usual
#: choice for video backbones; for grayscale the mean of the three)
DEFAULT_MEAN = {1: (0.45,), 3: (0.45, 0.45, 0.45)}
DEFAULT_STD = {1: (0.225,), 3: (0.225, 0.225, 0.225)}


class ClipPipeline(Pipeline):
    """Shared loading and finishing steps for clips read from a manifest.

    Args:
        modality: ``"ultrasound"`` (sector masking on by default) or ``"natural"`` video.
        in_channels: channels the model takes: 1 (grayscale) or 3 (RGB). Clips are converted
            on load (RGB -> gray by ITU-R BT.601 luma, gray -> RGB by repetition), so a data
            set may mix grayscale DICOM and colour video.
        size: frame size ``(height, width)`` in pixels (or one int for square frames).
        mask_sector: blank everything outside the scan sector (burned-in text, overlays)
            with :class:`~ultrassl.transforms.ultrasound.SectorMaskd`; default: True for
            ultrasound, False for natural video (where it is refused).
        sector_mode: how the sector is found (``"auto"``, ``"temporal"``, ``"intensity"``).
        sector_loop_frames: find the sector once per file on this many frames spread over the
            loop (:class:`~ultrassl.transforms.ultrasound.LoopSector`), where speckle moves and
            burned-in text stays, rather than on the few sampled frames, where text beside the
            fan can join it; 0 detects on the sampled frames.
        keep_sector_mask: keep the mask in the sample (``"sector_mask"``, resized with the
            clip); by default it is dropped after masking.
        mean, std: per-channel normalisation (one value or ``in_channels`` values);
            default :data:`DEFAULT_MEAN` / :data:`DEFAULT_STD`.
        resize_mode: interpolation of clips (``"bilinear"``, ``"area"``, ``"bicubic"``).
        antialias: low-pass filter before shrinking (bilinear and bicubic).
        target_fps: reference frame rate of the samplers' strides (None: in file frames).
        short_clip: what samplers do with videos too short for a clip
            (``"reduce_stride"``, ``"pad"``, ``"error"``).
        loop_cache_mb: MB of whole decoded loops each loading process keeps in memory
            (:func:`~ultrassl.io.cache.shared_loop_cache`: the loaders of a process share one
            cache); 0 (default) decodes every read. Worth it when the decoded data set fits
            (the simulated benchmarks), not for an archive.
    """

    def __init__(
        self,
        modality: Modality = "ultrasound",
        in_channels: int = 1,
        size: int | tuple[int, int] = (112, 112),
        mask_sector: bool | None = None,
        sector_mode: Literal["auto", "temporal", "intensity"] = "auto",
        sector_loop_frames: int = 16,
        keep_sector_mask: bool = False,
        mean: float | list[float] | None = None,
        std: float | list[float] | None = None,
        resize_mode: Literal["bilinear", "area", "bicubic"] = "bilinear",
        antialias: bool = True,
        target_fps: float | None = None,
        short_clip: ShortClipPolicy = "reduce_stride",
        loop_cache_mb: float = 0.0,
    ):
        if modality not in ("ultrasound", "natural"):
            raise ValueError(f"modality must be 'ultrasound' or 'natural', got {modality!r}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels!r}")
        if mask_sector is None:
            mask_sector = modality == "ultrasound"
        if mask_sector and modality != "ultrasound":
            raise ValueError("mask_sector applies to ultrasound only; set mask_sector: false for natural video")
        if keep_sector_mask and not mask_sector:
            raise ValueError("keep_sector_mask needs mask_sector")
        self.modality = modality
        self.in_channels = int(in_channels)
        self.size = as_size(size)
        self.mask_sector = bool(mask_sector)
        self.sector_mode = sector_mode
        if sector_loop_frames < 0 or sector_loop_frames == 1:
            raise ValueError(f"sector_loop_frames must be 0 or >= 2, got {sector_loop_frames}")
        self.sector_loop_frames = int(sector_loop_frames)
        self.keep_sector_mask = keep_sector_mask
        self.mean = _per_channel(mean, DEFAULT_MEAN[self.in_channels], self.in_channels, "mean")
        self.std = _per_channel(std, DEFAULT_STD[self.in_channels], self.in_channels, "std")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {std!r}")
        self.resize_mode = resize_mode
        self.antialias = antialias
        self.target_fps = target_fps
        self.short_clip = short_clip
        if loop_cache_mb < 0:
            raise ValueError(f"loop_cache_mb must be >= 0, got {loop_cache_mb!r}")
        self.loop_cache_mb = float(loop_cache_mb)

    # ------------------------------------------------------------------ helpers for recipes
    def sampler_options(self) -> dict[str, Any]:
        """Keyword arguments every temporal sampler of this pipeline takes."""
        return {"target_fps": self.target_fps, "short_clip": self.short_clip}

    def load_steps(self, sampler: ClipSampler, views: str | Sequence[str] = ("clip",),
                   with_audio: bool = False) -> list[Transform]:
        """Choose frames, decode them, convert channels and mask the sector.

        After these steps each view ``v`` is float32 ``(in_channels, T, H0, W0)`` in [0, 1] at
        the file's frame size, with ``"{v}_frame_indices"``, ``"{v}_meta"`` and the sampler's
        record ``"{v}_params"["temporal"]``; with sector masking, ``"sector_mask"``
        ``(1, 1, H0, W0)`` is found on the first view and applied to all. With ``with_audio``
        each view's audio over its time span comes too (``"{v}_audio"``; a file without an
        audio track is a :class:`~ultrassl.errors.ClipReadError` naming it).
        """
        views = _as_keys(views)
        steps: list[Transform] = [
            SampleFramesd(sampler, view_keys=views),
            LoadClipd(view_keys=views, with_audio=with_audio, loop_cache_mb=self.loop_cache_mb),
            ToChannelsClipd(views, channels=self.in_channels),
        ]
        if self.mask_sector:
            steps.append(SectorMaskd(keys=views, mask_key=SECTOR_MASK, mode=self.sector_mode,
                                     loop_frames=self.sector_loop_frames))
        return steps

    def resize_steps(self, views: str | Sequence[str] = ("clip",)) -> list[Transform]:
        """Resize every frame of the views (and the sector mask, nearest) to ``size``."""
        views = _as_keys(views)
        keys, modes = list(views), [self.resize_mode] * len(views)
        if self.mask_sector:
            keys.append(SECTOR_MASK)
            modes.append("nearest")
        return [ResizeClipd(keys, self.size, mode=modes, antialias=self.antialias, allow_missing_keys=True)]

    def set_jitter(self, crop_scale: Sequence[float], crop_ratio: Sequence[float], flip_prob: float,
                   color_prob: float, brightness: float, contrast: float, saturation: float, hue: float,
                   grayscale_prob: float, gamma: float) -> None:
        """Store the settings of :meth:`jitter_steps` (a recipe's constructor passes its own)."""
        self.crop_scale = tuple(crop_scale)
        self.crop_ratio = tuple(crop_ratio)
        self.flip_prob = flip_prob
        self.color_prob = color_prob
        self.jitter = dict(brightness=brightness, contrast=contrast, saturation=saturation, hue=hue)
        self.grayscale_prob = grayscale_prob
        self.gamma = gamma

    def jitter_steps(self, keys: str | Sequence[str], masks: Sequence[str] = (),
                     per_frame: bool = False) -> list[Transform]:
        """One draw of clip-consistent augmentation shared by every clip in ``keys``: random
        resized crop to ``size`` and horizontal flip (``masks`` follow both, nearest), then colour
        jitter and grayscale (natural video) or brightness/contrast/gamma (ultrasound). With
        ``per_frame``, every frame gets its own draw instead (CVRL's ablation).

        Its settings come from :meth:`set_jitter`.
        """
        from ultrassl.transforms.intensity import RandColorJitterClipd, RandGrayscaleClipd, RandUltrasoundIntensityd
        from ultrassl.transforms.spatial import RandFlipClipd, RandResizedCropClipd

        images = list(_as_keys(keys))
        spatial = images + list(masks)
        modes = [self.resize_mode] * len(images) + ["nearest"] * len(masks)
        steps: list[Transform] = [
            RandResizedCropClipd(spatial, self.size, scale=self.crop_scale, ratio=self.crop_ratio, mode=modes,
                                 antialias=self.antialias, per_frame=per_frame),
            RandFlipClipd(spatial, prob=self.flip_prob, per_frame=per_frame),
        ]
        if self.modality == "natural":
            return steps + [RandColorJitterClipd(images, **self.jitter, prob=self.color_prob, per_frame=per_frame),
                            RandGrayscaleClipd(images, prob=self.grayscale_prob, per_frame=per_frame)]
        return steps + [RandUltrasoundIntensityd(images, brightness=self.jitter["brightness"],
                                                 contrast=self.jitter["contrast"], gamma=self.gamma,
                                                 prob=self.color_prob, per_frame=per_frame)]

    def finish_steps(self, image_keys: str | Sequence[str] = ("clip",)) -> list[Transform]:
        """Normalise the image keys and drop what would not collate (and the mask, unless kept)."""
        drop = () if self.keep_sector_mask else (SECTOR_MASK,)
        return [NormalizeClipd(_as_keys(image_keys), self.mean, self.std), KeepCollatabled(drop=drop)]


class KeepCollatabled(Transform):
    """Keep only the entries of a sample that ``default_collate`` can batch.

    Kept: tensors, numpy arrays of numbers, ints, floats, bools, strings, and dicts, lists
    and tuples made of these (transform records, metadata). Dropped: ``None``, objects
    (e.g. a cached :class:`~ultrassl.io.ClipInfo`), containers holding them, and the keys in
    ``drop``. Shapes are not checked: a recipe must bring every sample's tensors to one size.
    """

    def __init__(self, drop: Sequence[Hashable] = ()):
        self.drop = set(drop)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        return {k: v for k, v in data.items() if k not in self.drop and collatable(v)}


def collatable(value: Any) -> bool:
    """Whether ``default_collate`` can batch ``value`` (given equal shapes across samples)."""
    if isinstance(value, (torch.Tensor, bool, int, float, str)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf"
    if isinstance(value, np.generic):
        return value.dtype.kind in "biuf"
    if isinstance(value, Mapping):
        return all(collatable(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(collatable(v) for v in value)
    return False


class SplitViewd(MapTransform):
    """Copy one view into several, each with its own record, and drop the source.

    ``d[target] = d[source]`` and ``d[f"{target}_params"] = d[f"{source}_params"]`` (a
    copy) for every target; ``d[source]`` and its record are removed. Transforms never edit
    in place, so the targets can then be augmented independently (e.g. order and geometry
    views of the same frames).
    """

    def __init__(self, source: str, targets: Sequence[str]):
        super().__init__(keys=[source])
        self.source = source
        self.targets = tuple(targets)
        if not self.targets or source in self.targets:
            raise ValueError(f"targets must be non-empty and differ from the source, got {targets!r}")

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        clip = d.pop(self.source)
        record = d.pop(f"{self.source}_params", {})
        for target in self.targets:
            d[target] = clip
            d[f"{target}_params"] = {name: dict(fields) for name, fields in record.items()}
        return d


def _as_keys(views: str | Sequence[str]) -> tuple[str, ...]:
    keys = (views,) if isinstance(views, str) else tuple(views)
    if not keys:
        raise ValueError("name at least one view")
    return keys


def _per_channel(value: float | Sequence[float] | None, default: Sequence[float], channels: int, name: str) -> list[float]:
    if value is None:
        return [float(v) for v in default]
    values = [float(value)] if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) == 1:
        values = values * channels
    if len(values) != channels or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} needs 1 or {channels} finite values, got {value!r}")
    return values
