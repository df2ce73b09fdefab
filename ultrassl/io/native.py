"""Keeping what native libraries print out of the terminal, and in the error where it helps.

SimpleITK's MetaImage and NIfTI readers write their complaints ("NDims required and not
defined", "MET_Read Failed") straight to the process's standard error from C++, around any
progress bar and outside Python's control; the Python exception that follows says less. No
library option turns this off (``ProcessObject_SetGlobalWarningDisplay`` covers warnings, not
MetaIO's messages), so standard error's file descriptor is pointed at a temporary file for the
duration of a native call and what it caught is handed back.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from typing import Iterator

_LOCK = threading.Lock()
#: bytes of captured text kept; the rest is dropped
_KEEP = 64 * 1024


@contextlib.contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Within the block, whatever is written to file descriptor 2 (by C, C++ or Python) goes to
    a temporary file; on exit the list yielded holds its non-empty lines.

    One block at a time per process (file descriptors are process-wide); Python's own
    ``sys.stderr`` is flushed first so nothing written before the block is swallowed.
    """
    lines: list[str] = []
    with _LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with tempfile.TemporaryFile() as sink:
                os.dup2(sink.fileno(), 2)
                try:
                    yield lines
                finally:
                    sys.stderr.flush()
                    os.dup2(saved, 2)
                    sink.seek(0)
                    text = sink.read(_KEEP).decode("utf-8", "replace")
                    lines.extend(line.strip() for line in text.splitlines() if line.strip())
        finally:
            os.close(saved)


def native_note(lines: list[str], library: str, limit: int = 300) -> str:
    """`` (ITK said: a; b)``, distinct lines in order, at most ``limit`` characters; "" when none."""
    if not lines:
        return ""
    distinct = "; ".join(dict.fromkeys(lines))
    if len(distinct) > limit:
        distinct = distinct[: limit - 3] + "..."
    return f" ({library} said: {distinct})"
