"""``--verify full``: every frame is decoded, so damage in the middle of a loop is found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from data_tools.cli import main as data_main
from tests.data.clip_files import jpeg_fragments, ramp_frames, save_jpeg_dicom, write_frame_folder, write_video
from ultrassl.data.indexing import VERIFY_CHUNK_FRAMES, index_file, index_folder, verify_level


def dicom_jpeg_broken_at(path: Path, n_frames: int, broken: int) -> dict:
    """A JPEG-baseline multi-frame DICOM whose frame ``broken`` alone is damaged (its data
    replaced by random bytes after the start-of-image marker): first, middle and last decode."""
    frames = ramp_frames(n_frames, 32, 48)
    fragments = jpeg_fragments(frames)
    if 0 <= broken < n_frames:
        size = len(fragments[broken])
        fragments[broken] = b"\xff\xd8" + np.random.default_rng(3).integers(0, 256, size, dtype=np.uint8).tobytes()
    return save_jpeg_dicom(path, frames, fragments)


@pytest.fixture
def damaged_in_the_middle(tmp_path) -> Path:
    root = tmp_path / "archive"
    root.mkdir()
    dicom_jpeg_broken_at(root / "loop.dcm", n_frames=40, broken=VERIFY_CHUNK_FRAMES + 3)  # in the second chunk
    write_frame_folder(root / "frames", n_frames=6)
    (root / "frames" / sorted(p.name for p in (root / "frames").iterdir())[2]).write_bytes(b"\x89PNG garbage")
    dicom_jpeg_broken_at(root / "intact.dcm", n_frames=12, broken=-1)
    # an mp4 with a run of bytes in the middle of its frame data replaced: its index (at the end)
    # is intact, so it probes and its first, middle and last frames decode
    write_video(root / "video.mp4", n_frames=48)
    data = bytearray((root / "video.mp4").read_bytes())
    start = len(data) // 2
    data[start: start + 400] = np.random.default_rng(1).integers(0, 256, 400, dtype=np.uint8).tobytes()
    (root / "video.mp4").write_bytes(bytes(data))
    return root


def test_sampling_misses_damage_in_the_middle_and_full_verification_finds_it(damaged_in_the_middle):
    sampled = index_folder(damaged_in_the_middle, validate="sample", progress=False).set_index("path")
    assert set(sampled["status"]) == {"ok"}  # first, middle and last frames decode
    full = index_folder(damaged_in_the_middle, validate="full", progress=False)
    status = dict(zip([Path(p).name for p in full["path"]], full["status"]))
    assert status == {"frames": "refused", "intact.dcm": "ok", "loop.dcm": "refused", "video.mp4": "refused"}
    errors = dict(zip([Path(p).name for p in full["path"]], full["error"]))
    assert errors["loop.dcm"].startswith("CorruptFileError: frames 32-39 of 40: cannot decode")
    assert errors["frames"].split(":")[0] in ("CorruptFileError", "UnsupportedFormatError")
    assert errors["video.mp4"].startswith("CorruptFileError: frames 0-31 of 48: cannot decode the video near frame")


def test_the_index_command_takes_the_verify_level(damaged_in_the_middle, tmp_path, capsys):
    out = tmp_path / "manifest.csv"
    assert data_main(["index", str(damaged_in_the_middle), "-o", str(out), "--verify", "full", "--quiet"]) == 0
    text = out.read_text()
    assert text.count(",refused,") == 3 and text.count(",ok,") == 1
    assert data_main(["index", str(damaged_in_the_middle), "-o", str(out), "--no-validate", "--quiet"]) == 0
    assert out.read_text().count(",ok,") == 4


def test_verify_levels():
    assert verify_level(True) == "sample" and verify_level(False) == "none" and verify_level("full") == "full"
    with pytest.raises(ValueError, match="validate must be one of"):
        verify_level("everything")
    assert index_file("/no/such/file.dcm", "full")["status"] == "refused"
