"""Broken video and ITK files raise typed errors naming the file, promptly, never a short clip."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from tests.media import truncate_file, write_audio_only, write_test_video
from ultrassl.errors import ClipReadError, CorruptFileError, EmptyClipError
from ultrassl.io import probe_clip, read_clip

#: seconds within which every broken file must be reported
PROMPT_S = 5.0


def read_everything(path: Path) -> None:
    info = probe_clip(path)
    read_clip(path, info=info)


def assert_reported(path: Path, error_type: type[ClipReadError], match: str | None = None) -> ClipReadError:
    start = time.monotonic()
    with pytest.raises(error_type, match=match) as caught:
        read_everything(path)
    assert time.monotonic() - start < PROMPT_S
    assert caught.value.path == str(path)
    assert str(path) in str(caught.value)
    return caught.value


def good_video(tmp_path: Path, suffix: str, codec: str = "libx264", **options) -> Path:
    path = tmp_path / f"good.{suffix}"
    write_test_video(path, n_frames=24, size=(32, 64), codec=codec, gop=6, **options)
    read_everything(path)  # the source is fine
    return path


@pytest.mark.parametrize("keep", [0.02, 0.3, 0.6, 0.9])
def test_mp4_truncated_without_index(tmp_path, keep):
    """The index (moov) is written last: any cut loses it."""
    path = truncate_file(good_video(tmp_path, "mp4"), tmp_path / "cut.mp4", keep)
    assert_reported(path, CorruptFileError)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.9, 0.995])
def test_mp4_truncated_with_index_first(tmp_path, keep):
    """A faststart mp4 cut anywhere in its data: the index promises packets that are gone."""
    source = good_video(tmp_path, "mp4", container_options={"movflags": "faststart"})
    path = truncate_file(source, tmp_path / "cut.mp4", keep)
    assert_reported(path, ClipReadError)


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_mkv_truncated(tmp_path, keep):
    """Matroska declares no frame count; the track's declared duration betrays the cut."""
    path = truncate_file(good_video(tmp_path, "mkv"), tmp_path / "cut.mkv", keep)
    assert_reported(path, CorruptFileError)


@pytest.mark.parametrize("keep", [0.05, 0.6, 0.9])
def test_avi_truncated(tmp_path, keep):
    path = truncate_file(good_video(tmp_path, "avi", codec="mpeg4"), tmp_path / "cut.avi", keep)
    assert_reported(path, CorruptFileError)


def test_garbage_with_mp4_suffix(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    assert_reported(path, CorruptFileError, "not a readable video container")


def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    assert_reported(path, CorruptFileError, "empty")


def test_audio_only_mp4(tmp_path):
    path = tmp_path / "audio.mp4"
    write_audio_only(path, duration_s=0.5)
    assert_reported(path, EmptyClipError, "no video stream")


def itk_sequence(path: Path, compress: bool = False) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (10, 24, 32), dtype=np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(frames), str(path), useCompression=compress)
    read_everything(path)


@pytest.mark.parametrize("compress", [False, True])
def test_mha_truncated_pixel_data(tmp_path, compress):
    itk_sequence(tmp_path / "good.mha", compress)
    path = truncate_file(tmp_path / "good.mha", tmp_path / "cut.mha", 0.7)
    assert_reported(path, CorruptFileError)


def test_mhd_missing_raw(tmp_path):
    itk_sequence(tmp_path / "seq.mhd")
    (tmp_path / "seq.raw").unlink()
    assert_reported(tmp_path / "seq.mhd", CorruptFileError, "seq.raw")


def test_nrrd_truncated(tmp_path):
    itk_sequence(tmp_path / "good.nrrd")
    path = truncate_file(tmp_path / "good.nrrd", tmp_path / "cut.nrrd", 0.7)
    assert_reported(path, CorruptFileError)


@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_nii_gz_broken_gzip(tmp_path, keep):
    """ITK's NIfTI reader returns such files without complaint, filled with garbage."""
    itk_sequence(tmp_path / "good.nii.gz")
    path = truncate_file(tmp_path / "good.nii.gz", tmp_path / "cut.nii.gz", keep)
    assert_reported(path, CorruptFileError)


def test_nii_gz_damaged_inside(tmp_path):
    itk_sequence(tmp_path / "good.nii.gz")
    data = bytearray((tmp_path / "good.nii.gz").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path = tmp_path / "damaged.nii.gz"
    path.write_bytes(bytes(data))
    assert_reported(path, CorruptFileError)


def test_nii_truncated(tmp_path):
    itk_sequence(tmp_path / "good.nii")
    path = truncate_file(tmp_path / "good.nii", tmp_path / "cut.nii", 0.8)
    assert_reported(path, CorruptFileError, "truncated")
