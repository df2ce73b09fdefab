"""Typed errors raised for bad input.

Every error names the file and the cause. They survive pickling and PyTorch's
DataLoader worker re-raise, which rebuilds an exception from its message alone,
so each class accepts a single positional message.
"""

from __future__ import annotations


class UltrasslError(Exception):
    """Base class of every error ultrassl raises on purpose."""


class ClipReadError(UltrasslError):
    """A clip could not be read from a file.

    Args:
        message: the cause, in words (for example "truncated pixel data: 3 of 30 frames").
        path: the file concerned; prefixed to the message when given.
    """

    def __init__(self, message: str, path: str | None = None):
        self.path = None if path is None else str(path)
        self.cause = message
        super().__init__(message if path is None else f"{path}: {message}")

    def __reduce__(self):
        return (type(self), (self.cause, self.path))


class FileAccessError(ClipReadError):
    """The path does not exist or cannot be opened."""


class UnsupportedFormatError(ClipReadError):
    """The file type, transfer syntax, codec or pixel layout is not supported."""


class CorruptFileError(ClipReadError):
    """The file is truncated or its data cannot be decoded."""


class EmptyClipError(ClipReadError):
    """The file holds no frames."""


class FrameCountMismatchError(ClipReadError):
    """The file holds a different number of frames than expected (e.g. from the manifest)."""


class FrameIndexError(ClipReadError):
    """A requested frame index is outside the clip."""


class ClipTooShortError(ClipReadError, ValueError):
    """The clip has fewer frames than a pipeline's sampler needs (a ValueError too, as the
    samplers raised before it existed)."""


class ResourceLimitError(ClipReadError):
    """What the file declares (frame size, frame count) would decode to more memory than the
    configured ceiling allows (:mod:`ultrassl.io.limits`): a decompression bomb, a hostile
    header, or a request for more of a long file than fits."""


class ManifestError(UltrasslError):
    """A manifest or split file is malformed or inconsistent with the data."""

    def __init__(self, message: str, path: str | None = None):
        self.path = None if path is None else str(path)
        self.cause = message
        super().__init__(message if path is None else f"{path}: {message}")

    def __reduce__(self):
        return (type(self), (self.cause, self.path))


class CheckpointError(UltrasslError):
    """A checkpoint cannot be read, or holds no model this package can rebuild."""

    def __init__(self, message: str, path: str | None = None):
        self.message = self.cause = message
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)

    def __reduce__(self):
        return (type(self), (self.message, self.path))
