"""What may be opened at all: regular files and folders, checked from ``stat`` alone."""

from __future__ import annotations

import errno
import os
import stat

from ultrassl.errors import FileAccessError

_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_openable(path: str | os.PathLike) -> None:
    """Refuse anything but an existing, readable regular file or folder, without opening it.

    Opening a FIFO blocks until a writer appears, and a link to ``/dev/zero`` reads forever:
    either would hang an index or a training run, so both are refused from ``stat`` alone,
    as are devices, sockets and symbolic-link loops.

    Raises:
        FileAccessError: naming the file and what it is.
    """
    try:
        mode = os.stat(path).st_mode  # follows links: a link is what it points at
    except FileNotFoundError:
        if os.path.islink(path):
            raise FileAccessError("a broken symbolic link (its target does not exist)", str(path)) from None
        raise FileAccessError("no such file or folder", str(path)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileAccessError("a symbolic link loop", str(path)) from None
        raise FileAccessError(f"cannot be examined ({exc.strerror or type(exc).__name__})", str(path)) from None
    for test, kind in _SPECIAL_FILES:
        if test(mode):
            raise FileAccessError(f"not a regular file but {kind}; only regular files and folders are read", str(path))
    if not os.access(path, os.R_OK):
        raise FileAccessError("permission denied", str(path))
