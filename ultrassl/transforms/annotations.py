"""Per-frame annotation sidecars: frame labels (standard planes) and gaze fixations.

Sidecar formats (small CSV files named in the manifest's ``frame_labels`` and ``fixations``
columns):

* frame labels: columns ``frame`` (0-based index in the clip file) and ``plane`` (a class
  name) or ``label`` (a class name or a 0-based integer); one row per frame, every frame of
  the clip labelled exactly once.
* fixations: columns ``frame``, ``x``, ``y``; any number of rows per frame (none for a frame
  without fixations). ``x`` is the column and ``y`` the row, in pixels of the frame as stored
  in the file (sub-pixel floats allowed).

:class:`LoadFrameAnnotationsd` attaches to each view the annotations of exactly the frames
:class:`~ultrassl.transforms.temporal.SampleFramesd` chose for it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.transforms import Transform

from ultrassl.errors import FrameIndexError, ManifestError
from ultrassl.transforms.temporal import frame_indices_key

#: default K: the most fixations kept per frame (gaze trackers record a few per video frame)
MAX_FIXATIONS_PER_FRAME = 8


def _read_table(path: str | os.PathLike, required: Sequence[str], what: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"no such {what} file", str(path))
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ManifestError(f"not a readable {what} CSV ({type(exc).__name__}: {exc})", str(path)) from exc
    table.columns = [c.strip() for c in table.columns]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ManifestError(f"{what} file lacks column(s) {missing}; it has {list(table.columns)}", str(path))
    return table


def _frame_numbers(path: Path, column: pd.Series) -> np.ndarray:
    values = pd.to_numeric(column.str.strip(), errors="coerce")
    bad = values.isna() | (values % 1 != 0) | (values < 0)
    if bad.any():
        raise ManifestError(
            f"'frame' must hold 0-based integer indices; line {int(np.flatnonzero(bad.to_numpy())[0]) + 2} "
            f"holds {column.iloc[int(np.flatnonzero(bad.to_numpy())[0])]!r}",
            str(path),
        )
    return values.to_numpy(dtype=np.int64)


def read_frame_labels(
    path: str | os.PathLike, n_frames: int, classes: Sequence[str] | None = None
) -> np.ndarray:
    """The label of every frame of a clip, from a frame-label sidecar.

    Args:
        path: CSV with columns ``frame`` and ``plane`` or ``label``.
        n_frames: frames in the clip; every index ``0..n_frames-1`` must appear exactly once.
        classes: class names in label order (label ``i`` is ``classes[i]``). Names in the file
            are mapped through it; integers are checked against its length. Without it the
            file must hold integers.

    Returns:
        int64 array ``(n_frames,)`` of 0-based labels.

    Raises:
        ManifestError: missing columns, an unknown class, a frame labelled twice, an index
            outside the clip, or frames left unlabelled (the first few are named).
    """
    path = Path(path)
    table = _read_table(path, ["frame"], "frame-label")
    value_column = "plane" if "plane" in table.columns else "label" if "label" in table.columns else None
    if value_column is None:
        raise ManifestError(f"frame-label file needs a 'plane' or 'label' column; it has {list(table.columns)}", str(path))
    frames = _frame_numbers(path, table["frame"])
    index_of = {name: i for i, name in enumerate(classes)} if classes is not None else {}
    labels = np.empty(len(table), dtype=np.int64)
    for row, raw in enumerate(table[value_column].str.strip()):
        if raw in index_of:
            labels[row] = index_of[raw]
        elif raw.lstrip("-").isdigit():
            labels[row] = int(raw)
            if classes is not None and not 0 <= labels[row] < len(classes):
                raise ManifestError(
                    f"line {row + 2}: label {raw} outside 0..{len(classes) - 1} ({len(classes)} classes)", str(path)
                )
            if labels[row] < 0:
                raise ManifestError(f"line {row + 2}: negative label {raw}", str(path))
        else:
            known = f"; known classes: {list(classes)}" if classes is not None else "; no class names were given"
            raise ManifestError(f"line {row + 2}: unknown class {raw!r}{known}", str(path))
    outside = frames >= n_frames
    if outside.any():
        raise ManifestError(
            f"frame {int(frames[outside][0])} is outside the clip's {n_frames} frames", str(path)
        )
    counts = np.bincount(frames, minlength=n_frames)
    if (counts > 1).any():
        raise ManifestError(f"frame {int(np.flatnonzero(counts > 1)[0])} is labelled more than once", str(path))
    unlabelled = np.flatnonzero(counts == 0)
    if unlabelled.size:
        shown = ", ".join(map(str, unlabelled[:5])) + (" ..." if unlabelled.size > 5 else "")
        raise ManifestError(f"{unlabelled.size} of {n_frames} frames have no label (frames {shown})", str(path))
    out = np.empty(n_frames, dtype=np.int64)
    out[frames] = labels
    return out


def read_fixations(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """Gaze fixations per frame, from a fixation sidecar.

    Args:
        path: CSV with columns ``frame``, ``x``, ``y`` (pixels of the stored frame).

    Returns:
        ``{frame index: float32 array (k, 2) of (x, y)}`` in file order within each frame;
        frames without fixations are absent.

    Raises:
        ManifestError: missing columns, a bad frame index, or a non-finite coordinate.
    """
    path = Path(path)
    table = _read_table(path, ["frame", "x", "y"], "fixation")
    frames = _frame_numbers(path, table["frame"])
    xy = np.stack(
        [pd.to_numeric(table[c].str.strip(), errors="coerce").to_numpy(dtype=np.float64) for c in ("x", "y")], axis=1
    )
    bad = ~np.isfinite(xy).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ManifestError(f"line {row + 2}: coordinates must be finite numbers", str(path))
    fixations: dict[int, list] = {}
    for frame, point in zip(frames.tolist(), xy.astype(np.float32)):
        fixations.setdefault(frame, []).append(point)
    return {frame: np.stack(points) for frame, points in fixations.items()}


def _sidecar(data: Mapping[Hashable, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    value = str(value).strip()
    return value or None


class LoadFrameAnnotationsd(Transform):
    """Attach the frame labels and fixations of the frames each view was sampled from.

    Run it after :class:`~ultrassl.transforms.temporal.SampleFramesd`, which puts
    ``"{view}_frame_indices"`` (int64 ``(T,)``) in the sample. For each view it adds:

    * ``"{view}_frame_labels"``: int64 tensor ``(T,)``, the label of each sampled frame;
    * ``"{view}_fixations"``: float32 tensor ``(T, K, 2)`` of (x, y) in pixels of the stored
      frame, zero-padded; ``"{view}_fixations_valid"``: bool ``(T, K)``, which entries are real;
      ``"{view}_fixations_count"``: int64 ``(T,)``. The fixed K makes samples collate.

    Sidecars are parsed once per file and kept in this instance (each DataLoader worker has
    its own copy). The input dict is not modified.

    Args:
        view_keys: the views, as named in ``SampleFramesd``.
        frame_labels_key: sample entry holding the frame-label CSV path (None: do not load).
        fixations_key: sample entry holding the fixation CSV path (None: do not load).
        classes: class names in label order, for sidecars that name classes (see
            :func:`read_frame_labels`).
        max_fixations: K, fixations kept per frame (default
            :data:`MAX_FIXATIONS_PER_FRAME` = 8). A frame with more raises rather than
            silently dropping gaze data.
        n_frames_key: entry holding the clip's frame count (checks the labels cover it).
        path_key: entry holding the clip's path, for error messages.

    Raises:
        ManifestError: a sample lacks a sidecar the transform was asked to load, a sidecar is
            malformed, or a frame has more than K fixations.
        FrameIndexError: a sampled index lies outside the clip.
    """

    def __init__(
        self,
        view_keys: str | Sequence[str] = ("clip",),
        frame_labels_key: str | None = "frame_labels",
        fixations_key: str | None = "fixations",
        classes: Sequence[str] | None = None,
        max_fixations: int = MAX_FIXATIONS_PER_FRAME,
        n_frames_key: str = "n_frames",
        path_key: str = "path",
    ):
        self.view_keys = (view_keys,) if isinstance(view_keys, str) else tuple(view_keys)
        if frame_labels_key is None and fixations_key is None:
            raise ValueError("LoadFrameAnnotationsd needs frame_labels_key, fixations_key or both")
        if int(max_fixations) < 1:
            raise ValueError(f"max_fixations must be >= 1, got {max_fixations}")
        self.frame_labels_key = frame_labels_key
        self.fixations_key = fixations_key
        self.classes = None if classes is None else tuple(classes)
        self.max_fixations = int(max_fixations)
        self.n_frames_key = n_frames_key
        self.path_key = path_key
        self._labels: dict[tuple[str, int], np.ndarray] = {}
        self._fixations: dict[str, dict[int, np.ndarray]] = {}

    def _require(self, d: Mapping[Hashable, Any], key: str) -> str:
        sidecar = _sidecar(d, key)
        if sidecar is None:
            raise ManifestError(f"the sample has no {key!r} sidecar (empty in the manifest?)", d.get(self.path_key))
        return sidecar

    def frame_labels(self, path: str, n_frames: int) -> np.ndarray:
        """Labels of every frame of the clip (cached), int64 ``(n_frames,)``."""
        key = (path, int(n_frames))
        if key not in self._labels:
            self._labels[key] = read_frame_labels(path, int(n_frames), self.classes)
        return self._labels[key]

    def fixations(self, path: str) -> dict[int, np.ndarray]:
        """Fixations per frame of the clip (cached)."""
        if path not in self._fixations:
            fixations = read_fixations(path)
            crowded = [f for f, points in fixations.items() if len(points) > self.max_fixations]
            if crowded:
                raise ManifestError(
                    f"frame {crowded[0]} has {len(fixations[crowded[0]])} fixations, more than "
                    f"max_fixations={self.max_fixations}; raise max_fixations",
                    path,
                )
            self._fixations[path] = fixations
        return self._fixations[path]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        clip_path = d.get(self.path_key)
        labels = fixations = None
        n_frames = None
        if self.frame_labels_key is not None:
            if d.get(self.n_frames_key) is None:
                raise KeyError(f"LoadFrameAnnotationsd needs the frame count under {self.n_frames_key!r}")
            n_frames = int(d[self.n_frames_key])
            labels = self.frame_labels(self._require(d, self.frame_labels_key), n_frames)
        if self.fixations_key is not None:
            fixations = self.fixations(self._require(d, self.fixations_key))
        for view in self.view_keys:
            key = frame_indices_key(view)
            if key not in d:
                raise KeyError(f"LoadFrameAnnotationsd needs {key!r}: run SampleFramesd first")
            indices = np.asarray(d[key], dtype=np.int64).reshape(-1)
            if labels is not None:
                bad = indices[(indices < 0) | (indices >= n_frames)]
                if bad.size:
                    raise FrameIndexError(f"frame index {int(bad[0])} outside the clip's {n_frames} frames", clip_path)
                d[f"{view}_frame_labels"] = torch.from_numpy(labels[indices].copy())
            if fixations is not None:
                points = torch.zeros((indices.size, self.max_fixations, 2), dtype=torch.float32)
                count = torch.zeros(indices.size, dtype=torch.int64)
                for t, frame in enumerate(indices.tolist()):
                    xy = fixations.get(frame)
                    if xy is not None:
                        points[t, : len(xy)] = torch.from_numpy(xy)
                        count[t] = len(xy)
                d[f"{view}_fixations"] = points
                d[f"{view}_fixations_count"] = count
                d[f"{view}_fixations_valid"] = torch.arange(self.max_fixations)[None, :] < count[:, None]
        return d
