"""``ultrassl data ...``: exit codes, files written, one-line errors."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.data.clip_files import mp4_garbage, write_dicom, write_video
from tests.data.test_split_files import write_ucf101_splits
from ultrassl.cli import main
from ultrassl.data.manifest import read_manifest


@pytest.fixture()
def data_root(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    write_video(root / "clip.mp4")
    write_dicom(root / "cine.dcm")
    mp4_garbage(root / "bad.mp4")
    return root


def test_index_writes_manifest_and_refused_list(data_root, tmp_path, capsys):
    out = tmp_path / "out" / "index.csv"
    assert main(["data", "index", str(data_root), "-o", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    ok = read_manifest(out)
    assert sorted(p.rsplit("/", 1)[-1] for p in ok["path"]) == ["cine.dcm", "clip.mp4"]
    refused = pd.read_csv(tmp_path / "out" / "index.refused.csv")
    assert refused["path"].tolist() == [str(data_root / "bad.mp4")]  # outside the manifest folder: absolute
    assert refused["error"].iloc[0].startswith("CorruptFileError: ")


def test_index_prints_a_summary(data_root, capsys):
    assert main(["data", "index", str(data_root), "-o", str(data_root / "manifest.csv"), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 clips ok, 1 refused")
    assert "CorruptFileError, e.g. bad.mp4" in out
    assert f"manifest: {data_root / 'manifest.csv'}" in out


def test_index_with_ucf101_layout(tmp_path, capsys):
    videos = tmp_path / "UCF-101"
    (videos / "Basketball").mkdir(parents=True)
    write_video(videos / "Basketball" / "v_Basketball_g01_c01.avi", n_frames=6)
    write_ucf101_splits(tmp_path / "splits", [], ["Basketball/v_Basketball_g01_c01.avi"])
    args = ["data", "index", str(videos), "-o", str(videos / "m.csv"), "--layout", "ucf101",
            "--split-dir", str(tmp_path / "splits"), "--no-validate", "--quiet"]
    assert main(args) == 0
    row = read_manifest(videos / "m.csv").iloc[0]
    assert (row["label"], row["class_name"], row["split"]) == (1, "Basketball", "test")


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "index", "{tmp}/nope", "-o", "{tmp}/m.csv"], "error: ROOT '{tmp}/nope' does not exist"),
        (["data", "index", "{tmp}"], "error: the following arguments are required: -o/--output"),
        (["data", "index", "{tmp}", "-o", "{tmp}/m.csv", "--layout", "ucf101"], "error: --layout ucf101 needs --split-dir"),
        (["data", "index", "{tmp}", "-o", "{tmp}/m.csv", "--layout", "ucf101", "--split-dir", "{tmp}/none"],
         "error: {tmp}/none/classInd.txt: no such split file"),
        (["data", "index", "{tmp}", "-o", "{tmp}/m.csv", "--annotations", "{tmp}/a.csv"],
         "error: {tmp}/a.csv: no such annotations file"),
        (["data", "index", "{tmp}", "-o", "{tmp}/m.csv", "--workers", "0"], "error: --workers must be >= 1"),
        (["data", "frobnicate"], "error: argument COMMAND: invalid choice: 'frobnicate'"),
        (["train"], "error: unknown command 'train'"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    code = main([a.format(tmp=tmp_path) for a in args])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(message.format(tmp=tmp_path)), lines[0]
    assert "Traceback" not in captured.err


def test_help_exits_0(capsys):
    assert main(["data", "index", "--help"]) == 0
    assert "--layout" in capsys.readouterr().out


def test_synth_fetal_sweeps_are_indexed_with_their_annotations(tmp_path):
    from ultrassl.transforms.annotations import LoadFrameAnnotationsd, read_frame_labels
    from ultrassl.data.datasets import ManifestDataset
    from ultrassl.synth import PLANE_CLASSES
    from ultrassl.transforms.temporal import SampleFramesd, UniformClipSampler

    out = tmp_path / "fetal"
    assert main(["data", "synth", str(out), "--kind", "fetal-sweep", "--n", "2", "--frames", "8", "--quiet"]) == 0
    manifest = read_manifest(out / "manifest.csv", status=None)
    assert (manifest["status"] == "ok").all() and len(manifest) == 2
    assert manifest["frame_labels"].str.endswith(".planes.csv").all()
    chain = [SampleFramesd(UniformClipSampler(num_frames=4)), LoadFrameAnnotationsd(classes=PLANE_CLASSES)]
    item = ManifestDataset(out / "manifest.csv", transform=chain, cache_info=False)[0]
    expected = read_frame_labels(item["frame_labels"], 8, PLANE_CLASSES)[item["clip_frame_indices"]]
    assert item["clip_frame_labels"].tolist() == expected.tolist()


def test_synth_motion_is_indexed_with_its_ucf101_splits(tmp_path):
    out = tmp_path / "motion"
    assert main(["data", "synth", str(out), "--kind", "motion", "--n", "1", "--frames", "6", "--quiet"]) == 0
    manifest = read_manifest(out / "manifest.csv", status=None)
    assert (manifest["status"] == "ok").all()
    for row in manifest.itertuples():
        class_folder = row.path.split("/")[-2]
        assert row.class_name == class_folder and row.split in ("train", "test")
    classes = (out / "splits" / "classInd.txt").read_text().split()
    assert {r.class_name: r.label for r in manifest.itertuples()} == {
        name: int(number) - 1 for number, name in zip(classes[::2], classes[1::2])
    }
