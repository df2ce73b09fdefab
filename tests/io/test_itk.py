"""SimpleITK reader: 2D+t MetaImage, NIfTI and NRRD files with known pixels and spacing."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from ultrassl.io import get_reader, probe_clip, read_clip
from ultrassl.io.itk import ItkReader

SPACING = (0.25, 0.5, 0.04)  # ITK order: column (x), row (y), frame step
ASKED = [7, 2, 11, 2]


def sequence(kind: str, n_frames: int = 12, height: int = 20, width: int = 28) -> np.ndarray:
    """Random frames in numpy order (T, H, W[, 3]) of the given pixel kind."""
    rng = np.random.default_rng(0)
    if kind == "gray":
        return rng.integers(0, 256, (n_frames, height, width), dtype=np.uint8)
    if kind == "rgb":
        return rng.integers(0, 256, (n_frames, height, width, 3), dtype=np.uint8)
    return rng.integers(0, 65536, (n_frames, height, width), dtype=np.uint16)


def write(path, array: np.ndarray, frame_rate: str | None = "25") -> None:
    image = sitk.GetImageFromArray(array, isVector=array.ndim == 4)
    image.SetSpacing(SPACING)
    if frame_rate is not None:
        image.SetMetaData("FrameRate", frame_rate)
    sitk.WriteImage(image, str(path))


def expected_uint8(array: np.ndarray) -> np.ndarray:
    """The documented intensity rule: uint8 as is, uint16 scaled from its type range 0..65535."""
    if array.dtype == np.uint16:
        array = np.rint(array * (255 / 65535)).astype(np.uint8)
    return array if array.ndim == 4 else array[..., None]


@pytest.mark.parametrize("suffix", ["mha", "nii.gz", "nrrd", "mhd", "nii"])
@pytest.mark.parametrize("kind", ["gray", "rgb", "uint16"])
def test_selective_read(tmp_path, suffix, kind):
    array = sequence(kind)
    path = tmp_path / f"seq.{suffix}"
    write(path, array)
    info = probe_clip(path)
    assert info.format == "itk"
    assert (info.n_frames, info.height, info.width) == (12, 20, 28)
    assert info.channels == (3 if kind == "rgb" else 1)
    assert info.spacing_mm == pytest.approx((0.5, 0.25))  # (row, column)
    assert info.metadata["intensity_rule"] == ("type_range" if kind == "uint16" else "as_is")
    clip = read_clip(path, ASKED, info=info)
    np.testing.assert_array_equal(clip.frames, expected_uint8(array)[ASKED])
    np.testing.assert_array_equal(clip.frame_indices, ASKED)


@pytest.mark.parametrize("suffix, fps", [("mha", 25.0), ("nrrd", 25.0), ("nii.gz", None)])
def test_frame_rate_from_explicit_key_only(tmp_path, suffix, fps):
    """MetaImage and NRRD keep a FrameRate key; NIfTI cannot, and its 3rd spacing has no time unit."""
    path = tmp_path / f"seq.{suffix}"
    write(path, sequence("gray"))
    info = probe_clip(path)
    assert info.fps == fps
    clip = read_clip(path, [4], info=info)
    if fps is None:
        assert np.isnan(clip.timestamps_s[0])
    else:
        assert clip.timestamps_s[0] == pytest.approx(4 / fps)


def test_no_frame_rate_key_means_unknown(tmp_path):
    path = tmp_path / "seq.mha"
    write(path, sequence("gray"), frame_rate=None)
    assert probe_clip(path).fps is None


def test_nifti_4d_time_step(tmp_path):
    """A 4D NIfTI (x, y, 1, t) states its time step and unit: that gives the frame rate."""
    frames = sequence("gray", n_frames=6)
    image = sitk.JoinSeries([sitk.GetImageFromArray(f[None]) for f in frames])
    image.SetSpacing((0.25, 0.5, 1.0, 0.04))
    path = tmp_path / "cine.nii.gz"
    sitk.WriteImage(image, str(path))
    info = probe_clip(path)
    assert (info.n_frames, info.height, info.width) == (6, 20, 28)
    assert info.fps == pytest.approx(25.0)
    np.testing.assert_array_equal(read_clip(path, [5, 0], info=info).frames[..., 0], frames[[5, 0]])


def test_single_2d_image_is_one_frame(tmp_path):
    rgb = sequence("rgb", n_frames=1)[0]
    path = tmp_path / "still.mha"
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(path))
    info = probe_clip(path)
    assert (info.n_frames, info.channels) == (1, 3)
    np.testing.assert_array_equal(read_clip(path).frames[0], rgb)


def test_float_images_scale_by_the_whole_image_range(tmp_path):
    values = np.linspace(-2.0, 6.0, 4 * 10 * 12, dtype=np.float32).reshape(4, 10, 12)
    path = tmp_path / "float.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(values), str(path))
    info = probe_clip(path)
    assert info.metadata["intensity_rule"] == "image_range"
    assert info.metadata["intensity_window"] == pytest.approx((-2.0, 6.0))
    frames = read_clip(path, [0, 3], info=info).frames[..., 0]
    expected = np.rint((values[[0, 3]] + 2.0) * 255 / 8.0).astype(np.uint8)
    np.testing.assert_array_equal(frames, expected)  # one window for the whole file, not per clip


def test_suffixes_in_any_case(tmp_path):
    """.nii.gz is a double suffix (Path.suffix is ".gz"); ITK itself matches suffixes by case."""
    array = sequence("gray")
    for name in ("seq.nii.gz", "SEQ.NII.GZ", "SEQ.MHA"):
        lower = tmp_path / name.lower()
        write(lower, array)
        path = lower.rename(tmp_path / ("upper_" + name)) if name != name.lower() else lower
        assert get_reader(path).name == "itk"
        np.testing.assert_array_equal(read_clip(path, [3]).frames[0, ..., 0], array[3])
    (tmp_path / "notes.txt.gz").write_bytes(b"")
    assert not ItkReader().can_read(tmp_path / "notes.txt.gz")


def test_itk_messages_stay_off_the_terminal_and_go_into_the_error(tmp_path, capfd):
    from ultrassl.errors import CorruptFileError
    from ultrassl.io import probe_clip

    path = tmp_path / "broken.mha"
    path.write_bytes(b"ObjectType = Image\nNDims = x\nElementDataFile = LOCAL\n")
    with pytest.raises(CorruptFileError) as caught:
        probe_clip(path)
    printed = capfd.readouterr()
    assert "MET_Read" not in printed.err and "MET_Read" not in printed.out
    assert str(path) in str(caught.value) and "ITK said: " in str(caught.value) and "MET_Read Failed" in str(caught.value)
    print("after", file=__import__("sys").stderr)  # the terminal works again afterwards
    assert capfd.readouterr().err == "after\n"
