"""What the viewer reads besides pixels: the manifest, plane classes, frame labels, fixations.

Plain functions over :mod:`ultrassl.data`, kept apart from the Streamlit page so that they
can be tested without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ultrassl.data.manifest import read_manifest
from ultrassl.errors import ManifestError
from ultrassl.transforms.annotations import read_fixations, read_frame_labels

#: file beside the manifest naming the plane classes in label order, one per line
CLASSES_FILE = "planes.txt"
#: columns of the clip table, when the manifest has them
CLIP_TABLE_COLUMNS = ("clip", "format", "n_frames", "fps", "height", "width", "channels", "subject", "split", "label")


def load_manifest(path: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The readable and the refused rows of a manifest, each with a fresh 0..N-1 index.

    Both get a ``clip`` column: the path relative to the manifest's folder when under it.

    Raises:
        ManifestError: the manifest is missing or malformed.
    """
    path = Path(path)
    base = path.resolve().parent
    tables = []
    for status in ("ok", "refused"):
        rows = read_manifest(path, status=status)
        rows["clip"] = [relative_name(p, base) for p in rows["path"]]
        tables.append(rows)
    ok, refused = tables
    return ok, refused


def relative_name(path: str, base: Path) -> str:
    """``path`` relative to ``base`` (POSIX separators) when it lies under it, else as given."""
    try:
        return Path(path).resolve().relative_to(base).as_posix()
    except ValueError:
        return str(path)


def split_served(ok: pd.DataFrame, served) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows whose clip lies inside the served folders (:class:`apps.serving.ServedFolders`)
    and those that do not (never opened), each with a fresh index."""
    inside = np.array([served.contains(p) for p in ok["path"]], dtype=bool) if len(ok) else np.zeros(0, bool)
    return ok[inside].reset_index(drop=True), ok[~inside].reset_index(drop=True)


def no_rows() -> pd.DataFrame:
    """An empty table of refused rows (a clip opened without a manifest)."""
    return pd.DataFrame(columns=["clip", "format", "error"])


def clip_table(ok: pd.DataFrame) -> pd.DataFrame:
    """The columns of the readable rows worth a glance, in a fixed order."""
    return ok[[c for c in CLIP_TABLE_COLUMNS if c in ok.columns]]


def has_sidecar(row: pd.Series, column: str) -> bool:
    """Whether the manifest row names a ``frame_labels`` / ``fixations`` file."""
    value = row.get(column)
    return isinstance(value, str) and bool(value.strip())


def plane_classes(manifest_path: str | os.PathLike) -> list[str] | None:
    """Class names in label order from ``planes.txt`` beside the manifest, if there is one."""
    classes_file = Path(manifest_path).resolve().parent / CLASSES_FILE
    if not classes_file.is_file():
        return None
    try:
        text = classes_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"not UTF-8 text (byte {exc.start}); write the class names as UTF-8, one per line",
                            str(classes_file)) from None
    names = [line.strip() for line in text.splitlines()]
    names = [name for name in names if name]
    return names or None


def load_plane_labels(
    path: str | os.PathLike, n_frames: int, classes: list[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Plane label of every frame, and the class names the labels index.

    Args:
        path: frame-label sidecar (see :mod:`ultrassl.transforms.annotations`).
        n_frames: frames in the clip.
        classes: class names in label order (from :func:`plane_classes`). Without them the
            names found in the file are used, background first, then in order of first
            appearance; integer labels are named ``class <i>``.

    Returns:
        int64 ``(n_frames,)`` labels and the list of class names.

    Raises:
        ManifestError: the sidecar is missing, malformed, or does not cover every frame.
    """
    if classes is None:
        table = pd.read_csv(path, dtype=str, keep_default_na=False) if Path(path).is_file() else None
        column = None if table is None else next((c for c in ("plane", "label") if c in table.columns), None)
        values = [] if column is None else [v.strip() for v in table[column]]
        if values and not all(v.lstrip("-").isdigit() for v in values):
            names = list(dict.fromkeys(values))
            names.sort(key=lambda name: name.lower() not in ("background", "other", "none"))
            classes = names
    labels = read_frame_labels(path, n_frames, classes)
    if classes is None:
        classes = [f"class {i}" for i in range(int(labels.max()) + 1)]
    return labels, list(classes)


def load_fixations(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """Fixations per frame, ``{frame: float32 (k, 2) of (x, y)}`` (see :func:`read_fixations`)."""
    return read_fixations(path)


def fixations_between(fixations: dict[int, np.ndarray], first: int, last: int) -> np.ndarray:
    """All fixations of frames ``first..last`` (inclusive), float32 ``(k, 2)``."""
    chunks = [fixations[f] for f in range(int(first), int(last) + 1) if f in fixations]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, 2), dtype=np.float32)


def fixation_counts(fixations: dict[int, np.ndarray], n_frames: int) -> np.ndarray:
    """Number of fixations on each frame, int64 ``(n_frames,)``; frames outside the clip are ignored."""
    counts = np.zeros(int(n_frames), dtype=np.int64)
    for frame, points in fixations.items():
        if 0 <= frame < n_frames:
            counts[frame] = len(points)
    return counts


def describe_error(exc: BaseException) -> str:
    """One line for the page: the error class and its message (which names the file and cause)."""
    return f"{type(exc).__name__}: {exc}"


__all__ = [
    "CLASSES_FILE",
    "no_rows",
    "split_served",
    "clip_table",
    "describe_error",
    "fixation_counts",
    "fixations_between",
    "has_sidecar",
    "load_fixations",
    "load_manifest",
    "load_plane_labels",
    "plane_classes",
    "relative_name",
]
