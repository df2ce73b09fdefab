"""The viewer's reading helpers: manifest split, plane labels, fixations, sector window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps import loading
from ultrassl.data.manifest import REQUIRED_COLUMNS, write_manifest
from ultrassl.errors import ManifestError


def _row(path: str, status: str = "ok", error: str = "") -> dict:
    row = dict.fromkeys(REQUIRED_COLUMNS, "")
    row.update(path=path, status=status, error=error)
    if status == "ok":
        row.update(format="video", n_frames=8, fps=25.0, height=32, width=48, channels=3, has_audio=False)
    return row


def test_manifest_is_split_into_readable_and_refused_rows(tmp_path):
    rows = [_row(str(tmp_path / "a.mp4")), _row(str(tmp_path / "sub" / "b.dcm"), "refused", "CorruptFileError: x"),
            _row(str(tmp_path / "c.mp4"))]
    manifest = write_manifest(pd.DataFrame(rows), tmp_path / "manifest.csv")
    ok, refused = loading.load_manifest(manifest)
    assert ok["clip"].tolist() == ["a.mp4", "c.mp4"]
    assert ok["n_frames"].dtype == np.int64 and ok["fps"].tolist() == [25.0, 25.0]
    assert refused["clip"].tolist() == ["sub/b.dcm"] and refused["error"].tolist() == ["CorruptFileError: x"]
    assert list(loading.clip_table(ok).columns)[:3] == ["clip", "format", "n_frames"]
    with pytest.raises(ManifestError, match="no such manifest file"):
        loading.load_manifest(tmp_path / "missing.csv")


def test_plane_labels_with_and_without_a_class_file(tmp_path):
    sidecar = tmp_path / "clip.planes.csv"
    pd.DataFrame({"frame": [2, 0, 1, 3], "plane": ["4CH", "3VV", "Background", "4CH"]}).to_csv(sidecar, index=False)
    (tmp_path / "planes.txt").write_text("Background\n3VV\n4CH\nLVOT\n")
    classes = loading.plane_classes(tmp_path / "manifest.csv")
    assert classes == ["Background", "3VV", "4CH", "LVOT"]
    labels, names = loading.load_plane_labels(sidecar, 4, classes)
    assert [names[i] for i in labels] == ["3VV", "Background", "4CH", "4CH"]
    # without planes.txt: the names in the file, background first
    labels, names = loading.load_plane_labels(sidecar, 4, None)
    assert names == ["Background", "4CH", "3VV"]
    assert [names[i] for i in labels] == ["3VV", "Background", "4CH", "4CH"]
    assert loading.plane_classes(tmp_path / "elsewhere" / "manifest.csv") is None


def test_integer_plane_labels_get_generic_names(tmp_path):
    sidecar = tmp_path / "clip.labels.csv"
    pd.DataFrame({"frame": [0, 1, 2], "label": [0, 2, 2]}).to_csv(sidecar, index=False)
    labels, names = loading.load_plane_labels(sidecar, 3)
    assert labels.tolist() == [0, 2, 2] and names == ["class 0", "class 1", "class 2"]
    with pytest.raises(ManifestError, match="no label"):
        loading.load_plane_labels(sidecar, 5)


def test_fixations_by_frame(tmp_path):
    sidecar = tmp_path / "clip.fixations.csv"
    pd.DataFrame({"frame": [0, 0, 2, 9], "x": [1.5, 2.0, 3.0, 4.0], "y": [5.0, 6.0, 7.0, 8.0]}).to_csv(
        sidecar, index=False
    )
    fixations = loading.load_fixations(sidecar)
    np.testing.assert_array_equal(loading.fixations_between(fixations, 0, 0), [[1.5, 5.0], [2.0, 6.0]])
    np.testing.assert_array_equal(loading.fixations_between(fixations, 1, 2), [[3.0, 7.0]])
    assert loading.fixations_between(fixations, 3, 4).shape == (0, 2)
    assert loading.fixation_counts(fixations, 4).tolist() == [2, 0, 1, 0]  # frame 9 lies outside
