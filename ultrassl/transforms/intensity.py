"""Intensity clip transforms: one draw per clip, the same change on every frame.

Clips are float32 ``(C, T, H, W)`` in [0, 1] (C = 1 grayscale or 3 RGB); random transforms
keep values in [0, 1] and record what they drew (see :mod:`ultrassl.transforms.base`).
Where a statistic of the image is needed (the mean for contrast) it is taken over the whole
clip, so that every frame goes through the same fixed function and temporal differences
are only scaled, never mixed with per-frame statistics.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.networks.layers import gaussian_1d, separable_filtering
from monai.transforms import MapTransform, Transform

from ultrassl.threads import one_thread
from ultrassl.transforms.base import ClipRandomizable, ClipRandomizableD, check_clip
from ultrassl.transforms.per_frame import PerFrame

# ITU-R BT.601 luma weights, as TorchVision's rgb_to_grayscale
_LUMA = (0.299, 0.587, 0.114)


def _factor_interval(value: float | Sequence[float], name: str, lower: float = 0.0) -> tuple[float, float]:
    """``(lo, hi)`` from a pair, or ``[max(lower, 1 - value), 1 + value]`` from one number."""
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {value}")
        return max(lower, 1.0 - float(value)), 1.0 + float(value)
    lo, hi = (float(v) for v in value)
    if not lower <= lo <= hi:
        raise ValueError(f"{name} must be (low, high) with {lower} <= low <= high, got {value!r}")
    return lo, hi


def grayscale(clip: torch.Tensor) -> torch.Tensor:
    """Luminance ``(1, T, H, W)`` of a ``(C, T, H, W)`` clip (itself when C = 1)."""
    if clip.shape[0] == 1:
        return clip
    weights = torch.tensor(_LUMA, dtype=clip.dtype, device=clip.device).view(3, 1, 1, 1)
    return (clip * weights).sum(dim=0, keepdim=True)


def serial_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of every element of ``x``, summed on one thread.

    torch splits a reduction over more than 32,768 elements (an 8 x 64 x 80 clip) across its
    intra-op threads, and the partial sums round differently with their number: a clip built in
    a loading worker (one thread) and in the training process (several) would differ in the
    last bit, and the runs trained on them would drift apart. Summed on one thread, the mean is
    the same wherever the clip is built, and is what a worker has always computed.
    """
    with one_thread():
        return x.mean()


def adjust_brightness(clip: torch.Tensor, factor: float) -> torch.Tensor:
    """Multiply intensities by ``factor`` (a gain), clamped to [0, 1]."""
    return (clip * factor).clamp(0.0, 1.0)


def adjust_contrast(clip: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend with the clip's mean luminance: ``factor * x + (1 - factor) * mean``, clamped."""
    mean = serial_mean(grayscale(clip))
    return (factor * clip + (1.0 - factor) * mean).clamp(0.0, 1.0)


def adjust_gamma(clip: torch.Tensor, gamma: float) -> torch.Tensor:
    """``x ** gamma`` (gamma < 1 brightens the dark range)."""
    return clip.clamp(0.0, 1.0) ** gamma


def adjust_saturation(clip: torch.Tensor, factor: float) -> torch.Tensor:
    """Blend each pixel with its luminance; no change for one-channel clips."""
    if clip.shape[0] == 1:
        return clip
    return (factor * clip + (1.0 - factor) * grayscale(clip)).clamp(0.0, 1.0)


def adjust_hue(clip: torch.Tensor, shift: float) -> torch.Tensor:
    """Rotate the hue by ``shift`` turns (in [-0.5, 0.5]); no change for one-channel clips."""
    if clip.shape[0] == 1 or shift == 0.0:
        return clip
    hue, saturation, value = _rgb_to_hsv(clip.clamp(0.0, 1.0))
    return _hsv_to_rgb(torch.remainder(hue + shift, 1.0), saturation, value)


# Hue rotation is written by hand: MONAI has no colour-space operations and TorchVision
# (which has them) cannot be imported beside our torch. Same formulas as TorchVision's
# _rgb2hsv / _hsv2rgb, on channel-first tensors of any rank.


def _rgb_to_hsv(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    red, green, blue = rgb.unbind(0)
    maxc, minc = rgb.max(dim=0).values, rgb.min(dim=0).values
    flat = maxc == minc
    ones = torch.ones_like(maxc)
    chroma = maxc - minc
    saturation = chroma / torch.where(flat, ones, maxc)
    divisor = torch.where(flat, ones, chroma)
    rc, gc, bc = (maxc - red) / divisor, (maxc - green) / divisor, (maxc - blue) / divisor
    hr = (maxc == red) * (bc - gc)
    hg = ((maxc == green) & (maxc != red)) * (2.0 + rc - bc)
    hb = ((maxc != green) & (maxc != red)) * (4.0 + gc - rc)
    hue = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return hue, saturation, maxc


def _hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    sector = torch.floor(hue * 6.0)
    fraction = hue * 6.0 - sector
    sector = sector.to(torch.int64) % 6
    p = (value * (1.0 - saturation)).clamp(0.0, 1.0)
    q = (value * (1.0 - saturation * fraction)).clamp(0.0, 1.0)
    t = (value * (1.0 - saturation * (1.0 - fraction))).clamp(0.0, 1.0)
    candidates = torch.stack(
        (
            torch.stack((value, q, p, p, t, value)),
            torch.stack((t, value, value, q, p, p)),
            torch.stack((p, p, t, value, value, q)),
        )
    )  # (3, 6, ...): each channel's value in each of the six hue sectors
    onehot = torch.stack([sector == k for k in range(6)]).to(value.dtype)
    return (candidates * onehot.unsqueeze(0)).sum(dim=1)


def _with_per_frame(transform: ClipRandomizable, per_frame: bool) -> ClipRandomizable:
    return PerFrame(transform) if per_frame else transform


# --------------------------------------------------------------------------------------


class RandUltrasoundIntensity(ClipRandomizable):
    """Grayscale-appropriate intensity jitter: gain, contrast and gamma, one draw per clip.

    Applied in this order: brightness (multiplicative gain), contrast (blend with the clip's
    mean), gamma (``x ** gamma``). A single number ``r`` gives factors in
    ``[max(0, 1 - r), 1 + r]`` (gamma: ``[max(0.05, 1 - r), 1 + r]``); a pair gives the range.

    Recorded: ``brightness``, ``contrast``, ``gamma`` (1.0 each when not applied).
    """

    name = "intensity"

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.4,
        contrast: float | Sequence[float] = 0.4,
        gamma: float | Sequence[float] = 0.3,
        prob: float = 0.8,
    ):
        super().__init__(prob)
        self.brightness = _factor_interval(brightness, "brightness")
        self.contrast = _factor_interval(contrast, "contrast")
        self.gamma = _factor_interval(gamma, "gamma", lower=0.05)

    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        values = {
            "brightness": float(self.R.uniform(*self.brightness)),
            "contrast": float(self.R.uniform(*self.contrast)),
            "gamma": float(self.R.uniform(*self.gamma)),
        }
        return values if fire else {key: 1.0 for key in values}

    def apply(self, clip: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        clip = adjust_brightness(clip, params["brightness"])
        clip = adjust_contrast(clip, params["contrast"])
        return adjust_gamma(clip, params["gamma"])


class RandUltrasoundIntensityd(ClipRandomizableD):
    """Dictionary twin of :class:`RandUltrasoundIntensity` (give it image keys, not masks)."""

    def __init__(
        self,
        keys: KeysCollection,
        brightness: float | Sequence[float] = 0.4,
        contrast: float | Sequence[float] = 0.4,
        gamma: float | Sequence[float] = 0.3,
        prob: float = 0.8,
        per_frame: bool = False,
        allow_missing_keys: bool = False,
    ):
        transform = RandUltrasoundIntensity(brightness, contrast, gamma, prob)
        super().__init__(keys, _with_per_frame(transform, per_frame), allow_missing_keys)


_JITTER_OPS = ("brightness", "contrast", "saturation", "hue")


class RandColorJitterClip(ClipRandomizable):
    """TorchVision-style colour jitter with one draw per clip.

    Brightness, contrast and saturation factors are drawn from ``[max(0, 1 - r), 1 + r]``
    (or a given pair), the hue shift from ``[-hue, hue]`` turns (hue <= 0.5), and the four
    operations run in a random order (recorded as ``order``: indices into
    ``("brightness", "contrast", "saturation", "hue")``). Contrast blends with the mean
    luminance of the whole clip. On one-channel clips saturation and hue are no-ops (they
    are still drawn and recorded, so records keep their fields); for grayscale ultrasound
    use :class:`RandUltrasoundIntensity`.

    Recorded: ``order`` (4 ints), ``brightness``, ``contrast``, ``saturation``, ``hue``
    (neutral: order 0..3, factors 1, hue 0).
    """

    name = "color_jitter"

    def __init__(
        self,
        brightness: float | Sequence[float] = 0.8,
        contrast: float | Sequence[float] = 0.8,
        saturation: float | Sequence[float] = 0.8,
        hue: float | Sequence[float] = 0.2,
        prob: float = 0.8,
    ):
        super().__init__(prob)
        self.brightness = _factor_interval(brightness, "brightness")
        self.contrast = _factor_interval(contrast, "contrast")
        self.saturation = _factor_interval(saturation, "saturation")
        if isinstance(hue, (int, float)):
            hue = (-float(hue), float(hue))
        self.hue = (float(hue[0]), float(hue[1]))
        if not -0.5 <= self.hue[0] <= self.hue[1] <= 0.5:
            raise ValueError(f"hue must lie in [-0.5, 0.5], got {hue!r}")

    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        order = [int(i) for i in self.R.permutation(len(_JITTER_OPS))]
        values = {
            "brightness": float(self.R.uniform(*self.brightness)),
            "contrast": float(self.R.uniform(*self.contrast)),
            "saturation": float(self.R.uniform(*self.saturation)),
            "hue": float(self.R.uniform(*self.hue)),
        }
        if not fire:
            neutral = {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0, "hue": 0.0}
            return {"order": list(range(len(_JITTER_OPS))), **neutral}
        return {"order": order, **values}

    def apply(self, clip: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        ops = {
            "brightness": adjust_brightness,
            "contrast": adjust_contrast,
            "saturation": adjust_saturation,
            "hue": adjust_hue,
        }
        for index in params["order"]:
            op = _JITTER_OPS[int(index)]
            clip = ops[op](clip, float(params[op]))
        return clip


class RandColorJitterClipd(ClipRandomizableD):
    """Dictionary twin of :class:`RandColorJitterClip`."""

    def __init__(
        self,
        keys: KeysCollection,
        brightness: float | Sequence[float] = 0.8,
        contrast: float | Sequence[float] = 0.8,
        saturation: float | Sequence[float] = 0.8,
        hue: float | Sequence[float] = 0.2,
        prob: float = 0.8,
        per_frame: bool = False,
        allow_missing_keys: bool = False,
    ):
        transform = RandColorJitterClip(brightness, contrast, saturation, hue, prob)
        super().__init__(keys, _with_per_frame(transform, per_frame), allow_missing_keys)


class RandGrayscaleClip(ClipRandomizable):
    """Replace every frame by its luminance, keeping the channel count (3 stays 3).

    One-channel clips are returned unchanged. Recorded: ``applied`` only.
    """

    name = "grayscale"

    def __init__(self, prob: float = 0.2):
        super().__init__(prob)

    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        return {}

    def apply(self, clip: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        return grayscale(clip).expand_as(clip).clone()


class RandGrayscaleClipd(ClipRandomizableD):
    """Dictionary twin of :class:`RandGrayscaleClip`."""

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 0.2,
        per_frame: bool = False,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, _with_per_frame(RandGrayscaleClip(prob), per_frame), allow_missing_keys)


class RandGaussianBlurClip(ClipRandomizable):
    """Gaussian blur of every frame in space only (never across time), one sigma per clip.

    The kernel is MONAI's sampled Gaussian (``gaussian_1d``, normalised), applied separably
    with MONAI's ``separable_filtering`` and reflected borders (so edges do not darken). Its
    width is ``kernel_fraction`` of the frame's shorter side (SimCLR/CVRL use 10 %), at
    least 3 pixels, and odd.

    Recorded: ``sigma`` in pixels (0 when not applied).

    Args:
        sigma: range of the standard deviation in pixels.
        prob: probability of blurring.
        kernel_fraction: kernel width as a fraction of ``min(H, W)``.
    """

    name = "blur"

    def __init__(self, sigma: Sequence[float] = (0.1, 2.0), prob: float = 0.5, kernel_fraction: float = 0.1):
        super().__init__(prob)
        self.sigma = (float(sigma[0]), float(sigma[1]))
        if not 0 < self.sigma[0] <= self.sigma[1]:
            raise ValueError(f"sigma must be (low, high) with 0 < low <= high, got {sigma!r}")
        if not 0 < kernel_fraction <= 1:
            raise ValueError(f"kernel_fraction must lie in (0, 1], got {kernel_fraction}")
        self.kernel_fraction = kernel_fraction

    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        sigma = float(self.R.uniform(*self.sigma))
        return {"sigma": sigma if fire else 0.0}

    def apply(self, clip: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        sigma = float(params["sigma"])
        if sigma <= 0:
            return clip
        channels, n_frames, height, width = clip.shape
        radius = max(1, int(self.kernel_fraction * min(height, width)) // 2)
        radius = min(radius, min(height, width) - 1)  # reflect padding needs radius < size
        kernel = gaussian_1d(torch.tensor(sigma), truncated=radius / sigma, approx="sampled", normalize=True)
        stack = clip.reshape(1, channels * n_frames, height, width)
        out = separable_filtering(stack, [kernel, kernel], mode="reflect")
        return out.reshape(clip.shape).to(clip.dtype)


class RandGaussianBlurClipd(ClipRandomizableD):
    """Dictionary twin of :class:`RandGaussianBlurClip`."""

    def __init__(
        self,
        keys: KeysCollection,
        sigma: Sequence[float] = (0.1, 2.0),
        prob: float = 0.5,
        kernel_fraction: float = 0.1,
        per_frame: bool = False,
        allow_missing_keys: bool = False,
    ):
        transform = RandGaussianBlurClip(sigma, prob, kernel_fraction)
        super().__init__(keys, _with_per_frame(transform, per_frame), allow_missing_keys)


class RandSolarizeClip(ClipRandomizable):
    """Invert intensities at or above ``threshold`` (``x -> 1 - x``), as TorchVision's solarize.

    Recorded: ``applied`` only.
    """

    name = "solarize"

    def __init__(self, threshold: float = 0.5, prob: float = 0.2):
        super().__init__(prob)
        self.threshold = float(threshold)

    def draw(self, shape: tuple[int, ...], fire: bool) -> dict[str, Any]:
        return {}

    def apply(self, clip: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
        return torch.where(clip >= self.threshold, 1.0 - clip, clip)


class RandSolarizeClipd(ClipRandomizableD):
    """Dictionary twin of :class:`RandSolarizeClip`."""

    def __init__(
        self,
        keys: KeysCollection,
        threshold: float = 0.5,
        prob: float = 0.2,
        per_frame: bool = False,
        allow_missing_keys: bool = False,
    ):
        transform = RandSolarizeClip(threshold, prob)
        super().__init__(keys, _with_per_frame(transform, per_frame), allow_missing_keys)


# --------------------------------------------------------------------------------------
# Deterministic


class NormalizeClip(Transform):
    """``(x - mean[c]) / std[c]`` per channel of a ``(C, T, H, W)`` clip.

    Args:
        mean, std: one value per channel, or one value for all channels.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float32))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float32))
        if self.mean.ndim != 1 or self.std.ndim != 1 or np.any(self.std <= 0):
            raise ValueError(f"mean and std must be numbers or lists, std > 0; got {mean!r}, {std!r}")

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        check_clip(clip, type(self).__name__)
        channels = clip.shape[0]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values.size not in (1, channels):
                raise ValueError(
                    f"NormalizeClip has {values.size} {name} values for a clip of {channels} channels"
                )
        mean = torch.as_tensor(self.mean, dtype=clip.dtype, device=clip.device).view(-1, 1, 1, 1)
        std = torch.as_tensor(self.std, dtype=clip.dtype, device=clip.device).view(-1, 1, 1, 1)
        return (clip - mean) / std


class NormalizeClipd(MapTransform):
    """Dictionary twin of :class:`NormalizeClip`."""

    def __init__(
        self,
        keys: KeysCollection,
        mean: float | Sequence[float],
        std: float | Sequence[float],
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.normalize = NormalizeClip(mean, std)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.normalize(d[key])
        return d


class ToFloatClip(Transform):
    """Reader frames to a model clip: uint8 ``(T, H, W, C)`` -> float32 ``(C, T, H, W)`` in [0, 1].

    Accepts a numpy array or a tensor.
    """

    def __call__(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        frames = torch.as_tensor(frames)
        if frames.ndim != 4 or frames.dtype != torch.uint8:
            raise ValueError(
                f"ToFloatClip expects uint8 frames (T, H, W, C), got {tuple(frames.shape)} {frames.dtype}"
            )
        return frames.permute(3, 0, 1, 2).to(torch.float32).div_(255.0).contiguous()


class ToChannelsClip(Transform):
    """Give a clip ``(C, T, H, W)`` the channel count a model takes.

    RGB to grayscale (3 -> 1) uses ITU-R BT.601 luma (:func:`grayscale`); grayscale to RGB
    (1 -> 3) repeats the channel; an equal count passes unchanged. Data sets that mix
    grayscale DICOM and colour video go through this before anything else sees the clip.

    Args:
        channels: 1 or 3.
    """

    def __init__(self, channels: int):
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels!r}")
        self.channels = int(channels)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        check_clip(clip, type(self).__name__)
        have = clip.shape[0]
        if have == self.channels:
            return clip
        if have == 3 and self.channels == 1:
            return grayscale(clip)
        if have == 1 and self.channels == 3:
            return clip.expand(3, *clip.shape[1:]).contiguous()
        raise ValueError(f"ToChannelsClip converts between 1 and 3 channels, got a clip of {have} channels")


class ToChannelsClipd(MapTransform):
    """Dictionary twin of :class:`ToChannelsClip` (give it image keys, not masks)."""

    def __init__(self, keys: KeysCollection, channels: int, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.convert = ToChannelsClip(channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.convert(d[key])
        return d
