"""What readers return: header facts (:class:`ClipInfo`) and decoded clips (:class:`Clip`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClipInfo:
    """Facts about a file known without decoding all of its pixels.

    Attributes:
        path: the file (or frame folder) read.
        format: reader name: ``"dicom"``, ``"itk"``, ``"video"`` or ``"frames"``.
        n_frames: number of frames T (>= 1).
        height, width: frame size in pixels.
        channels: 1 (grayscale) or 3 (RGB) as returned by :func:`read_clip`.
        fps: frames per second, or ``None`` when the file does not say.
        spacing_mm: physical pixel size ``(row, column)`` in millimetres, or ``None``.
        has_audio: whether an audio track can be read with the frames.
        metadata: non-identifying facts about the source (codec, transfer syntax,
            photometric interpretation, ultrasound region bounds, ...). Never patient
            names, dates, identifiers or institution names.
    """

    path: str
    format: str
    n_frames: int
    height: int
    width: int
    channels: int
    fps: float | None = None
    spacing_mm: tuple[float, float] | None = None
    has_audio: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return None if not self.fps else self.n_frames / self.fps


@dataclass
class Clip:
    """Frames decoded from one file.

    Attributes:
        frames: uint8 array of shape (T, H, W, C), C in {1, 3}, RGB order for colour.
        frame_indices: int64 array (T,), the indices in the file of each frame.
        timestamps_s: float64 array (T,), presentation time of each frame in seconds
            from the start of the file (index / fps when the file gives no times;
            NaN when neither is known).
        fps: nominal frames per second, or ``None``.
        spacing_mm: physical pixel size ``(row, column)`` in millimetres, or ``None``.
        audio: float32 array (channels, samples) in [-1, 1] covering the frames' time
            span, or ``None`` when not asked for or absent.
        audio_sample_rate: samples per second of ``audio``.
        info: the :class:`ClipInfo` of the file.
    """

    frames: np.ndarray
    frame_indices: np.ndarray
    timestamps_s: np.ndarray
    info: ClipInfo
    audio: np.ndarray | None = None
    audio_sample_rate: int | None = None

    @property
    def fps(self) -> float | None:
        return self.info.fps

    @property
    def spacing_mm(self) -> tuple[float, float] | None:
        return self.info.spacing_mm

    @property
    def path(self) -> str:
        return self.info.path
