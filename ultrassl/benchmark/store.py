"""The output folder of a benchmark run: finished runs as JSON records, written atomically,
so that a run stopped at any point resumes where it stopped.

Every finished unit of work (a pretraining, an arm, a baseline) leaves one record, written
to a temporary file in the same folder and moved into place with :func:`os.replace`: a
record is either complete or absent, never half written. A rerun into the same folder skips
every unit whose record exists and reuses the pretraining checkpoints the records name.

The folder's ``benchmark.json`` holds what its results depend on (the profile as read, the
simulator seed, the SHA-256 of every config the profile names); a rerun with anything else
is refused (:func:`claim_folder`) instead of mixing results of two settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ultrassl.atomic import write_text_atomically
from ultrassl.errors import UltrasslError
from ultrassl.plain import plain

#: the record that ties an output folder to its settings
IDENTITY_FILE = "benchmark.json"


class FolderMismatchError(UltrasslError):
    """An output folder holds a benchmark of other settings."""


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """Write ``value`` (made plain) as JSON at ``path`` atomically."""
    path = Path(path)
    write_text_atomically(path, json.dumps(plain(value), indent=2) + "\n")
    return path


def read_json(path: str | os.PathLike) -> Any | None:
    """The JSON at ``path``, or None when there is none."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found = []
        for key in sorted(set(old) | set(new)):
            found += _differences(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return found
    return [] if old == new else [f"{prefix}: {json.dumps(old)} -> {json.dumps(new)}"]


def claim_folder(out: str | os.PathLike, identity: Mapping[str, Any]) -> Path:
    """Tie ``out`` to ``identity`` (a new folder), or check that it is tied to it already.

    Raises:
        FolderMismatchError: the folder holds a benchmark of other settings; the message
            lists the differences.
    """
    out = Path(out)
    path = out / IDENTITY_FILE
    identity = plain(identity)
    existing = read_json(path)
    if existing is not None and existing != identity:
        changes = _differences(existing, identity)
        shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
        raise FolderMismatchError(
            f"{out} holds a benchmark of other settings ({shown}); give another --out, or the same profile, "
            "simulator seed and configs to resume it")
    if existing is None:
        write_json(path, identity)
    return path
