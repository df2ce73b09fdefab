"""Paths that are not regular files are refused from ``stat`` alone: nothing opens them, so
nothing can hang on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ultrassl.data.indexing import find_clips, index_folder
from ultrassl.errors import FileAccessError
from ultrassl.io import probe_clip, read_clip
from tests.data.clip_files import write_dicom

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not os.path.exists("/dev/zero"),
                                reason="needs POSIX FIFOs and /dev/zero")


@pytest.fixture
def hostile_folder(tmp_path) -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    write_dicom(folder / "good.dcm")
    os.mkfifo(folder / "pipe.dcm")  # opening it for reading blocks until a writer appears
    os.mkfifo(folder / "IM000002")  # no suffix: format sniffing would open it
    os.mkfifo(folder / "notes.mhd")  # MetaImage headers are read during the walk
    (folder / "zero.dcm").symlink_to("/dev/zero")  # reads forever
    (folder / "loop.dcm").symlink_to(folder / "loop.dcm")
    (folder / "gone.dcm").symlink_to(folder / "deleted.dcm")
    return folder


@pytest.mark.parametrize("name, reason", [
    ("pipe.dcm", "not a regular file but a FIFO"),
    ("IM000002", "not a regular file but a FIFO"),
    ("zero.dcm", "not a regular file but a character device"),
    ("loop.dcm", "a symbolic link loop"),
    ("gone.dcm", "a broken symbolic link"),
])
def test_readers_refuse_what_is_not_a_regular_file(hostile_folder, name, reason):
    path = hostile_folder / name
    for call in (lambda: probe_clip(path), lambda: read_clip(path, [0]), lambda: read_clip(path, [0], format="dicom")):
        with pytest.raises(FileAccessError) as caught:
            call()
        assert str(path) in str(caught.value) and reason in str(caught.value)


def test_indexing_a_folder_with_fifos_and_device_links_finishes_and_lists_them_refused(hostile_folder, tmp_path):
    # In a child process with a deadline: a hang fails the test instead of stalling the suite.
    manifest = tmp_path / "manifest.csv"
    result = subprocess.run(
        [sys.executable, "-m", "ultrassl.cli", "data", "index", str(hostile_folder), "-o", str(manifest), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(manifest)
    by_name = {Path(p).name: row for p, row in zip(table["path"], table.to_dict("records"))}
    assert by_name["good.dcm"]["status"] == "ok"
    expected = {
        "pipe.dcm": "FIFO", "IM000002": "FIFO", "zero.dcm": "character device",
        "loop.dcm": "symbolic link loop", "gone.dcm": "broken symbolic link",
    }
    for name, reason in expected.items():
        assert by_name[name]["status"] == "refused", name
        assert by_name[name]["error"].startswith("FileAccessError") and reason in by_name[name]["error"], name
    assert "notes.mhd" in by_name and by_name["notes.mhd"]["status"] == "refused"


def test_the_walk_and_index_in_process_do_not_open_special_files(hostile_folder, monkeypatch):
    import builtins

    opened = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        opened.append(os.path.basename(str(file)))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    candidates, _ = find_clips(hostile_folder)
    assert {Path(p).name for p in candidates} >= {"pipe.dcm", "zero.dcm", "IM000002"}
    manifest = index_folder(hostile_folder, progress=False)
    assert (manifest["status"] == "ok").sum() == 1
    assert not {"pipe.dcm", "zero.dcm", "IM000002", "notes.mhd", "loop.dcm"} & set(opened)
