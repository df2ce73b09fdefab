"""Folders of extracted frames (.jpg/.jpeg/.png/.bmp), e.g. UCF101/HMDB51 after frame extraction.

Which files are frames: image files whose names hold a number (all image files when none
does), hidden files excluded. Files are grouped by name pattern (digits replaced, e.g.
``img_#``); when several patterns exist (TSN-style folders with ``img_#``, ``flow_x_#``,
``flow_y_#``), the single pattern starting with ``img``, ``image`` or ``frame`` is taken,
otherwise the folder is rejected. Frames are ordered by natural sort (``img_2`` before
``img_10``).

Frame rate: a ``fps.txt`` file in the folder holding a number (``25``) or a ratio
(``30000/1001``); ``None`` without one.

Pixels: decoded with OpenCV (``IMREAD_UNCHANGED``: no EXIF rotation, no colour guessing),
BGR(A) converted to RGB, alpha dropped; single-channel images stay C = 1; 16-bit images are
scaled by 255 / 65535. Every frame must have the size and channel count of the first one.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import numpy as np

from ultrassl.errors import CorruptFileError, EmptyClipError, UnsupportedFormatError
from ultrassl.io.base import ClipReader, default_timestamps
from ultrassl.io.files import check_openable
from ultrassl.io.limits import get_decode_limits
from ultrassl.io.types import Clip, ClipInfo

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FPS_SIDECAR = "fps.txt"
_PREFERRED_PREFIXES = ("img", "image", "frame")
_LISTING_CACHE_SIZE = 1024
_LISTINGS: OrderedDict = OrderedDict()


class FrameFolderReader(ClipReader):
    """Reads a folder of frame images as one clip: uint8 (T, H, W, C), C = 1 or 3 (RGB)."""

    name = "frames"
    suffixes = ("/",)

    def can_read(self, path: Path) -> bool:
        path = Path(path)
        if not path.is_dir():
            return False
        with os.scandir(path) as entries:
            return any(_is_image(entry.name) and entry.is_file() for entry in entries)

    def probe(self, path: Path) -> ClipInfo:
        """Counts the frames and decodes the first one for its size and channels.

        ``metadata`` holds ``pattern`` (frame names with digits as ``#``), ``extensions``,
        ``bit_depth`` (of the first frame) and ``fps_source`` (``"fps.txt"`` or None).
        """
        path = Path(path)
        names = frame_files(path)
        first = _decode(path / names[0])
        height, width = first.shape[:2]
        fps = _sidecar_fps(path)
        return ClipInfo(
            path=str(path),
            format=self.name,
            n_frames=len(names),
            height=int(height),
            width=int(width),
            channels=_channels(first),
            fps=None if fps is None else float(fps),
            spacing_mm=None,
            has_audio=False,
            metadata={
                "pattern": _pattern(names[0]),
                "extensions": sorted({Path(n).suffix.lower() for n in names}),
                "bit_depth": 16 if first.dtype == np.uint16 else 8,
                "fps_source": FPS_SIDECAR if fps is not None else None,
            },
        )

    def read(
        self, path: Path, frame_indices: np.ndarray, info: ClipInfo, with_audio: bool = False
    ) -> Clip:
        """Decode the wanted frame files (each once, repeats copied).

        Raises:
            CorruptFileError: a frame file cannot be decoded or differs in size or channels
                from the first frame (the message names the frame file).
        """
        path = Path(path)
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        names = frame_files(path)
        if len(names) != info.n_frames:
            raise CorruptFileError(
                f"the folder now holds {len(names)} frames, {info.n_frames} when probed", str(path)
            )
        frames = np.empty((indices.size, info.height, info.width, info.channels), dtype=np.uint8)
        for index in np.unique(indices):
            image = _decode(path / names[int(index)])
            shape = (image.shape[0], image.shape[1], _channels(image))
            if shape != frames.shape[1:]:
                raise CorruptFileError(
                    f"frame file {names[int(index)]!r} (frame {int(index)}) has shape {shape}, "
                    f"the first frame {frames.shape[1:]}",
                    str(path),
                )
            frames[indices == index] = _to_uint8_rgb(image)
        return Clip(
            frames=frames,
            frame_indices=indices,
            timestamps_s=default_timestamps(indices, info.fps),
            info=info,
        )


def frame_files(folder: str | os.PathLike) -> list[str]:
    """File names of the frames in ``folder``, in frame order (see the module docstring).

    Raises:
        EmptyClipError: no image files.
        UnsupportedFormatError: several frame name patterns and no single preferred one.
    """
    folder = Path(folder)
    stat = folder.stat()
    key = (str(folder.resolve()), stat.st_mtime_ns)
    if key in _LISTINGS:
        _LISTINGS.move_to_end(key)
        return _LISTINGS[key]
    with os.scandir(folder) as entries:
        images = [e.name for e in entries if _is_image(e.name) and e.is_file()]
    if not images:
        raise EmptyClipError("the folder holds no .jpg/.jpeg/.png/.bmp frames", str(folder))
    numbered = [n for n in images if re.search(r"\d", n)]
    pool = numbered or images
    by_pattern: dict[str, list[str]] = {}
    for name in pool:
        by_pattern.setdefault(_pattern(name), []).append(name)
    if len(by_pattern) == 1:
        chosen = next(iter(by_pattern.values()))
    else:
        preferred = [p for p in by_pattern if p.lower().startswith(_PREFERRED_PREFIXES)]
        if len(preferred) != 1:
            shown = ", ".join(sorted(by_pattern)[:5])
            raise UnsupportedFormatError(
                f"frame names follow {len(by_pattern)} patterns ({shown}); expected one", str(folder)
            )
        chosen = by_pattern[preferred[0]]
    names = sorted(chosen, key=_natural_key)
    _LISTINGS[key] = names
    while len(_LISTINGS) > _LISTING_CACHE_SIZE:
        _LISTINGS.popitem(last=False)
    return names


def _is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)


def _pattern(name: str) -> str:
    """The name's stem with every run of digits replaced by ``#`` (``img_00012.jpg`` -> ``img_#``)."""
    return re.sub(r"\d+", "#", Path(name).stem)


def _natural_key(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def _sidecar_fps(folder: Path) -> Fraction | None:
    sidecar = folder / FPS_SIDECAR
    if not sidecar.is_file():
        return None
    text = sidecar.read_text(errors="replace").strip()
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise CorruptFileError(f"{FPS_SIDECAR} holds {text[:40]!r}, not a frame rate", str(folder)) from None
    if fps <= 0:
        raise CorruptFileError(f"{FPS_SIDECAR} holds a non-positive frame rate {text[:40]!r}", str(folder))
    return fps


def _declared_size(file: Path) -> tuple[int, int] | None:
    """(height, width) from the image file's header, without decoding it (Pillow reads only
    the header on open); None when Pillow does not know the format."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None  # OpenCV decides below, and says it cannot decode a damaged file
    except Image.DecompressionBombError:
        return None  # Pillow's own ceiling (about 179 megapixels) is above ours: fall through
    return int(height), int(width)


def _decode(file: Path) -> np.ndarray:
    import cv2

    check_openable(file)
    declared = _declared_size(file)
    if declared is not None:
        get_decode_limits().check_frame(*declared, file.parent, f"frame file {file.name!r}")
    image = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise CorruptFileError(f"frame file {file.name!r} cannot be decoded", str(file.parent))
    if image.dtype not in (np.uint8, np.uint16):
        raise UnsupportedFormatError(f"frame file {file.name!r} has pixel type {image.dtype}", str(file.parent))
    return image


def _channels(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 or image.shape[2] <= 2 else 3


def _to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 1|3) uint8 RGB from OpenCV's gray / gray+alpha / BGR / BGRA, 8 or 16 bit."""
    if image.dtype == np.uint16:
        image = np.rint(image * (255.0 / 65535.0)).astype(np.uint8)
    if image.ndim == 2:
        return image[..., None]
    if image.shape[2] <= 2:
        return image[..., :1]
    return image[..., 2::-1]  # BGR(A) -> RGB
