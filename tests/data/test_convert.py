"""``ultrassl data convert``: frames, frame rate and spacing cross; identifiers do not."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from data_tools.cli import main as data_main
from data_tools.convert import convert_clip
from tests.data.clip_files import write_frame_folder
from ultrassl.io import probe_clip, read_clip
from ultrassl.synth import synthesize_fetal_sweeps


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("convert")
    synthesize_fetal_sweeps(root, n_sweeps=1, n_frames=10, size=(64, 80), workers=1, formats=("dicom",))
    return next((root / "sweeps").glob("*.dcm"))


@pytest.mark.parametrize("to", ["mp4", "mha"])
def test_a_dicom_cine_keeps_its_frames_rate_and_spacing_and_loses_its_identity(sweep, tmp_path, to):
    source = probe_clip(sweep)
    out = convert_clip(sweep, tmp_path / f"loop.{to}", to, keep_outside_sector=True)
    converted = probe_clip(out)
    assert converted.n_frames == source.n_frames and converted.fps == pytest.approx(source.fps)
    assert converted.spacing_mm == pytest.approx(source.spacing_mm, rel=1e-5)
    original, copied = read_clip(sweep, [4]).frames[0], read_clip(out, [4]).frames[0]
    tolerance = 0 if to == "mha" else 12  # H.264 is lossy
    assert np.abs(original[..., 0].astype(int) - copied[..., 0].astype(int)).mean() <= tolerance
    header = pydicom.dcmread(sweep, stop_before_pixels=True)
    written = out.read_bytes()
    for value in (str(header.PatientName), str(header.PatientID), str(header.StudyDate)):
        assert value.encode() not in written, value


def test_outside_the_sector_is_blanked_by_default(sweep, tmp_path):
    from ultrassl.transforms.ultrasound import LoopSector

    masked = read_clip(convert_clip(sweep, tmp_path / "masked.mha", "mha"), [0]).frames[0][..., 0]
    full = read_clip(sweep, [0]).frames[0][..., 0]
    sector = LoopSector(16)(str(sweep), probe_clip(sweep))
    assert (full[~sector] > 100).sum() >= 20  # the simulator burns text in outside the sector
    assert masked[~sector].max() == 0  # none of it crosses
    np.testing.assert_array_equal(masked[sector], full[sector])  # the image inside is untouched


def test_a_folder_converts_with_its_layout_and_a_damaged_clip_is_listed(sweep, tmp_path, capsys):
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    (root / "a" / "loop.dcm").write_bytes(sweep.read_bytes())
    write_frame_folder(root / "frames", n_frames=6)
    (root / "broken.dcm").write_bytes(sweep.read_bytes()[:3000])
    code = data_main(["convert", str(root), str(tmp_path / "out"), "--to", "mp4", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1 and "converted 2 of 3 clips" in out and "broken.dcm" in out
    assert probe_clip(tmp_path / "out" / "a" / "loop.mp4").n_frames == 10
    assert probe_clip(tmp_path / "out" / "frames.mp4").n_frames == 6
    assert not list((tmp_path / "out").rglob(".*partial*"))
