"""The manifest: one CSV row per clip file, with what its header says and whether it reads.

Columns written by the indexer (:func:`ultrassl.data.indexing.index_folder`):

============== ======== ==========================================================
column         type     meaning
============== ======== ==========================================================
path           str      the clip (file or frame folder); relative to the manifest's
                        folder when it lies under it, absolute otherwise
format         str      reader name: dicom, itk, video, frames, packed
n_frames       int      frames T in the file
fps            float    frames per second (empty: the file does not say)
height, width  int      frame size in pixels
channels       int      1 (grayscale) or 3 (RGB)
spacing_row_mm float    pixel height in millimetres (empty: unknown)
spacing_col_mm float    pixel width in millimetres (empty: unknown)
has_audio      bool     an audio track can be read with the frames
status         str      ``ok`` or ``refused``
error          str      for refused rows, ``<ErrorClass>: <cause>``; empty when ok
============== ======== ==========================================================

Optional columns come from annotations: ``label`` (int, 0-based), ``split``, ``subject``,
``group``, ``class_name``, and the per-frame sidecars ``frame_labels`` / ``fixations``
(paths, stored like ``path``). Any other column is kept as text.

Refused rows may leave the header columns empty. :func:`read_manifest` checks every
column of the rows it returns and raises :class:`~ultrassl.errors.ManifestError` naming
the file, the line and the problem.

A CSV cut at a row boundary (an interrupted copy, a full disk) still parses, with fewer
rows. :func:`write_manifest` therefore writes a sidecar, ``<manifest>.integrity.json``, with
the row count, byte size and SHA-256 of what it wrote, and :func:`read_manifest` refuses a
manifest that is shorter than its sidecar says and has lost rows or its final newline. A
manifest edited by hand (rows or columns added, values changed) differs from its sidecar
too and is read as it is; one whose rows were removed on purpose is accepted once the
sidecar is deleted or the manifest is written again with :func:`write_manifest`. Manifests
without a sidecar (made by other tools) are read without this check.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ultrassl.atomic import atomic_write, write_text_atomically
from ultrassl.errors import ManifestError

#: columns every manifest has, in the order they are written
REQUIRED_COLUMNS: tuple[str, ...] = (
    "path",
    "format",
    "n_frames",
    "fps",
    "height",
    "width",
    "channels",
    "spacing_row_mm",
    "spacing_col_mm",
    "has_audio",
    "status",
    "error",
)
#: columns holding file paths (stored relative to the manifest's folder when under it)
PATH_COLUMNS: tuple[str, ...] = ("path", "frame_labels", "fixations")
#: integer columns; required on ``ok`` rows except ``label``, which may be empty (unlabelled)
INT_COLUMNS: tuple[str, ...] = ("n_frames", "height", "width", "channels")
#: float columns; empty means unknown
FLOAT_COLUMNS: tuple[str, ...] = ("fps", "spacing_row_mm", "spacing_col_mm")
STATUSES: tuple[str, ...] = ("ok", "refused")

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def _line(row_position: int) -> int:
    """The CSV line number of a data row (line 1 is the header)."""
    return int(row_position) + 2


def _fail(path: Path, message: str) -> ManifestError:
    return ManifestError(message, str(path))


def _bad_rows(mask: np.ndarray, df: pd.DataFrame, positions: np.ndarray) -> str:
    """``line 5 (clip.mp4)``, for the first few rows flagged in ``mask``."""
    hits = np.flatnonzero(mask)
    shown = ", ".join(f"line {_line(positions[i])} ({df['path'].iloc[i]})" for i in hits[:3])
    more = f" and {hits.size - 3} more" if hits.size > 3 else ""
    return shown + more


def _to_int(path: Path, df: pd.DataFrame, column: str, positions: np.ndarray, required: bool) -> pd.Series:
    text = df[column].str.strip()
    empty = (text == "").to_numpy()
    if required and empty.any():
        raise _fail(path, f"column {column!r} is empty on {_bad_rows(empty, df, positions)}")
    values = pd.to_numeric(text.where(~empty), errors="coerce")
    bad = (~empty) & (values.isna().to_numpy() | (values.fillna(0) % 1 != 0).to_numpy())
    if bad.any():
        raise _fail(path, f"column {column!r} is not an integer on {_bad_rows(bad, df, positions)}")
    values = values.astype("Int64")
    return values.astype(np.int64) if not values.isna().any() else values


def _to_float(path: Path, df: pd.DataFrame, column: str, positions: np.ndarray) -> pd.Series:
    text = df[column].str.strip()
    empty = (text == "").to_numpy()
    values = pd.to_numeric(text.where(~empty), errors="coerce").astype(np.float64)
    bad = (~empty) & values.isna().to_numpy()
    if bad.any():
        raise _fail(path, f"column {column!r} is not a number on {_bad_rows(bad, df, positions)}")
    return values


def _to_bool(path: Path, df: pd.DataFrame, column: str, positions: np.ndarray) -> pd.Series:
    text = df[column].str.strip().str.lower()
    bad = (~text.isin(_TRUE | _FALSE | {""})).to_numpy()
    if bad.any():
        raise _fail(path, f"column {column!r} is not true/false on {_bad_rows(bad, df, positions)}")
    return text.isin(_TRUE)


def resolve_path(value: str, base: Path) -> str:
    """An absolute, normalised path: ``value`` if absolute, else ``base / value``."""
    p = Path(value)
    return os.path.normpath(p if p.is_absolute() else base / p)


def portable_path(value: str, base: Path) -> str:
    """``value`` relative to ``base`` (POSIX separators) when it lies under it, else absolute."""
    absolute = Path(os.path.abspath(value))
    try:
        return absolute.relative_to(os.path.abspath(base)).as_posix()
    except ValueError:
        return str(absolute)


def read_manifest(path: str | os.PathLike, status: str | None = "ok") -> pd.DataFrame:
    """Read and check a manifest.

    Args:
        path: the manifest CSV.
        status: keep only rows with this status (``"ok"`` or ``"refused"``); ``None`` keeps all.

    Returns:
        a DataFrame with a fresh 0..N-1 index. ``path`` and the sidecar columns are absolute;
        integer columns are int64 (nullable ``Int64`` where a returned row leaves them empty,
        as refused rows may; ``label`` is nullable when some clips are unlabelled); float
        columns float64 with NaN for unknown; ``has_audio`` bool; every other column text
        (empty string when empty).

    Raises:
        ManifestError: the file is missing, unreadable, lacks a column or holds a bad value;
            the message names the file, the column and the CSV lines concerned.
    """
    path = Path(path)
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES} or None, got {status!r}")
    if not path.is_file():
        raise _fail(path, "no such manifest file")
    try:
        # Everything as text first, so that each column is checked and typed here.
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise _fail(path, f"not a readable CSV manifest ({type(exc).__name__}: {exc})") from exc
    check_not_truncated(path, len(df))
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise _fail(path, f"missing required column(s) {', '.join(map(repr, missing))}")

    positions = np.arange(len(df))
    df["status"] = df["status"].str.strip()
    bad_status = (~df["status"].isin(STATUSES)).to_numpy()
    if bad_status.any():
        raise _fail(path, f"column 'status' must be ok or refused on {_bad_rows(bad_status, df, positions)}")
    empty_path = (df["path"].str.strip() == "").to_numpy()
    if empty_path.any():
        lines = ", ".join(str(_line(i)) for i in np.flatnonzero(empty_path)[:3])
        raise _fail(path, f"column 'path' is empty on line(s) {lines}")
    if status is not None:
        keep = (df["status"] == status).to_numpy()
        df, positions = df[keep].reset_index(drop=True), positions[keep]

    ok_only = status == "ok"
    for column in INT_COLUMNS:
        df[column] = _to_int(path, df, column, positions, required=ok_only)
    if "label" in df.columns:
        df["label"] = _to_int(path, df, "label", positions, required=False)
    for column in FLOAT_COLUMNS:
        df[column] = _to_float(path, df, column, positions)
    df["has_audio"] = _to_bool(path, df, "has_audio", positions)

    if ok_only and len(df):
        checks = {
            "n_frames must be >= 1": df["n_frames"] < 1,
            "height and width must be >= 1": (df["height"] < 1) | (df["width"] < 1),
            "channels must be 1 or 3": ~df["channels"].isin([1, 3]),
            "format is empty": df["format"].str.strip() == "",
            "fps must be > 0 when given": df["fps"] <= 0,
        }
        for problem, mask in checks.items():
            mask = mask.to_numpy(dtype=bool)
            if mask.any():
                raise _fail(path, f"{problem} on {_bad_rows(mask, df, positions)}")

    base = path.resolve().parent
    for column in PATH_COLUMNS:
        if column in df.columns:
            df[column] = [resolve_path(v, base) if v.strip() else "" for v in df[column]]
    return df


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``df`` as a manifest CSV at ``path``; returns the path written.

    Paths under the manifest's folder are stored relative to it (so the folder can be moved
    or mounted elsewhere), others absolute. Required columns come first in their standard
    order, then the others in ``df``'s order. Empty cells for unknown values.

    Raises:
        ManifestError: ``df`` lacks a required column.
    """
    path = Path(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise _fail(path, f"cannot write a manifest without column(s) {', '.join(map(repr, missing))}")
    out = df.copy()
    base = path.resolve().parent
    for column in PATH_COLUMNS:
        if column in out.columns:
            out[column] = [
                portable_path(str(v), base) if isinstance(v, (str, os.PathLike)) and str(v).strip() else ""
                for v in out[column]
            ]
    out["has_audio"] = [_bool_text(v) for v in out["has_audio"]]
    for column in (*INT_COLUMNS, "label"):
        if column in out.columns:
            # Whole numbers print without ".0" even when empty cells made the column float.
            out[column] = pd.to_numeric(out[column].replace("", None), errors="raise").astype("Int64")
    columns = list(REQUIRED_COLUMNS) + [c for c in out.columns if c not in REQUIRED_COLUMNS]
    text = out[columns].to_csv(index=False, lineterminator="\n")
    # The old sidecar goes first: a kill between the two writes leaves a manifest without
    # one (read unchecked), never a new manifest beside the old manifest's facts.
    integrity_path(path).unlink(missing_ok=True)
    data = text.encode("utf-8")
    with atomic_write(path, "wb") as stream:  # a kill never leaves half a manifest
        stream.write(data)
    facts = {"format": INTEGRITY_FORMAT, "rows": len(out), "bytes": len(data),
             "sha256": hashlib.sha256(data).hexdigest()}
    write_text_atomically(integrity_path(path), json.dumps(facts, indent=1) + "\n")
    return path


#: the ``format`` field of a manifest's integrity sidecar
INTEGRITY_FORMAT = "ultrassl-manifest-integrity/1"


def integrity_path(path: str | os.PathLike) -> Path:
    """The sidecar :func:`write_manifest` writes beside ``path``: ``<name>.integrity.json``."""
    path = Path(path)
    return path.with_name(path.name + ".integrity.json")


def check_not_truncated(path: str | os.PathLike, rows: int) -> None:
    """Raise :class:`~ultrassl.errors.ManifestError` when the manifest at ``path``, which
    parsed to ``rows`` data rows, is shorter than its integrity sidecar records and has lost
    rows or its final newline (see the module docstring); nothing without a sidecar."""
    path = Path(path)
    sidecar = integrity_path(path)
    try:
        facts = json.loads(sidecar.read_text())
        written_rows, written_bytes, written_hash = int(facts["rows"]), int(facts["bytes"]), str(facts["sha256"])
    except FileNotFoundError:
        return
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise _fail(path, f"its integrity file {sidecar.name} is unreadable ({type(exc).__name__}); delete it to "
                          "read the manifest unchecked") from exc
    size = path.stat().st_size
    if size >= written_bytes or manifest_hash(path) == written_hash:
        return  # as written, or edited (grown): read as it is
    with open(path, "rb") as handle:
        handle.seek(max(0, size - 1))
        ends_with_newline = handle.read(1) in (b"\n", b"\r")
    if rows < written_rows or not ends_with_newline:
        raise _fail(path, f"looks cut short: it holds {rows} rows in {size} bytes but was written with "
                          f"{written_rows} rows in {written_bytes} bytes ({sidecar.name}), as after an interrupted "
                          f"copy or a full disk; copy it again, or, if rows were removed on purpose, delete "
                          f"{sidecar.name}")


def _bool_text(value) -> str:
    if isinstance(value, str):
        text = value.strip().lower()
        return "" if not text else ("true" if text in _TRUE else "false")
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    return "true" if bool(value) else "false"


def manifest_hash(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of the manifest file's bytes: which data a run saw, for provenance.

    Relative paths make the hash independent of where the data folder is mounted.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such manifest file")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def empty_manifest(extra_columns: Iterable[str] = ()) -> pd.DataFrame:
    """A manifest DataFrame with no rows and the standard columns (plus ``extra_columns``)."""
    return pd.DataFrame(columns=list(REQUIRED_COLUMNS) + [c for c in extra_columns if c not in REQUIRED_COLUMNS])
