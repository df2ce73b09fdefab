"""Indexing folders of clips: what is found, what is skipped, what is refused and why."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from ultrassl.data.indexing import find_clips, index_folder, summary, write_index
from tests.data.clip_files import (
    dicom_garbage_after_preamble,
    mp4_truncated,
    write_dicom,
    write_frame_folder,
    write_itk,
    write_video,
)
from tests.data.test_split_files import write_hmdb51_splits, write_ucf101_splits
from ultrassl.data.manifest import read_manifest
from ultrassl.data.splits import hmdb51_annotations, ucf101_annotations
from ultrassl.errors import ManifestError


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory):
    """Good clips of every reader, broken ones, sidecars and junk, in nested folders."""
    root = tmp_path_factory.mktemp("mixed")
    (root / "echo" / "nested").mkdir(parents=True)
    expected = {
        "a_clip.mp4": write_video(root / "a_clip.mp4"),
        "echo/cine.dcm": write_dicom(root / "echo" / "cine.dcm"),
        "echo/IM0001": write_dicom(root / "echo" / "IM0001"),  # DICOM found by its magic bytes
        "echo/nested/volume.mha": write_itk(root / "echo" / "nested" / "volume.mha"),
        "echo/nested/pair.mhd": write_itk(root / "echo" / "nested" / "pair.mhd"),  # + pair.raw, skipped
        "frames_clip": write_frame_folder(root / "frames_clip"),  # one clip, not six images
        "b_clip.avi": write_video(root / "b_clip.avi"),
    }
    mp4_truncated(root / "echo" / "broken.mp4")
    dicom_garbage_after_preamble(root / "garbage.dcm")
    (root / "notes.txt").write_text("sidecar")
    (root / "echo" / "labels.csv").write_text("frame,plane\n")
    (root / ".hidden").write_text("ignored")
    (root / "mystery.xyz").write_bytes(b"\x00" * 10)
    return root, expected


def test_walk_finds_clips_and_skips_sidecars(mixed_folder):
    root, expected = mixed_folder
    candidates, unsupported = find_clips(root)
    relative = [str(p)[len(str(root)) + 1 :] for p in candidates]
    assert relative == [
        "a_clip.mp4", "b_clip.avi", "echo/IM0001", "echo/broken.mp4", "echo/cine.dcm",
        "echo/nested/pair.mhd", "echo/nested/volume.mha", "frames_clip", "garbage.dcm",
    ]
    assert [(p[len(str(root)) + 1 :], reason.split(";")[0]) for p, reason in unsupported] == [
        ("mystery.xyz", "unsupported file type '.xyz'")
    ]


def test_index_records_facts_and_refuses_bad_files_without_stopping(mixed_folder):
    root, expected = mixed_folder
    manifest = index_folder(root, progress=False)
    rows = {p[len(str(root)) + 1 :]: r for p, r in zip(manifest["path"], manifest.to_dict("records"))}
    for name, facts in expected.items():
        row = rows[name]
        assert row["status"] == "ok", (name, row["error"])
        for field in ("format", "n_frames", "height", "width", "channels"):
            assert row[field] == facts[field], (name, field)
        if facts["fps"] == facts["fps"]:  # known frame rate
            assert row["fps"] == pytest.approx(facts["fps"]), name
    refused = {name: row["error"] for name, row in rows.items() if row["status"] == "refused"}
    assert set(refused) == {"echo/broken.mp4", "garbage.dcm", "mystery.xyz"}
    assert refused["echo/broken.mp4"].startswith("CorruptFileError: ")
    assert refused["garbage.dcm"].startswith("CorruptFileError: ")
    assert refused["mystery.xyz"].startswith("UnsupportedFormatError: unsupported file type")
    assert all(str(root) not in error for error in refused.values())  # the row holds the path
    assert summary(manifest).splitlines()[0].startswith("7 clips ok, 3 refused")


def test_two_workers_give_the_same_manifest(mixed_folder):
    root, _ = mixed_folder
    pd.testing.assert_frame_equal(
        index_folder(root, workers=2, progress=False), index_folder(root, workers=1, progress=False)
    )


def test_manifest_and_refused_list_written_beside_each_other(mixed_folder, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(mixed_folder[0], root)
    manifest = index_folder(root, progress=False, validate=False)
    manifest_path, refused_path = write_index(manifest, root / "manifest.csv")
    assert refused_path == root / "manifest.refused.csv"
    refused = pd.read_csv(refused_path, dtype=str)
    assert list(refused.columns) == ["path", "error"]
    assert set(refused["path"]) == {"echo/broken.mp4", "garbage.dcm", "mystery.xyz"}
    assert len(read_manifest(manifest_path)) == 7
    # The manifest and refused list in the folder are sidecars: indexing again finds the same clips.
    again = index_folder(root, progress=False, validate=False)
    assert again["path"].tolist() == manifest["path"].tolist()


def test_annotations_are_merged_and_missing_clips_reported(mixed_folder, tmp_path):
    root, _ = mixed_folder
    annotations = tmp_path / "annotations.csv"
    annotations.write_text(
        "path,label,split,subject\n"
        "a_clip.mp4,1,train,s01\n"
        "echo/cine.dcm,0,test,s02\n"
        "frames_clip,2,train,s01\n"
        "gone.mp4,1,train,s03\n"
    )
    manifest = index_folder(root, annotations=annotations, progress=False, validate=False)
    by_name = {p[len(str(root)) + 1 :]: r for p, r in zip(manifest["path"], manifest.to_dict("records"))}
    assert (by_name["a_clip.mp4"]["label"], by_name["a_clip.mp4"]["split"], by_name["a_clip.mp4"]["subject"]) == (1, "train", "s01")
    assert by_name["frames_clip"]["label"] == 2
    assert pd.isna(by_name["b_clip.avi"]["label"]) and by_name["b_clip.avi"]["split"] == ""
    gone = by_name["gone.mp4"]
    assert gone["status"] == "refused" and gone["error"].startswith("FileAccessError: listed in the annotations")
    assert gone["label"] == 1  # the annotation stays with the refused row
    assert "4 ok clips have no label" in summary(manifest)


def test_annotation_errors(mixed_folder, tmp_path):
    root, _ = mixed_folder
    bad = tmp_path / "bad.csv"
    for text, message in [
        ("file,label\nx,1\n", "need a 'path' column"),
        ("path,n_frames\na_clip.mp4,3\n", "would overwrite what the indexer measures"),
        ("path,label\na_clip.mp4,one\n", "'label' is not an integer"),
        ("path,label\na_clip.mp4,1\na_clip.mp4,2\n", "annotated twice"),
    ]:
        bad.write_text(text)
        with pytest.raises(ManifestError, match=message):
            index_folder(root, annotations=bad, progress=False, validate=False)


def test_missing_sidecar_refuses_its_clip(mixed_folder, tmp_path):
    root, _ = mixed_folder
    annotations = tmp_path / "annotations.csv"
    annotations.write_text("path,frame_labels\na_clip.mp4,labels/a_clip.csv\n")
    manifest = index_folder(root, annotations=annotations, progress=False, validate=False)
    row = manifest[manifest["path"] == str(root / "a_clip.mp4")].iloc[0]
    assert row["status"] == "refused"
    assert row["error"] == f"FileAccessError: frame_labels sidecar not found: {root / 'labels' / 'a_clip.csv'}"


def test_ucf101_layout_with_videos_and_frame_folders(tmp_path):
    split_dir = tmp_path / "ucfTrainTestlist"
    train = ["Basketball/v_Basketball_g08_c02.avi", "HandstandPushups/v_HandStandPushups_g08_c01.avi"]
    test = ["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"]
    write_ucf101_splits(split_dir, train, test)
    videos = tmp_path / "UCF-101"
    for entry in train:
        (videos / entry).parent.mkdir(parents=True, exist_ok=True)
        write_video(videos / entry, n_frames=6)
    # Frame-folder variant: the test video was extracted to <Class>/<stem>/, with the folder's case changed.
    write_frame_folder(videos / "applyeyemakeup" / "v_ApplyEyeMakeup_g01_c01", n_frames=5)
    manifest = index_folder(videos, annotations=ucf101_annotations(split_dir), match="stem", progress=False)
    ok = manifest[manifest["status"] == "ok"]
    rows = {r.path[len(str(videos)) + 1 :]: (r.label, r.class_name, r.split, r.format) for r in ok.itertuples()}
    assert rows == {
        "Basketball/v_Basketball_g08_c02.avi": (1, "Basketball", "train", "video"),
        "HandstandPushups/v_HandStandPushups_g08_c01.avi": (2, "HandstandPushups", "train", "video"),
        "applyeyemakeup/v_ApplyEyeMakeup_g01_c01": (0, "ApplyEyeMakeup", "test", "frames"),
    }
    assert len(manifest) == 3

    # Both a video and its frame folder: ambiguous, refused with a clear message.
    (videos / "ApplyEyeMakeup").mkdir()
    write_video(videos / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi", n_frames=6)
    with pytest.raises(ManifestError, match="both match the annotation 'ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi'"):
        index_folder(videos, annotations=ucf101_annotations(split_dir), match="stem", progress=False, validate=False)


def test_hmdb51_layout(tmp_path):
    split_dir = tmp_path / "splits"
    write_hmdb51_splits(split_dir, {"clap": [("c1.avi", 1), ("c2.avi", 2)], "brush_hair": [("b1.avi", 0)]})
    videos = tmp_path / "hmdb51"
    (videos / "clap").mkdir(parents=True)
    write_video(videos / "clap" / "c1.avi", n_frames=6)
    write_frame_folder(videos / "clap" / "c2", n_frames=4)
    write_frame_folder(videos / "brush_hair" / "b1", n_frames=4)
    manifest = index_folder(videos, annotations=hmdb51_annotations(split_dir), match="stem", progress=False)
    rows = {r.path[len(str(videos)) + 1 :]: (r.status, r.label, r.split) for r in manifest.itertuples()}
    assert rows == {"brush_hair/b1": ("ok", 0, "unused"), "clap/c1.avi": ("ok", 1, "train"), "clap/c2": ("ok", 1, "test")}


def test_a_missing_root_is_an_error(tmp_path):
    from ultrassl.errors import FileAccessError

    with pytest.raises(FileAccessError, match="no such file or folder"):
        index_folder(tmp_path / "nope", progress=False)


def test_a_moved_data_folder_still_reads(mixed_folder, tmp_path):
    root, _ = mixed_folder
    copy = tmp_path / "copy"
    shutil.copytree(root / "echo", copy)
    write_index(index_folder(copy, progress=False, validate=False), copy / "manifest.csv")
    moved = tmp_path / "moved"
    shutil.move(str(copy), str(moved))
    ok = read_manifest(moved / "manifest.csv")
    assert all(p.startswith(str(moved)) for p in ok["path"])


def test_an_unexpected_exception_is_recorded_not_raised(mixed_folder, monkeypatch):
    from ultrassl.io import get_reader

    root, _ = mixed_folder
    reader = get_reader(root / "a_clip.mp4")

    def fail(self, path, info):
        raise ZeroDivisionError("a reader bug")

    monkeypatch.setattr(type(reader), "validate", fail)
    manifest = index_folder(root, progress=False)
    row = manifest[manifest["path"] == str(root / "a_clip.mp4")].iloc[0]
    assert (row["status"], row["error"]) == ("refused", "ZeroDivisionError: a reader bug")
    assert (manifest[manifest["format"] == "dicom"]["status"] == "ok").sum() == 2  # the run went on


def test_a_file_that_kills_its_worker_is_refused_and_the_rest_indexed(mixed_folder, tmp_path):
    from ultrassl.data.indexing import _index_parallel
    from tests.data.clip_files import index_file_or_crash

    root, _ = mixed_folder
    paths = [str(root / "a_clip.mp4"), str(root / "crash.mp4"), str(root / "echo" / "cine.dcm"), str(root / "frames_clip")]

    class Bar:
        def update(self, n=1):
            pass

    rows = _index_parallel(paths, False, 2, Bar(), function=index_file_or_crash)
    assert [r["path"] for r in rows] == paths
    assert [r["status"] for r in rows] == ["ok", "refused", "ok", "ok"]
    assert rows[1]["error"] == "CorruptFileError: the decoder crashed the reading process"
