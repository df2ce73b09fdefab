"""One entry point to read clips from any supported file: :func:`probe_clip`, :func:`read_clip`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ultrassl.errors import (
    ClipReadError,
    CorruptFileError,
    EmptyClipError,
    FileAccessError,
    FrameCountMismatchError,
    FrameIndexError,
    UnsupportedFormatError,
)
from ultrassl.io.base import ClipReader
from ultrassl.io.files import check_openable
from ultrassl.io.limits import get_decode_limits
from ultrassl.io.packed import clip_file
from ultrassl.io.types import Clip, ClipInfo


def _readers() -> list[ClipReader]:
    # Imported here so that importing ultrassl.io stays cheap (av, SimpleITK, pydicom load lazily).
    from ultrassl.io.dicom import DicomReader
    from ultrassl.io.frames import FrameFolderReader
    from ultrassl.io.itk import ItkReader
    from ultrassl.io.packed import PackedReader
    from ultrassl.io.video import VideoReader

    return [PackedReader(), DicomReader(), ItkReader(), VideoReader(), FrameFolderReader()]


_READERS: list[ClipReader] | None = None


def readers() -> list[ClipReader]:
    """All registered readers, in the order they are tried."""
    global _READERS
    if _READERS is None:
        _READERS = _readers()
    return _READERS


def get_reader(path: str | os.PathLike, format: str | None = None) -> ClipReader:
    """The reader for ``path``: by name when ``format`` is given, else by suffix or magic bytes."""
    path = Path(path)
    if format is not None:
        for reader in readers():
            if reader.name == format:
                check_openable(clip_file(path))
                return reader
        raise UnsupportedFormatError(f"unknown format {format!r}", str(path))
    check_openable(clip_file(path))
    for reader in readers():
        if reader.can_read(path):
            return reader
    raise UnsupportedFormatError(
        f"unsupported file type {path.suffix or '(no suffix)'!r}; "
        "expected DICOM, .mha/.mhd/.nii/.nii.gz/.nrrd, .mp4/.avi/.mov/.mkv, a folder of frames "
        "or a packed clip (<shard>.tar::<key>)",
        str(path),
    )


def _typed(exc: BaseException, path: Path) -> ClipReadError:
    """A foreign decoder exception as a typed error naming the file."""
    if isinstance(exc, ClipReadError):
        if exc.path is None:
            return type(exc)(exc.cause, str(path))
        return exc
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return FileAccessError(f"{type(exc).__name__}: {exc}", str(path))
    if isinstance(exc, MemoryError):
        return CorruptFileError("decoding ran out of memory (implausible header?)", str(path))
    return CorruptFileError(f"{type(exc).__name__}: {exc}", str(path))


def probe_clip(path: str | os.PathLike, format: str | None = None) -> ClipInfo:
    """Header facts of a file, without decoding every frame.

    Raises:
        ClipReadError: a subclass naming the file and the cause.
    """
    path = Path(path)
    reader = get_reader(path, format)
    try:
        info = reader.probe(path)
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a typed error
        raise _typed(exc, path) from exc
    if info.n_frames < 1:
        raise EmptyClipError("the file holds no frames", str(path))
    get_decode_limits().check_frame(info.height, info.width, path, "the declared frame size")
    return info


def check_frame_indices(frame_indices: Sequence[int] | np.ndarray, n_frames: int, path: str | os.PathLike) -> np.ndarray:
    """``frame_indices`` as int64 ``(N,)``; :class:`FrameIndexError` (naming ``path``) when there
    are none or one lies outside ``[0, n_frames)``."""
    indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
    if indices.size == 0:
        raise FrameIndexError("no frame indices were asked for", str(path))
    bad = indices[(indices < 0) | (indices >= n_frames)]
    if bad.size:
        raise FrameIndexError(f"frame index {int(bad[0])} outside the clip's {n_frames} frames", str(path))
    return indices


def read_clip(
    path: str | os.PathLike,
    frame_indices: Sequence[int] | np.ndarray | None = None,
    *,
    with_audio: bool = False,
    expected_n_frames: int | None = None,
    info: ClipInfo | None = None,
    format: str | None = None,
) -> Clip:
    """Read frames of a clip by index.

    Args:
        path: a DICOM file, a SimpleITK image (.mha/.mhd/.nii/.nii.gz/.nrrd), a video file
            or a folder of frame images.
        frame_indices: indices of the frames wanted, in the order wanted (repeats allowed);
            ``None`` reads every frame.
        with_audio: also return the audio track over the frames' time span (video files).
        expected_n_frames: the frame count the caller believes the file holds (e.g. from the
            manifest); a different count raises :class:`FrameCountMismatchError`.
        info: a :class:`ClipInfo` from an earlier :func:`probe_clip`, to skip the probe.
        format: reader name, to skip detection.

    Returns:
        a :class:`Clip` whose ``frames`` is uint8 (T, H, W, C).

    Raises:
        ClipReadError: a subclass naming the file and the cause; never a short clip.
    """
    path = Path(path)
    given_info = info is not None
    if info is None:
        info = probe_clip(path, format)  # checks the declared frame size
    reader = get_reader(path, info.format)
    if expected_n_frames is not None and int(expected_n_frames) != info.n_frames:
        raise FrameCountMismatchError(
            f"expected {int(expected_n_frames)} frames, the file holds {info.n_frames}", str(path)
        )
    if frame_indices is None:
        indices = np.arange(info.n_frames, dtype=np.int64)
    else:
        indices = check_frame_indices(frame_indices, info.n_frames, path)
    limits = get_decode_limits()
    if given_info:  # a probe from elsewhere (a cache), perhaps made under other limits
        limits.check_frame(info.height, info.width, path, "the declared frame size")
    limits.check_read(np.unique(indices).size, info.height, info.width, info.channels, path)
    try:
        clip = reader.read(path, indices, info, with_audio=with_audio)
    except Exception as exc:  # noqa: BLE001 - every decoder failure becomes a typed error
        raise _typed(exc, path) from exc
    frames = clip.frames
    if frames.ndim != 4 or frames.dtype != np.uint8 or frames.shape[-1] not in (1, 3):
        raise CorruptFileError(
            f"decoded frames have shape {frames.shape} and dtype {frames.dtype}, "
            "expected uint8 (T, H, W, 1|3)",
            str(path),
        )
    if frames.shape[0] != indices.size:
        raise CorruptFileError(
            f"asked for {indices.size} frames, only {frames.shape[0]} could be decoded", str(path)
        )
    return clip
