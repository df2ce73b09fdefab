"""Data recipe of the audio-visual transformer (METHODS.md section 6).

Per item: a window of S consecutive segments of one video
(:class:`~ultrassl.transforms.temporal.MultiSegmentSampler`), each a visual clip of T frames at
stride s and the audio over the same time span, both read from the file in one pass
(:class:`~ultrassl.transforms.io.LoadClipd` with audio: the samples from the first frame's time
to one frame past the last); converted to ``in_channels`` (and sector-masked for ultrasound).
Then one draw of the augmentation for every segment (random resized crop to ``size``, flip,
colour or intensity jitter), so that the segments stay one continuous scene; each segment's
audio becomes a log-mel spectrogram (:class:`~ultrassl.transforms.audio.LogMeld`); normalised.

Output: ``visual`` ``(S, C, T, H, W)`` and ``audio`` ``(S, 1, n_mels, num_audio_frames)``, with
each segment's frame indices, timing (``seg{i}_meta``: ``timestamps_s``, ``audio_sample_rate``)
and draws. A file without an audio track raises a :class:`~ultrassl.errors.ClipReadError`
naming it: the audio is never silently zeros.
"""

from __future__ import annotations

from typing import Any

from monai.transforms import Compose, Transform

from ultrassl.pipelines.action import StackViewsd
from ultrassl.pipelines.base import SECTOR_MASK, ClipPipeline, KeepCollatabled
from ultrassl.transforms.audio import LogMeld
from ultrassl.transforms.intensity import (
    NormalizeClipd,
)
from ultrassl.transforms.io import audio_key
from ultrassl.transforms.temporal import MultiSegmentSampler


class AudioVisualPipeline(ClipPipeline):
    """S segments of one video with their audio, for the audio-visual transformer.

    Args:
        num_segments: S segments per item.
        num_frames: T frames per segment's visual clip.
        stride: frames between a segment's frames (at ``target_fps`` when given).
        segment_length: frames from one segment's start to the next (default ``num_frames *
            stride``: segments abut).
        num_audio_frames: spectrogram frames per segment (cut or padded at the end).
        n_mels, n_fft, hop_length: log-mel settings (40 bands, 32 ms windows, 10 ms hops at 16 kHz).
        crop_scale, crop_ratio, flip_prob, color_prob, brightness, contrast, saturation, hue,
            grayscale_prob, gamma: the augmentation, drawn once per item.
        **kwargs: loading and finishing options of :class:`ClipPipeline`; ``modality`` defaults
            to ``"natural"`` and ``in_channels`` to 3.
    """

    def __init__(
        self,
        num_segments: int = 4,
        num_frames: int = 4,
        stride: int = 2,
        segment_length: int | None = None,
        num_audio_frames: int = 32,
        n_mels: int = 40,
        n_fft: int = 512,
        hop_length: int = 160,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        crop_ratio: tuple[float, float] = (0.75, 1.333),
        flip_prob: float = 0.5,
        color_prob: float = 0.5,
        brightness: float = 0.3,
        contrast: float = 0.3,
        saturation: float = 0.3,
        hue: float = 0.05,
        grayscale_prob: float = 0.0,
        gamma: float = 0.2,
        **kwargs: Any,
    ):
        kwargs.setdefault("modality", "natural")
        kwargs.setdefault("in_channels", 3)
        super().__init__(**kwargs)
        self.num_segments = num_segments
        self.num_frames = num_frames
        self.stride = stride
        self.segment_length = segment_length
        self.mel = dict(num_audio_frames=num_audio_frames, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length)
        self.set_jitter(crop_scale, crop_ratio, flip_prob, color_prob, brightness, contrast, saturation, hue,
                        grayscale_prob, gamma)
        # Built once here so that bad options fail when the config is read, not in a worker.
        self.sampler()
        self.augment_steps()

    @property
    def views(self) -> tuple[str, ...]:
        return tuple(f"seg{i}" for i in range(self.num_segments))

    def sampler(self) -> MultiSegmentSampler:
        return MultiSegmentSampler(self.num_segments, self.num_frames, self.stride, self.segment_length,
                                   **self.sampler_options())

    def augment_steps(self) -> list[Transform]:
        return self.jitter_steps(self.views, masks=[SECTOR_MASK] if self.keep_sector_mask else [])

    def train_transform(self) -> Compose:
        views = self.views
        drop = () if self.keep_sector_mask else (SECTOR_MASK,)
        return Compose(
            self.load_steps(self.sampler(), views, with_audio=True)
            + self.augment_steps()
            + [LogMeld(views, **self.mel), NormalizeClipd(views, self.mean, self.std),
               StackViewsd(views, "visual"), StackViewsd([audio_key(v) for v in views], "audio"),
               KeepCollatabled(drop=drop)]
        )

    def val_transform(self) -> Compose:
        # The objective's terms need the segments as trained; the data module seeds validation
        # items the same way in every epoch, so the held-out scores are comparable.
        return self.train_transform()
