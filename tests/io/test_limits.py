"""Decode limits: what a file declares is checked before anything is decoded."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import ultrassl.io.dicom as dicom_module
from ultrassl.data.indexing import index_file
from ultrassl.errors import CorruptFileError, ResourceLimitError
from ultrassl.io import probe_clip, read_clip
from ultrassl.io.limits import (
    DEFAULT_MAX_FRAME_PIXELS,
    DecodeLimits,
    decode_limits,
    get_decode_limits,
    set_decode_limits,
)
from tests.data.clip_files import dicom_jpeg_frames, mha_compressed_large, write_dicom, write_frame_folder, write_video


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch):
    monkeypatch.delenv("ULTRASSL_MAX_FRAME_PIXELS", raising=False)
    monkeypatch.delenv("ULTRASSL_MAX_READ_BYTES", raising=False)
    set_decode_limits(None)
    yield
    set_decode_limits(None)


@pytest.fixture
def no_decoding(monkeypatch):
    """Any attempt to decode DICOM pixel data fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(dicom_module, "_decode_frames", refuse)


def test_a_decompression_bomb_is_refused_by_its_header_with_the_default_limits(tmp_path, no_decoding):
    # 5000 x 5000 flat JPEG frames: about 25 megapixels each from a file of a few kB
    path = tmp_path / "bomb.dcm"
    dicom_jpeg_frames(path, (5000, 5000))
    assert path.stat().st_size * 50 < 3 * 5000 * 5000  # decodes to 50 times its size or more
    with pytest.raises(ResourceLimitError) as caught:
        probe_clip(path)
    message = str(caught.value)
    assert str(path) in message and "5000 x 5000" in message and "25.0 megapixels" in message
    row = index_file(str(path))
    assert row["status"] == "refused" and row["error"].startswith("ResourceLimitError")


def test_codestreams_larger_than_the_header_are_refused_before_decoding(tmp_path, no_decoding):
    path = tmp_path / "understated.dcm"
    dicom_jpeg_frames(path, (5000, 5000), header_size=(32, 48))
    info = probe_clip(path)  # the header alone looks harmless
    assert (info.height, info.width) == (32, 48)
    with pytest.raises(ResourceLimitError, match="frame 1's compressed data declares a frame of 5000 x 5000"):
        read_clip(path, [1])


def test_refusing_a_hostile_file_costs_no_memory_of_its_declared_size(tmp_path):
    """The checks read headers only: refusing a file whose frames declare 8000 x 8000 pixels
    (64 MB a frame) leaves the peak memory of a fresh process within a few MB (a header
    reader that allocates the frame, as libjpeg's get_parameters does, grows it by about 100 MB)."""
    import subprocess
    import sys

    understated, bomb = tmp_path / "understated.dcm", tmp_path / "bomb.dcm"
    dicom_jpeg_frames(understated, (8000, 8000), header_size=(32, 48))
    dicom_jpeg_frames(bomb, (8000, 8000))
    script = f"""
import resource
from ultrassl.errors import ResourceLimitError
from ultrassl.io import probe_clip, read_clip
probe_clip({str(understated)!r})  # imports and the harmless header: the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for path in ({str(understated)!r}, {str(bomb)!r}):
    try:
        read_clip(path, [0, 1, 2])
    except ResourceLimitError:
        pass
    else:
        raise SystemExit("not refused: " + path)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
    grown_mib = int(result.stdout.split()[-1])
    assert grown_mib < 16, f"peak memory grew by {grown_mib} MiB while refusing"


def test_codestreams_of_another_size_than_the_header_are_corrupt(tmp_path, no_decoding):
    path = tmp_path / "mismatch.dcm"
    dicom_jpeg_frames(path, (64, 80), header_size=(32, 48))
    with pytest.raises(CorruptFileError, match="declares 64 x 80 pixels, the header 32 x 48"):
        read_clip(path, [0])


def test_frames_within_the_limit_still_decode(tmp_path):
    path = tmp_path / "fine.dcm"
    dicom_jpeg_frames(path, (600, 800))
    clip = read_clip(path, [0, 2])
    assert clip.frames.shape == (2, 600, 800, 1)
    with decode_limits(max_frame_pixels=600 * 800 - 1):
        with pytest.raises(ResourceLimitError):
            read_clip(path, [0])
    assert read_clip(path, [1]).frames.shape == (1, 600, 800, 1)  # the block's limit is gone


@pytest.mark.parametrize("kind", ["video", "itk", "frames", "dicom"])
def test_every_reader_checks_the_declared_frame_size(tmp_path, kind):
    if kind == "video":
        path = tmp_path / "clip.mp4"
        write_video(path)
        pixels = 32 * 64
    elif kind == "itk":
        path = tmp_path / "big.mha"
        mha_compressed_large(path, 3000, 2000)
        assert path.stat().st_size * 50 < 2 * 3000 * 2000
        pixels = 3000 * 2000
    elif kind == "frames":
        path = tmp_path / "frames"
        write_frame_folder(path, height=24, width=32)
        pixels = 24 * 32
    else:
        path = tmp_path / "clip.dcm"
        write_dicom(path)
        pixels = 32 * 48
    with decode_limits(max_frame_pixels=pixels):
        assert probe_clip(path).n_frames >= 1  # at the limit: accepted
    with decode_limits(max_frame_pixels=pixels - 1):
        with pytest.raises(ResourceLimitError) as caught:
            probe_clip(path)
    assert str(path) in str(caught.value)


def test_a_huge_frame_file_in_a_folder_is_refused_before_opencv_decodes_it(tmp_path, monkeypatch):
    folder = tmp_path / "frames"
    write_frame_folder(folder, n_frames=3, height=24, width=32)
    cv2.imwrite(str(folder / "frame_0002.png"), np.zeros((1200, 1000), dtype=np.uint8))
    info = probe_clip(folder)
    with decode_limits(max_frame_pixels=10_000):
        calls = []
        real_imread = cv2.imread
        monkeypatch.setattr(cv2, "imread", lambda *a, **k: calls.append(a[0]) or real_imread(*a, **k))
        with pytest.raises(ResourceLimitError, match="frame file 'frame_0002.png' of 1200 x 1000"):
            read_clip(folder, [2], info=info)
        assert not any(str(c).endswith("frame_0002.png") for c in calls)


def test_a_read_larger_than_the_byte_ceiling_is_refused_and_a_smaller_one_is_not(tmp_path):
    path = tmp_path / "clip.dcm"
    write_dicom(path, n_frames=10, height=32, width=48)
    frame_bytes = 32 * 48
    with decode_limits(max_read_bytes=4 * frame_bytes):
        assert read_clip(path, [0, 1, 2, 3, 3, 0]).frames.shape[0] == 6  # repeats decode once
        with pytest.raises(ResourceLimitError, match="reading 5 frames of 32 x 48 x 1"):
            read_clip(path, [0, 1, 2, 3, 4])
        with pytest.raises(ResourceLimitError):
            read_clip(path)  # every frame


def test_limits_come_from_code_then_environment_then_defaults(monkeypatch):
    assert get_decode_limits().max_frame_pixels == DEFAULT_MAX_FRAME_PIXELS
    monkeypatch.setenv("ULTRASSL_MAX_FRAME_PIXELS", "12345")
    assert get_decode_limits().max_frame_pixels == 12345
    set_decode_limits(max_frame_pixels=99)
    assert get_decode_limits().max_frame_pixels == 99
    with decode_limits(max_frame_pixels=7):
        assert get_decode_limits().max_frame_pixels == 7
    assert get_decode_limits().max_frame_pixels == 99
    set_decode_limits(None)
    assert get_decode_limits().max_frame_pixels == 12345
    monkeypatch.setenv("ULTRASSL_MAX_FRAME_PIXELS", "lots")
    with pytest.raises(ValueError, match="ULTRASSL_MAX_FRAME_PIXELS='lots' is not an integer"):
        get_decode_limits()
    with pytest.raises(ValueError, match="max_read_bytes must be a positive integer"):
        DecodeLimits(max_read_bytes=0)


def test_the_index_command_takes_a_frame_pixel_limit(tmp_path, monkeypatch):
    from data_tools.cli import main

    import pandas as pd

    (tmp_path / "data").mkdir()
    write_dicom(tmp_path / "data" / "a.dcm")
    write_video(tmp_path / "data" / "b.mp4")  # 32 x 64
    manifest = tmp_path / "manifest.csv"
    monkeypatch.setenv("ULTRASSL_MAX_FRAME_PIXELS", str(DEFAULT_MAX_FRAME_PIXELS))
    assert main(["index", str(tmp_path / "data"), "-o", str(manifest), "--quiet", "--max-frame-pixels", "1600"]) == 0
    table = pd.read_csv(manifest).set_index(pd.read_csv(manifest)["path"].map(lambda p: Path(p).name))
    assert table.loc["a.dcm", "status"] == "ok"  # 32 x 48 = 1536 pixels
    assert table.loc["b.mp4", "status"] == "refused"
    assert "ResourceLimitError" in table.loc["b.mp4", "error"] and "32 x 64" in table.loc["b.mp4", "error"]
    assert os.environ["ULTRASSL_MAX_FRAME_PIXELS"] == "1600"
