"""The manifest CSV: round trip, portable paths, checks with clear errors, hash."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest

from ultrassl.data.manifest import REQUIRED_COLUMNS, manifest_hash, read_manifest, write_manifest
from ultrassl.errors import ManifestError


def _rows(root, outside):
    return pd.DataFrame(
        [
            {
                "path": str(root / "videos" / "a.mp4"), "format": "video", "n_frames": 12, "fps": 29.97,
                "height": 32, "width": 64, "channels": 3, "spacing_row_mm": np.nan, "spacing_col_mm": np.nan,
                "has_audio": True, "status": "ok", "error": "", "label": 2, "split": "train",
                "frame_labels": str(root / "labels" / "a.csv"),
            },
            {
                "path": str(outside / "b.dcm"), "format": "dicom", "n_frames": 30, "fps": np.nan,
                "height": 48, "width": 40, "channels": 1, "spacing_row_mm": 0.25, "spacing_col_mm": 0.3,
                "has_audio": False, "status": "ok", "error": "", "label": None, "split": "test",
                "frame_labels": "",
            },
            {
                "path": str(root / "bad.mp4"), "format": "video", "n_frames": None, "fps": None,
                "height": None, "width": None, "channels": None, "spacing_row_mm": None, "spacing_col_mm": None,
                "has_audio": None, "status": "refused", "error": "CorruptFileError: truncated", "label": None,
                "split": "", "frame_labels": "",
            },
        ]
    )


def test_round_trip_keeps_values_and_types(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    path = write_manifest(_rows(root, outside), root / "manifest.csv")
    ok = read_manifest(path)
    assert list(ok.columns[: len(REQUIRED_COLUMNS)]) == list(REQUIRED_COLUMNS)
    assert len(ok) == 2
    assert ok["path"].tolist() == [str(root / "videos" / "a.mp4"), str(outside / "b.dcm")]
    assert ok["n_frames"].dtype == np.int64 and ok["n_frames"].tolist() == [12, 30]
    assert ok["fps"].iloc[0] == pytest.approx(29.97) and math.isnan(ok["fps"].iloc[1])
    assert ok["spacing_row_mm"].tolist()[1] == pytest.approx(0.25)
    assert ok["has_audio"].dtype == bool and ok["has_audio"].tolist() == [True, False]
    assert ok["label"].iloc[0] == 2 and pd.isna(ok["label"].iloc[1])
    assert ok["split"].tolist() == ["train", "test"]
    assert ok["frame_labels"].tolist() == [str(root / "labels" / "a.csv"), ""]

    everything = read_manifest(path, status=None)
    assert everything["status"].tolist() == ["ok", "ok", "refused"]
    assert everything["error"].iloc[2] == "CorruptFileError: truncated"
    refused = read_manifest(path, status="refused")
    assert refused["path"].tolist() == [str(root / "bad.mp4")]


def test_paths_under_the_manifest_folder_are_stored_relative(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    path = write_manifest(_rows(root, outside), root / "manifest.csv")
    stored = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert stored["path"].tolist() == ["videos/a.mp4", str(outside / "b.dcm"), "bad.mp4"]
    assert stored["frame_labels"].tolist() == ["labels/a.csv", "", ""]
    assert stored["n_frames"].tolist() == ["12", "30", ""]  # whole numbers, no "12.0"

    # The folder can move: relative entries follow it, absolute ones stay.
    moved = tmp_path / "moved"
    shutil.move(str(root), str(moved))
    ok = read_manifest(moved / "manifest.csv")
    assert ok["path"].tolist() == [str(moved / "videos" / "a.mp4"), str(outside / "b.dcm")]
    assert ok["frame_labels"].iloc[0] == str(moved / "labels" / "a.csv")


def test_hash_follows_content_not_location(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    path = write_manifest(_rows(root, outside), root / "manifest.csv")
    digest = manifest_hash(path)
    assert len(digest) == 64 and int(digest, 16) >= 0
    moved = tmp_path / "moved"
    shutil.move(str(root), str(moved))
    assert manifest_hash(moved / "manifest.csv") == digest
    text = (moved / "manifest.csv").read_text().replace(",12,", ",13,")
    (moved / "manifest.csv").write_text(text)
    assert manifest_hash(moved / "manifest.csv") != digest


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda df: df.drop(columns=["fps"]), "missing required column(s) 'fps'"),
        (lambda df: df.assign(n_frames=["twelve", "30", ""]), "'n_frames' is not an integer on line 2 (videos/a.mp4)"),
        (lambda df: df.assign(n_frames=["12", "", ""]), "'n_frames' is empty on line 3"),
        (lambda df: df.assign(fps=["fast", "", ""]), "'fps' is not a number on line 2"),
        (lambda df: df.assign(status=["ok", "maybe", "refused"]), "'status' must be ok or refused on line 3"),
        (lambda df: df.assign(channels=["3", "2", ""]), "channels must be 1 or 3 on line 3"),
        (lambda df: df.assign(has_audio=["perhaps", "false", ""]), "'has_audio' is not true/false on line 2"),
        (lambda df: df.assign(label=["x", "", ""]), "'label' is not an integer on line 2"),
        (lambda df: df.assign(n_frames=["0", "30", ""]), "n_frames must be >= 1 on line 2"),
    ],
)
def test_bad_manifests_name_the_file_and_the_problem(tmp_path, edit, message):
    root = tmp_path / "data"
    path = write_manifest(_rows(root, tmp_path / "elsewhere"), root / "manifest.csv")
    stored = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(stored).to_csv(path, index=False)
    with pytest.raises(ManifestError) as caught:
        read_manifest(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_missing_or_unreadable_manifest(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest file"):
        read_manifest(tmp_path / "nope.csv")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ManifestError, match="not a readable CSV"):
        read_manifest(empty)


def test_refused_rows_may_leave_header_columns_empty(tmp_path):
    root = tmp_path / "data"
    path = write_manifest(_rows(root, tmp_path / "elsewhere"), root / "manifest.csv")
    everything = read_manifest(path, status=None)
    assert pd.isna(everything["n_frames"].iloc[2])
    assert everything["n_frames"].iloc[0] == 12


def _many_rows(root, n=12):
    rows = _rows(root, root / "elsewhere")
    return pd.concat([rows.iloc[[0]].assign(path=[str(root / f"clip_{i:02d}.mp4")]) for i in range(n)],
                     ignore_index=True)


@pytest.mark.parametrize("cut", ["row boundary", "inside a row"])
def test_a_manifest_cut_short_is_refused_not_read_short(tmp_path, cut):
    path = write_manifest(_many_rows(tmp_path), tmp_path / "manifest.csv")
    assert len(read_manifest(path)) == 12 and (tmp_path / "manifest.csv.integrity.json").is_file()
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    # as an interrupted copy leaves it: the first half of the rows, or a row cut in its last column
    path.write_bytes(b"".join(lines[:7]) if cut == "row boundary" else data[:-2])
    assert len(pd.read_csv(path)) in (6, 12)  # a plain CSV reader sees nothing wrong
    with pytest.raises(ManifestError, match="looks cut short") as caught:
        read_manifest(path)
    message = str(caught.value)
    assert str(path) in message and "was written with 12 rows" in message and "manifest.csv.integrity.json" in message


def test_a_manifest_edited_by_hand_is_read_as_it_is(tmp_path):
    path = write_manifest(_many_rows(tmp_path), tmp_path / "manifest.csv")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    grown = pd.concat([table, table.iloc[[0]].assign(path="extra.mp4")], ignore_index=True)
    grown.assign(subject="s1").to_csv(path, index=False)  # a column and a row added
    assert len(read_manifest(path)) == 13
    table.assign(split="val").to_csv(path, index=False)  # values changed, same rows
    assert set(read_manifest(path)["split"]) == {"val"}
    # rows removed on purpose: refused until the sidecar goes, or the manifest is written again
    table.iloc[:5].to_csv(path, index=False)
    with pytest.raises(ManifestError, match="looks cut short"):
        read_manifest(path)
    (tmp_path / "manifest.csv.integrity.json").unlink()
    assert len(read_manifest(path)) == 5
    write_manifest(read_manifest(path).iloc[:3], path)
    assert len(read_manifest(path)) == 3


def test_a_manifest_without_a_sidecar_is_read_unchecked(tmp_path):
    path = tmp_path / "made_elsewhere.csv"
    write_manifest(_many_rows(tmp_path), tmp_path / "manifest.csv")
    shutil.copy(tmp_path / "manifest.csv", path)
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:4]))
    assert len(read_manifest(path)) == 3
