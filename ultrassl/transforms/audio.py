"""Log-mel spectrograms of the audio that :class:`~ultrassl.transforms.io.LoadClipd` cuts for a
view: :func:`log_mel_spectrogram` (array) and :class:`LogMeld` (dictionary).

Written here with ``torch.stft`` and an HTK mel filterbank because torchaudio, the usual
choice, publishes no build for this project's pinned torch, and librosa would bring numba
for one filterbank. The formulas are the standard ones (HTK mel scale, Hann window, power
spectrum, natural log with a floor).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from ultrassl.transforms.io import audio_key, meta_key


def hz_to_mel(hz: float | torch.Tensor) -> float | torch.Tensor:
    """HTK mel scale: ``2595 log10(1 + hz / 700)``."""
    if isinstance(hz, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    return 2595.0 * math.log10(1.0 + hz / 700.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Triangular filters ``(n_mels, n_fft // 2 + 1)`` evenly spaced on the mel scale, each peaking
    at 1 (not area-normalised)."""
    bins = torch.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1, dtype=torch.float64)
    edges_mel = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2, dtype=torch.float64)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)


def log_mel_spectrogram(audio: torch.Tensor, sample_rate: int, n_mels: int = 40, n_fft: int = 512,
                        hop_length: int = 160, f_min: float = 50.0, f_max: float | None = None,
                        floor: float = 1e-6) -> torch.Tensor:
    """``(1, n_mels, 1 + samples // hop_length)`` log-mel power of ``audio`` ``(channels, samples)``
    in [-1, 1] (channels averaged first; frames centred on multiples of ``hop_length``).

    Raises:
        ValueError: ``f_max`` above the Nyquist frequency, or no samples.
    """
    audio = torch.as_tensor(audio, dtype=torch.float32)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise ValueError(f"audio must be (channels, samples) with samples, got {tuple(audio.shape)}")
    nyquist = sample_rate / 2.0
    f_max = nyquist if f_max is None else float(f_max)
    if not 0 <= f_min < f_max <= nyquist:
        raise ValueError(f"need 0 <= f_min < f_max <= {nyquist} Hz, got {f_min} and {f_max}")
    mono = audio.mean(dim=0)
    if mono.shape[0] <= n_fft // 2:  # reflection padding needs more samples than half a window
        mono = torch.nn.functional.pad(mono, (0, n_fft // 2 + 1 - mono.shape[0]))
    spectrum = torch.stft(mono, n_fft=n_fft, hop_length=hop_length, window=torch.hann_window(n_fft),
                          center=True, pad_mode="reflect", return_complex=True)
    power = spectrum.abs() ** 2  # (n_fft // 2 + 1, frames)
    mel = mel_filterbank(int(sample_rate), n_fft, n_mels, float(f_min), float(f_max)) @ power
    frames = 1 + audio.shape[1] // hop_length
    return torch.log(mel.clamp(min=floor))[None, :, :frames]


class LogMeld(MapTransform):
    """Replace each view's audio ``d["{view}_audio"]`` ``(channels, samples)`` by its log-mel
    spectrogram ``(1, n_mels, num_audio_frames)`` (:func:`log_mel_spectrogram`), at the sample rate
    recorded in ``d["{view}_meta"]["audio_sample_rate"]``. Spectrograms are cut or padded (with the
    floor's log) at the end to ``num_audio_frames`` so that segments of files with other frame or
    sample rates collate.

    Args:
        keys: the views (not their audio keys).
        num_audio_frames: spectrogram frames kept per view.
        n_mels, n_fft, hop_length, f_min, f_max: see :func:`log_mel_spectrogram`.
    """

    def __init__(self, keys: KeysCollection, num_audio_frames: int, n_mels: int = 40, n_fft: int = 512,
                 hop_length: int = 160, f_min: float = 50.0, f_max: float | None = None,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        if num_audio_frames < 1:
            raise ValueError(f"num_audio_frames must be >= 1, got {num_audio_frames}")
        self.num_audio_frames = int(num_audio_frames)
        self.options = dict(n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, f_min=f_min, f_max=f_max)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for view in self.key_iterator(d):
            rate = int(d[meta_key(view)]["audio_sample_rate"])
            spectrogram = log_mel_spectrogram(d[audio_key(view)], rate, **self.options)
            frames = spectrogram.shape[-1]
            if frames >= self.num_audio_frames:
                spectrogram = spectrogram[..., : self.num_audio_frames]
            else:
                floor = spectrogram.new_full((*spectrogram.shape[:-1], self.num_audio_frames - frames), math.log(1e-6))
                spectrogram = torch.cat([spectrogram, floor], dim=-1)
            d[audio_key(view)] = spectrogram.contiguous()
        return d
