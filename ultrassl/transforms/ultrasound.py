"""Ultrasound-specific transforms: scan-sector masking, speckle, depth attenuation.

* :class:`SectorMask` / :class:`MaskOutsideSector` / :class:`SectorMaskd` find the scan
  sector (see :func:`~ultrassl.transforms.sector.detect_sector`) and blank everything outside
  it, which removes burned-in text (patient details, dates, institution) and overlays.
  Run them first, on the clip as read, so that region bounds from the file still apply and
  the mask then travels with the clip through the spatial transforms.
* :class:`RandSpeckle` and :class:`RandDepthAttenuation` (and their ``...d`` twins) imitate
  what varies between scanners and settings: speckle strength and depth-dependent loss of
  brightness. One strength is drawn per clip, so every frame gets the same. Run them
  before geometric transforms: depth is measured from the probe, at the top of the clip as
  read (or at the apex of the sector mask).

Clips are float32 tensors ``(C, T, H, W)`` with values in [0, 1]; masks ``(1, 1, H, W)``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from ultrassl.transforms.base import ClipRandomizable, ClipRandomizableD, check_clip
from ultrassl.transforms.sector import (
    SECTOR_MODES,
    DepthGeometry,
    depth_geometry,
    depth_map,
    detect_sector,
    spread_frame_indices,
)

__all__ = [
    "DepthGeometry",
    "MaskOutsideSector",
    "RandDepthAttenuation",
    "RandDepthAttenuationd",
    "RandSpeckle",
    "RandSpeckled",
    "SectorMask",
    "SectorMaskd",
    "depth_geometry",
    "depth_map",
    "detect_sector",
    "mask_outside",
]


def _as_tensor(clip: torch.Tensor | np.ndarray) -> torch.Tensor:
    return clip if isinstance(clip, torch.Tensor) else torch.as_tensor(np.asarray(clip))


def _mask_tensor(mask: np.ndarray | torch.Tensor) -> torch.Tensor:
    """A sector mask as float32 ``(1, T|1, H, W)``; ``(H, W)`` masks are expanded."""
    mask = _as_tensor(mask).to(torch.float32)
    if mask.ndim == 2:
        mask = mask[None, None]
    if mask.ndim != 4 or mask.shape[0] != 1:
        raise ValueError(f"a sector mask must be (H, W) or (1, T|1, H, W), got {tuple(mask.shape)}")
    return mask


def mask_outside(
    clip: torch.Tensor, mask: np.ndarray | torch.Tensor, fill_value: float = 0.0
) -> torch.Tensor:
    """``clip * mask + fill_value * (1 - mask)``: keep the sector, fill the rest.

    Args:
        clip: ``(C, T, H, W)``.
        mask: ``(H, W)`` or ``(1, T|1, H, W)``, 1 inside the sector (fractional values, as
            left by interpolation, blend).
        fill_value: the value given to pixels outside the sector.
    """
    check_clip(clip, "mask_outside")
    clip = _as_tensor(clip)
    mask = _mask_tensor(mask).to(device=clip.device, dtype=clip.dtype)
    if mask.shape[-2:] != clip.shape[-2:]:
        raise ValueError(f"mask size {tuple(mask.shape[-2:])} differs from clip size {tuple(clip.shape[-2:])}")
    masked = clip * mask
    return masked if fill_value == 0 else masked + fill_value * (1 - mask)


class SectorMask(Transform):
    """The scan sector of a clip, as a float32 mask ``(1, 1, H, W)`` (1 inside).

    Args:
        mode: ``"auto"``, ``"temporal"`` or ``"intensity"``; see :func:`detect_sector`.
        region_bounds: ``(x0, y0, x1, y1)`` pixels, inclusive, restricting the search
            (DICOM Sequence of Ultrasound Regions); may also be given per call.
        stroke_width, dark_level: see :func:`detect_sector`.
    """

    def __init__(
        self,
        mode: str = "auto",
        region_bounds: Sequence[float] | None = None,
        stroke_width: int | None = None,
        dark_level: float | None = None,
    ):
        if mode not in SECTOR_MODES:
            raise ValueError(f"mode must be one of {SECTOR_MODES}, got {mode!r}")
        self.mode = mode
        self.region_bounds = region_bounds
        self.stroke_width = stroke_width
        self.dark_level = dark_level

    def __call__(
        self, clip: torch.Tensor | np.ndarray, region_bounds: Sequence[float] | None = None
    ) -> torch.Tensor:
        """``clip``: float ``(C, T, H, W)`` in [0, 1] (or uint8 ``(T, H, W, C)`` frames)."""
        sector = detect_sector(
            clip,
            mode=self.mode,
            region_bounds=region_bounds if region_bounds is not None else self.region_bounds,
            stroke_width=self.stroke_width,
            dark_level=self.dark_level,
        )
        return torch.from_numpy(sector.astype(np.float32))[None, None]


class MaskOutsideSector(Transform):
    """Fill everything outside the scan sector of a clip ``(C, T, H, W)``.

    Args:
        mode, region_bounds, stroke_width, dark_level: how the sector is found, see
            :class:`SectorMask`.
        fill_value: the value given to pixels outside the sector.
    """

    def __init__(
        self,
        mode: str = "auto",
        fill_value: float = 0.0,
        region_bounds: Sequence[float] | None = None,
        stroke_width: int | None = None,
        dark_level: float | None = None,
    ):
        self.find_sector = SectorMask(mode, region_bounds, stroke_width, dark_level)
        self.fill_value = fill_value

    def __call__(self, clip: torch.Tensor, mask: np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
        """Mask ``clip`` with ``mask`` (``(H, W)`` or ``(1, T|1, H, W)``), found when not given."""
        check_clip(clip, type(self).__name__)
        if mask is None:
            mask = self.find_sector(clip)
        return mask_outside(clip, mask, self.fill_value)


_LOOP_SECTORS: OrderedDict[tuple, np.ndarray] = OrderedDict()  # every LoopSector of the process
_LOOP_SECTORS_LOCK = threading.Lock()


class LoopSector:
    """The scan sector of a whole file, found once per process and kept while the file is
    unchanged (the instances of a process share what they found: each run of a benchmark
    builds its own transforms over the same files).

    A clip of one or a few frames says little about which pixels are the sector: in a single
    frame a line of burned-in text next to the fan (thickened by video coding) joins it, and the
    hull then takes in the patient's name. Over frames spread through the loop, speckle moves
    and overlays stay, so temporal detection separates them; the DICOM Sequence of Ultrasound
    Regions, when the file has one, restricts the search. The sector of a cine loop does not
    move, so one detection serves every clip drawn from the file.

    Args:
        num_frames: frames read, evenly spread over the loop (all of a shorter loop).
        mode, stroke_width, dark_level: see :func:`detect_sector`.
        max_files: masks the process keeps (least recently used dropped first); a mask is one
            byte a pixel.
    """

    def __init__(self, num_frames: int = 16, mode: str = "auto", stroke_width: int | None = None,
                 dark_level: float | None = None, max_files: int = 4096):
        if num_frames < 2:
            raise ValueError(f"a loop's sector needs num_frames >= 2, got {num_frames}")
        self.num_frames = int(num_frames)
        self.mode = mode
        self.stroke_width = stroke_width
        self.dark_level = dark_level
        self.max_files = int(max_files)

    def __call__(self, path: str, info: Any | None = None) -> np.ndarray:
        """Boolean ``(H, W)`` sector of the file at ``path`` (``info``: its probe, if known)."""
        from ultrassl.io import probe_clip, read_clip

        from ultrassl.io.packed import clip_stamp

        key = (clip_stamp(path), self.num_frames, self.mode, self.stroke_width, self.dark_level)
        with _LOOP_SECTORS_LOCK:
            if key in _LOOP_SECTORS:
                _LOOP_SECTORS.move_to_end(key)
                return _LOOP_SECTORS[key]
        info = info if info is not None else probe_clip(path)
        frames = read_clip(path, spread_frame_indices(info.n_frames, self.num_frames), info=info).frames
        regions = (info.metadata or {}).get("us_regions") or None
        sector = detect_sector(frames, mode=self.mode, region_bounds=regions, stroke_width=self.stroke_width,
                               dark_level=self.dark_level)
        sector.setflags(write=False)  # shared: no caller may change another's mask
        with _LOOP_SECTORS_LOCK:
            _LOOP_SECTORS[key] = sector
            while len(_LOOP_SECTORS) > self.max_files:
                _LOOP_SECTORS.popitem(last=False)
        return sector


class SectorMaskd(MapTransform):
    """Find the scan sector of ``keys[0]``, store it under ``mask_key``, mask the clip(s).

    With ``loop_frames`` (and the sample's file under ``path_key``) the sector is that of the
    whole file (:class:`LoopSector`), found once per process, instead of that of the sampled
    frames; the mask must then match the clip's frame size (it does, before any resize;
    :func:`mask_outside` refuses a mismatch).

    Args:
        keys: the clip key(s); the sector is found on the first and applied to all.
        mask_key: where the float32 mask ``(1, 1, H, W)`` is stored. If the sample already
            holds it (a mask read from a cache or drawn by hand), that mask is used as is.
        region_key: optional key of region bounds restricting the search: ``(x0, y0, x1,
            y1)`` pixels inclusive, an ``(N, 4)`` array, or the DICOM reader's list of region
            dictionaries (``metadata["us_regions"]``); see :func:`detect_sector`. ``None`` or
            an empty list: no restriction.
        apply: multiply the clip(s) by the mask; when False only the mask is added.
        fill_value: the value given outside the sector.
        mode, stroke_width, dark_level: see :func:`detect_sector`.
        loop_frames: find the sector on this many frames spread over the whole file (0: on
            the sampled frames).
        path_key, info_key: entries holding the file's path and, optionally, its
            :class:`~ultrassl.io.ClipInfo` (for ``loop_frames``).
    """

    def __init__(
        self,
        keys: KeysCollection = "clip",
        mask_key: Hashable = "sector_mask",
        region_key: Hashable | None = None,
        mode: str = "auto",
        apply: bool = True,
        fill_value: float = 0.0,
        stroke_width: int | None = None,
        dark_level: float | None = None,
        allow_missing_keys: bool = False,
        loop_frames: int = 0,
        path_key: Hashable = "path",
        info_key: Hashable = "clip_info",
    ):
        super().__init__(keys, allow_missing_keys)
        if loop_frames < 0:
            raise ValueError(f"loop_frames must be >= 0, got {loop_frames}")
        self.loop_sector = LoopSector(loop_frames, mode, stroke_width, dark_level) if loop_frames else None
        self.path_key = path_key
        self.info_key = info_key
        if mask_key in self.keys:
            raise ValueError(f"mask_key {mask_key!r} must differ from the clip keys {self.keys}")
        self.mask_key = mask_key
        self.region_key = region_key
        self.find_sector = SectorMask(mode, None, stroke_width, dark_level)
        self.apply = apply
        self.fill_value = fill_value

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        if self.mask_key in d:
            mask = _mask_tensor(d[self.mask_key])
        elif self.loop_sector is not None and d.get(self.path_key):
            sector = self.loop_sector(str(d[self.path_key]), d.get(self.info_key))
            mask = torch.from_numpy(sector.astype(np.float32))[None, None]
        else:
            region = d.get(self.region_key) if self.region_key is not None else None
            mask = self.find_sector(d[keys[0]], region_bounds=region)
        d[self.mask_key] = mask
        if self.apply:
            for key in keys:
                d[key] = mask_outside(d[key], mask, self.fill_value)
        return d


class RandSpeckle(ClipRandomizable):
    """Multiplicative speckle: ``clip * n``, ``n ~ Gamma(1/sigma^2, sigma^2)`` (mean 1, std sigma).

    That is how the intensity of speckle averaged over ``1/sigma^2`` looks, so a small sigma
    imitates a smooth (compounded, filtered) image and a large one a grainy image. One
    ``sigma`` is drawn per clip (the same strength on every frame). By default the noise
    field itself is drawn afresh for every frame, because real speckle decorrelates as the
    probe and tissue move; with ``per_frame_noise=False`` one field is frozen over the clip.
    The field is shared by the channels (speckle is in the echo amplitude, not the colour
    map). Pixels at 0 (outside the sector) stay 0; the result is clipped to [0, 1].

    Args:
        sigma_range: range of the noise's standard deviation, drawn uniformly per clip.
        prob: probability that the transform fires.
        per_frame_noise: a new noise field on every frame (True) or one for the clip.

    Recorded parameters: ``sigma``, ``noise_seed`` (the seed of the noise fields, so
    :meth:`apply` reproduces the output exactly) and ``per_frame_noise``.
    """

    name = "speckle"

    def __init__(
        self,
        sigma_range: tuple[float, float] = (0.05, 0.3),
        prob: float = 1.0,
        per_frame_noise: bool = True,
    ):
        super().__init__(prob)
        low, high = (float(v) for v in sigma_range)
        if not 0.0 < low <= high:
            raise ValueError(f"sigma_range must satisfy 0 < low <= high, got {sigma_range}")
        self.sigma_range = (low, high)
        self.per_frame_noise = bool(per_frame_noise)

    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        if not fire:
            return {"sigma": 0.0, "noise_seed": 0, "per_frame_noise": self.per_frame_noise}
        return {
            "sigma": float(self.R.uniform(*self.sigma_range)),
            "noise_seed": int(self.R.randint(0, 2**31 - 1)),
            "per_frame_noise": self.per_frame_noise,
        }

    @staticmethod
    def noise(shape: tuple[int, ...], sigma: float, noise_seed: int, per_frame_noise: bool) -> torch.Tensor:
        """The multiplicative field ``(1, T|1, H, W)`` float32 for a clip of ``shape`` (C, T, H, W)."""
        _, n_frames, height, width = shape
        frames = n_frames if per_frame_noise else 1
        if sigma <= 0:
            return torch.ones((1, frames, height, width))
        rng = np.random.default_rng(int(noise_seed))
        looks = 1.0 / sigma**2
        field = rng.gamma(looks, 1.0 / looks, size=(1, frames, height, width))
        return torch.from_numpy(field.astype(np.float32))

    def apply(self, clip: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        clip = _as_tensor(clip)
        field = self.noise(tuple(clip.shape), float(params["sigma"]), int(params["noise_seed"]),
                           bool(params["per_frame_noise"]))
        return (clip * field.to(device=clip.device, dtype=clip.dtype)).clamp(0.0, 1.0)


class RandSpeckled(ClipRandomizableD):
    """Dictionary twin of :class:`RandSpeckle`; list only image keys (not masks)."""

    def __init__(
        self,
        keys: KeysCollection = "clip",
        sigma_range: tuple[float, float] = (0.05, 0.3),
        prob: float = 1.0,
        per_frame_noise: bool = True,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, RandSpeckle(sigma_range, prob, per_frame_noise), allow_missing_keys)


class RandDepthAttenuation(ClipRandomizable):
    """Brightness falling with depth: ``clip * exp(-alpha * depth)``, one ``alpha`` per clip.

    ``depth`` is the normalised distance from the probe (0 at the probe, 1 at the deepest
    point; see :func:`depth_map`): by row from the top of the image, or, when a sector mask
    is given, by distance from the apex of the fan. This imitates tissue attenuation left
    uncorrected by the scanner's time-gain compensation (TGC). With probability
    ``inverse_prob`` the sign of ``alpha`` is flipped, brightening with depth like an
    over-set TGC; the result is clipped to [0, 1].

    Args:
        alpha_range: range of ``alpha`` (>= 0), drawn uniformly per clip; ``alpha = 1``
            leaves ``exp(-1) = 37%`` of the brightness at the deepest point.
        prob: probability that the transform fires.
        inverse_prob: probability that a drawn ``alpha`` is negated.

    Recorded parameters: ``alpha`` (signed) and the depth geometry (``radial``,
    ``origin_yx``, ``depth_range``, see :class:`DepthGeometry`), so :meth:`apply` reproduces
    the output exactly.
    """

    name = "depth_attenuation"

    def __init__(
        self,
        alpha_range: tuple[float, float] = (0.0, 1.0),
        prob: float = 1.0,
        inverse_prob: float = 0.0,
    ):
        super().__init__(prob)
        low, high = (float(v) for v in alpha_range)
        if not 0.0 <= low <= high:
            raise ValueError(f"alpha_range must satisfy 0 <= low <= high, got {alpha_range}")
        if not 0.0 <= inverse_prob <= 1.0:
            raise ValueError(f"inverse_prob must lie in [0, 1], got {inverse_prob}")
        self.alpha_range = (low, high)
        self.inverse_prob = inverse_prob
        #: the probe's geometry for the next draw; None: the top of the image
        self.geometry: DepthGeometry | None = None

    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        geometry = (self.geometry or DepthGeometry.top_of_image(shape[-2])).as_params()
        if not fire:
            return {"alpha": 0.0, **geometry}
        alpha = float(self.R.uniform(*self.alpha_range))
        if self.inverse_prob > 0 and self.R.random_sample() < self.inverse_prob:
            alpha = -alpha
        return {"alpha": alpha, **geometry}

    def gain(self, height: int, width: int, params: Mapping[str, Any]) -> torch.Tensor:
        """The factor ``exp(-alpha * depth)``, ``(H, W)`` float32."""
        depth = depth_map(height, width, DepthGeometry.from_params(params))
        return torch.exp(-float(params["alpha"]) * depth)

    def apply(self, clip: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        clip = _as_tensor(clip)
        gain = self.gain(clip.shape[-2], clip.shape[-1], params).to(device=clip.device, dtype=clip.dtype)
        return (clip * gain).clamp(0.0, 1.0)

    def __call__(
        self,
        clip: torch.Tensor,
        randomize: bool = True,
        sector_mask: np.ndarray | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attenuate ``clip``; with ``sector_mask`` (``(H, W)`` or ``(1, T|1, H, W)``) depth is
        measured from the sector's apex (used when drawing, i.e. when ``randomize``)."""
        if sector_mask is not None and randomize:
            self.geometry = depth_geometry(sector_mask)
        try:
            return super().__call__(clip, randomize)
        finally:
            if sector_mask is not None:
                self.geometry = None


class RandDepthAttenuationd(ClipRandomizableD):
    """Dictionary twin of :class:`RandDepthAttenuation`.

    Args:
        keys: image keys only (a mask must not be attenuated).
        mask_key: optional key of a sector mask (e.g. from :class:`SectorMaskd`); when the
            sample holds it, depth is measured from the sector's apex.
        alpha_range, prob, inverse_prob: see :class:`RandDepthAttenuation`.
    """

    def __init__(
        self,
        keys: KeysCollection = "clip",
        mask_key: Hashable | None = None,
        alpha_range: tuple[float, float] = (0.0, 1.0),
        prob: float = 1.0,
        inverse_prob: float = 0.0,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, RandDepthAttenuation(alpha_range, prob, inverse_prob), allow_missing_keys)
        if mask_key is not None and mask_key in self.keys:
            raise ValueError(f"mask_key {mask_key!r} must not be among the attenuated keys {self.keys}")
        self.mask_key = mask_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        mask = data.get(self.mask_key) if self.mask_key is not None else None
        self.transform.geometry = None if mask is None else depth_geometry(mask)
        try:
            return super().__call__(data)
        finally:
            self.transform.geometry = None
