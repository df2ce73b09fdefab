"""Writing files so that a kill never leaves half of one where a good one was.

The new content goes to a temporary file in the *same folder* (so the final rename never
crosses a filesystem and turns into a copy), is flushed to disk, and is renamed over the
target with :func:`os.replace`, which is atomic on POSIX and Windows: a reader sees the old
file or the new one, never a mixture.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_options) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``.

    On an exception (or a kill) ``path`` is untouched and the temporary file is removed (a
    kill may leave a hidden ``.name.*.tmp`` behind, never a damaged ``path``).

    Args:
        path: the file to write.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        **open_options: passed to :func:`open` (``newline``, ``encoding``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, mode, **open_options) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomically(path: str | os.PathLike, text: str, **open_options) -> Path:
    """Write ``text`` to ``path`` with :func:`atomic_write`; returns the path."""
    with atomic_write(path, "w", **open_options) as stream:
        stream.write(text)
    return Path(path)
