"""Frame-folder reader: natural order, RGB channel order, bit depth and broken frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ultrassl.errors import CorruptFileError, UnsupportedFormatError
from ultrassl.io import get_reader, probe_clip, read_clip


def write_colour_frames(folder, n_frames: int = 12, height: int = 16, width: int = 24) -> np.ndarray:
    """JPEG-free (PNG) RGB frames named img_1.png ... (no zero padding); returns them (T, H, W, 3)."""
    folder.mkdir(exist_ok=True)
    frames = np.zeros((n_frames, height, width, 3), dtype=np.uint8)
    for t in range(n_frames):
        frames[t, :, :, 0] = 10 * t  # red carries the frame number
        frames[t, :, : width // 2, 2] = 200  # blue on the left half
        assert cv2.imwrite(str(folder / f"img_{t + 1}.png"), frames[t][..., ::-1])  # OpenCV writes BGR
    return frames


def test_natural_order_and_rgb(tmp_path):
    frames = write_colour_frames(tmp_path / "clip")
    info = probe_clip(tmp_path / "clip")
    assert info.format == "frames"
    assert (info.n_frames, info.height, info.width, info.channels) == (12, 16, 24, 3)
    assert info.fps is None
    asked = [9, 1, 10, 1]  # img_10, img_2, img_11, img_2: lexical order would put img_10 after img_1
    clip = read_clip(tmp_path / "clip", asked, info=info)
    np.testing.assert_array_equal(clip.frames, frames[asked])
    assert clip.frames[0, 0, 0].tolist() == [90, 0, 200]  # R, G, B


def test_tsn_folder_takes_the_rgb_frames(tmp_path):
    folder = tmp_path / "v_ApplyEyeMakeup_g01_c01"
    frames = write_colour_frames(folder, n_frames=4)
    flow = np.full((16, 24), 128, np.uint8)
    for t in range(1, 4):
        cv2.imwrite(str(folder / f"flow_x_{t:05d}.jpg"), flow)
        cv2.imwrite(str(folder / f"flow_y_{t:05d}.jpg"), flow)
    (folder / ".DS_Store").write_bytes(b"\0")
    clip = read_clip(folder)
    np.testing.assert_array_equal(clip.frames, frames)


def test_ambiguous_name_patterns_are_rejected(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for t in range(3):
        cv2.imwrite(str(folder / f"left_{t}.png"), np.zeros((8, 8), np.uint8))
        cv2.imwrite(str(folder / f"right_{t}.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(UnsupportedFormatError, match="patterns"):
        probe_clip(folder)


def test_grayscale_and_16_bit_frames(tmp_path):
    folder = tmp_path / "gray16"
    folder.mkdir()
    values = np.arange(3 * 6 * 8, dtype=np.uint16).reshape(3, 6, 8) * 1000
    for t in range(3):
        cv2.imwrite(str(folder / f"frame{t:03d}.png"), values[t])
    info = probe_clip(folder)
    assert info.channels == 1 and info.metadata["bit_depth"] == 16
    clip = read_clip(folder, [2, 0], info=info)
    np.testing.assert_array_equal(clip.frames[..., 0], np.rint(values[[2, 0]] * (255 / 65535)).astype(np.uint8))


def test_fps_sidecar(tmp_path):
    write_colour_frames(tmp_path / "clip", n_frames=3)
    (tmp_path / "clip" / "fps.txt").write_text("30000/1001\n")
    info = probe_clip(tmp_path / "clip")
    assert info.fps == pytest.approx(29.97002997)
    assert read_clip(tmp_path / "clip", [2], info=info).timestamps_s[0] == pytest.approx(2 * 1001 / 30000)


def test_unreadable_frame_is_named(tmp_path):
    write_colour_frames(tmp_path / "clip", n_frames=5)
    (tmp_path / "clip" / "img_4.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    info = probe_clip(tmp_path / "clip")  # the first frame is fine
    read_clip(tmp_path / "clip", [0, 1, 2, 4], info=info)
    with pytest.raises(CorruptFileError, match="img_4.png"):
        read_clip(tmp_path / "clip", [1, 3], info=info)


def test_frame_of_another_size_is_named(tmp_path):
    write_colour_frames(tmp_path / "clip", n_frames=5)
    cv2.imwrite(str(tmp_path / "clip" / "img_5.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(CorruptFileError, match="img_5.png"):
        read_clip(tmp_path / "clip", [4])


def test_folder_without_images_is_not_a_clip(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no frames here")
    with pytest.raises(UnsupportedFormatError):
        get_reader(tmp_path / "notes")
