"""Ceilings on what a reader may decode, checked against what a file *declares* before any
pixel is decoded.

A compressed frame costs almost nothing on disk and can decode to gigabytes (a JPEG frame of
12000 x 12000 pixels is a few MB): one such file in an archive can stall a training run for
hours or take down a shared machine. Every reader therefore checks the declared frame size
(the header's rows and columns, and for DICOM also each compressed frame's own codestream
header) and the size of the requested read against these ceilings, and refuses with
:class:`~ultrassl.errors.ResourceLimitError` naming the file and the numbers.

The defaults sit far above any scanner's frame or ordinary video (4K UHD is 8.3 megapixels)
and far below a decompression bomb. Change them for one block of code with
:func:`decode_limits`, for the process with :func:`set_decode_limits`, or for a process and
its DataLoader workers with the environment variables ``ULTRASSL_MAX_FRAME_PIXELS`` and
``ULTRASSL_MAX_READ_BYTES`` (read when no limit was set in code).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from typing import Iterator

from ultrassl.errors import ResourceLimitError

#: 4096 x 4096 pixels: above 4K UHD video (3840 x 2160) and every ultrasound scanner's frame
DEFAULT_MAX_FRAME_PIXELS = 4096 * 4096
#: 2 GiB of decoded uint8 pixels in one read (about 1,000 frames of 1080p RGB video)
DEFAULT_MAX_READ_BYTES = 2 * 1024**3

_ENV_FRAME_PIXELS = "ULTRASSL_MAX_FRAME_PIXELS"
_ENV_READ_BYTES = "ULTRASSL_MAX_READ_BYTES"


@dataclass(frozen=True)
class DecodeLimits:
    """Ceilings on decoding.

    Attributes:
        max_frame_pixels: rows x columns of one frame, as the file declares it.
        max_read_bytes: bytes of the decoded uint8 frames of one read (frames asked for x rows
            x columns x channels).
    """

    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS
    max_read_bytes: int = DEFAULT_MAX_READ_BYTES

    def __post_init__(self):
        for name in ("max_frame_pixels", "max_read_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    def check_frame(self, height: int, width: int, path: str | os.PathLike | None, what: str = "a frame") -> None:
        """Refuse ``what`` of ``height x width`` pixels when it exceeds ``max_frame_pixels``."""
        pixels = int(height) * int(width)
        if pixels > self.max_frame_pixels:
            raise _refusal(
                f"{what} of {int(height)} x {int(width)} pixels ({pixels / 1e6:.1f} megapixels) exceeds the "
                f"decode limit of {self.max_frame_pixels / 1e6:.1f} megapixels (max_frame_pixels; "
                f"{_ENV_FRAME_PIXELS} raises it)", path)

    def check_read(self, n_frames: int, height: int, width: int, channels: int,
                   path: str | os.PathLike | None) -> None:
        """Refuse a read of ``n_frames`` frames that would decode to more than ``max_read_bytes``."""
        total = int(n_frames) * int(height) * int(width) * int(channels)
        if total > self.max_read_bytes:
            raise _refusal(
                f"reading {int(n_frames)} frames of {int(height)} x {int(width)} x {int(channels)} would decode "
                f"{total / 2**20:.0f} MiB, above the limit of {self.max_read_bytes / 2**20:.0f} MiB per read "
                f"(max_read_bytes; {_ENV_READ_BYTES} raises it); read fewer frames at a time", path)


def _refusal(cause: str, path: str | os.PathLike | None) -> ResourceLimitError:
    return ResourceLimitError(cause, None if path is None else str(path))


_CURRENT: DecodeLimits | None = None


def _from_environment() -> DecodeLimits:
    values = {}
    for field_name, variable in (("max_frame_pixels", _ENV_FRAME_PIXELS), ("max_read_bytes", _ENV_READ_BYTES)):
        raw = os.environ.get(variable)
        if raw:
            try:
                values[field_name] = int(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r} is not an integer") from None
    return DecodeLimits(**values)


def get_decode_limits() -> DecodeLimits:
    """The limits in force: those set in code, else the environment's, else the defaults."""
    return _CURRENT if _CURRENT is not None else _from_environment()


def set_decode_limits(limits: DecodeLimits | None = None, **changes: int) -> DecodeLimits | None:
    """Set the process's limits (``limits``, or the current ones with ``changes``); returns them.

    ``set_decode_limits(None)`` with no changes goes back to the environment's or the defaults
    (and returns None). Limits set here reach DataLoader workers that are forked; the
    environment variables also reach workers started with ``spawn`` or ``forkserver``.
    """
    global _CURRENT
    if limits is None and not changes:
        _CURRENT = None
        return None
    _CURRENT = replace(limits or get_decode_limits(), **changes)
    return _CURRENT


@contextlib.contextmanager
def decode_limits(**changes: int) -> Iterator[DecodeLimits]:
    """Within the block, the current limits with ``changes`` (e.g. ``max_frame_pixels=10**6``)."""
    global _CURRENT
    previous = _CURRENT
    _CURRENT = replace(get_decode_limits(), **changes)
    try:
        yield _CURRENT
    finally:
        _CURRENT = previous
