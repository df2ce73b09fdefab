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


def _flip(path: Path, fraction: float, n_bytes: int, seed: int = 1) -> None:
    """Overwrite ``n_bytes`` at ``fraction`` of the file with random bytes (its size unchanged)."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * fraction)
    data[start: start + n_bytes] = np.random.default_rng(seed).integers(0, 256, n_bytes, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _avi_mjpeg(path: Path) -> None:
    write_video(path, n_frames=48, codec="mjpeg")
    _flip(path, 0.5, 400)


def _avi_mpeg4_chunks_lost(path: Path) -> None:
    write_video(path, n_frames=48)  # MPEG-4 part 2; damaged chunk headers: the demuxer skips 4 frames
    _flip(path, 0.6, 400)


def _avi_mpeg4_concealed(path: Path) -> None:
    write_video(path, n_frames=48)  # damage the decoder conceals, flagging the picture corrupt
    _flip(path, 0.7, 16)


def _mha_compressed(path: Path) -> None:
    import SimpleITK as sitk

    frames = np.random.default_rng(0).integers(0, 256, (40, 24, 32), dtype=np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(frames), str(path), True)
    _flip(path, 0.5, 64)


def _nii_gz(path: Path) -> None:
    from tests.data.clip_files import nii_gz_corrupt

    nii_gz_corrupt(path)


def _packed(path: Path) -> Path:
    """A pack of one 40-frame loop whose shard has bytes flipped inside the frames (raw pixels:
    nothing to decode wrongly, so only the checksum tells); returns the packed clip's path."""
    from data_tools.pack import pack_part
    from ultrassl.data.manifest import read_manifest, write_manifest

    source = path.parent / "source"
    source.mkdir()
    save_jpeg_dicom(source / "loop.dcm", ramp_frames(40, 32, 48), jpeg_fragments(ramp_frames(40, 32, 48)))
    write_manifest(index_folder(source, progress=False), source / "manifest.csv")
    packed = read_manifest(pack_part(source / "manifest.csv", path).manifest)["path"][0]
    _flip(next((path / "shards").glob("*.tar")), 0.5, 64)
    return Path(packed)


@pytest.mark.parametrize("build, name", [
    (_avi_mjpeg, "mjpeg.avi"), (_avi_mpeg4_chunks_lost, "lost.avi"), (_avi_mpeg4_concealed, "concealed.avi"),
    (_mha_compressed, "zlib.mha"), (_nii_gz, "damaged.nii.gz"), (_packed, "pack"),
], ids=["avi-mjpeg", "avi-mpeg4-chunks-lost", "avi-mpeg4-concealed", "mha-zlib", "nii-gz", "packed"])
def test_full_verification_finds_damage_in_every_format(build, name, tmp_path):
    path = tmp_path / name
    path = build(path) or path
    full = index_file(str(path), "full")
    assert full["status"] == "refused", full
    assert full["error"].startswith("CorruptFileError: "), full["error"]
    if name in ("mjpeg.avi", "zlib.mha", "pack"):  # damage that sampling three frames does not reach
        assert index_file(str(path), "sample")["status"] == "ok"


def test_the_verify_command_marks_damaged_clips_of_a_manifest(tmp_path, capsys):
    from ultrassl.data.manifest import read_manifest

    packed = _packed(tmp_path / "pack")
    manifest = tmp_path / "pack" / "manifest.csv"
    assert data_main(["verify", str(manifest), "--level", "sample", "--quiet"]) == 0
    assert data_main(["verify", str(manifest), "-o", str(tmp_path / "checked.csv"), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "1 refused" in out and "SHA-256 mismatch" in out
    checked = read_manifest(tmp_path / "checked.csv", status=None)
    assert checked["status"].tolist() == ["refused"] and checked["path"][0] == str(packed)
    assert read_manifest(manifest)["status"].tolist() == ["ok"]  # -o leaves the manifest as it was
