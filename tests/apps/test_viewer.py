"""The Streamlit viewer, run headless with AppTest on a tiny simulated fetal data set."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from apps import overlays
from data_tools.pack import pack_part
from ultrassl.io import read_clip

VIEWER = str(Path(__file__).resolve().parents[2] / "apps" / "viewer.py")


def _app(manifest: Path, *arguments: str) -> AppTest:
    """The page of a server started on ``manifest`` (``ultrassl app MANIFEST ...`` passes
    ``--data`` its folder and ``--manifest`` it), with more of its ``arguments``."""
    sys.argv[:] = [VIEWER, "--data", str(manifest.parent), "--manifest", str(manifest), *arguments]
    return AppTest.from_file(VIEWER, default_timeout=60).run()


def _clips(app: AppTest):
    return next(s for s in app.sidebar.selectbox if s.label == "Clip")


def _metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def _planes(manifest: Path, clip: str) -> list[str]:
    stem = clip.rsplit(".", 1)[0]
    return pd.read_csv(manifest.parent / f"{stem}.planes.csv")["plane"].tolist()


def test_manifest_comes_from_the_command_line(fetal_set, renders):
    # streamlit run apps/viewer.py -- --manifest PATH leaves the arguments after "--" in sys.argv;
    # without --data the manifest's folder is served
    sys.argv[:] = [VIEWER, "--manifest", str(fetal_set)]
    app = AppTest.from_file(VIEWER, default_timeout=60).run()
    assert not app.exception
    assert app.sidebar.selectbox(key="manifest_path").value == str(fetal_set)
    assert _metric(app, "Frames") == "12"
    assert len(app.text_input) == 0  # no free path anywhere


def test_without_a_folder_the_page_says_how_to_start_it(renders):
    sys.argv[:] = [VIEWER]
    app = AppTest.from_file(VIEWER, default_timeout=60).run()
    assert not app.exception
    assert "ultrassl app FOLDER" in app.info[0].value
    assert not renders


def test_lists_clips_and_shows_the_first_frame(fetal_set, renders):
    app = _app(fetal_set)
    assert not app.exception
    assert not app.error
    clips = _clips(app)
    assert clips.value == "sweeps/sweep_000.dcm"
    assert [o.split(" · ")[0] for o in clips.options] == ["sweeps/sweep_000.dcm", "sweeps/sweep_001.mp4"]
    assert _metric(app, "Frames") == "12"
    assert _metric(app, "Frame rate") == "25 fps"
    assert _metric(app, "Size") == "80 × 64 px"
    assert _metric(app, "Pixel spacing").endswith("mm")  # the DICOM's ultrasound region gives it
    assert app.image[0].captions == ["frame 0 of 12 · 0.00 s"]
    # the frame shown is the file's frame 0, enlarged to the display width
    shown = renders[-1]
    expected = read_clip(fetal_set.parent / "sweeps" / "sweep_000.dcm", [0]).frames[0]
    np.testing.assert_array_equal(shown["frame"], expected)
    assert shown["scale"] == 8 and shown["image"].shape == (64 * 8, 80 * 8, 3)


def test_a_packed_manifest_shows_the_same_frames_and_labels(fetal_set, renders, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(fetal_set.parent, served)
    packed = pack_part(served / "manifest.csv", served / "packed").manifest
    app = _app(packed)
    assert not app.exception and not app.error
    clips = _clips(app)
    assert [o.split(" · ")[0] for o in clips.options] == [
        "shards/part-0000-of-0001-000000.tar::clip-00000000",
        "shards/part-0000-of-0001-000000.tar::clip-00000001"]
    assert _metric(app, "Frames") == "12"
    assert _metric(app, "Pixel spacing").endswith("mm")
    expected = read_clip(served / "sweeps" / "sweep_000.dcm", [0]).frames[0]
    np.testing.assert_array_equal(renders[-1]["frame"], expected)


@pytest.mark.parametrize("clip", ["sweeps/sweep_000.dcm", "sweeps/sweep_001.mp4"])
def test_plane_label_of_the_chosen_frame_matches_the_sidecar(fetal_set, renders, clip):
    planes = _planes(fetal_set, clip)
    foreground = [t for t, name in enumerate(planes) if name != "Background"]
    frames = sorted({foreground[0] if foreground else 3, len(planes) - 1})
    app = _app(fetal_set)
    _clips(app).select(clip).run()
    for frame in frames:
        app.slider(key=f"frame::{fetal_set.parent / clip}").set_value(frame).run()
        assert not app.exception
        assert _metric(app, "Plane (ground truth)") == planes[frame]
        assert app.image[0].captions[0].startswith(f"frame {frame} of 12")
    assert foreground, "the simulated set should hold at least one standard plane"


def test_outside_of_the_sector_is_hidden_and_a_visitor_cannot_unhide_it(fetal_set, renders):
    app = _app(fetal_set)
    assert "hide_outside_sector" not in [t.key for t in app.sidebar.toggle]
    assert any("started without --unmasked" in c.value for c in app.sidebar.caption)
    call = renders[-1]
    frame, sector, image, scale = call["frame"], call["sector"], call["image"], call["scale"]
    assert call["options"].hide_outside_sector
    grey = frame[..., 0]
    text = ~sector & (grey > 100)
    assert text.sum() >= 20, "the simulated frame should carry burned-in text outside the sector"
    # nothing shown depends on what lies outside the sector ...
    blanked = np.where(sector[..., None], frame, 0).astype(np.uint8)
    again = overlays.render_view(blanked, call["options"], sector, call["fixations_xy"], call["density_xy"], scale)
    np.testing.assert_array_equal(image, again)
    # ... and the text's pixels are black on screen
    rows, columns = np.nonzero(text)
    assert (image[rows * scale + scale // 2, columns * scale + scale // 2] == 0).mean() > 0.99
    assert "hidden" in " ".join(c.value for c in app.caption)


def test_a_server_started_unmasked_lets_masking_be_turned_off_with_a_warning(fetal_set, renders):
    app = _app(fetal_set, "--unmasked")
    assert app.sidebar.toggle(key="hide_outside_sector").value is True  # still on until turned off
    app.sidebar.toggle(key="hide_outside_sector").set_value(False).run()
    assert not app.exception
    assert any("burned-in text" in w.value for w in app.warning)
    call = renders[-1]
    assert not call["options"].hide_outside_sector
    frame, image, scale = call["frame"], call["image"], call["scale"]
    rows, columns = np.nonzero(~call["sector"] & (frame[..., 0] > 100))
    assert (image[rows * scale + scale // 2, columns * scale + scale // 2] > 100).mean() > 0.9


def test_refused_rows_are_listed_with_their_reasons(fetal_set, renders):
    app = _app(fetal_set)
    assert "Refused files (1)" in [e.label for e in app.expander]
    tables = [d.value for d in app.dataframe if "error" in d.value.columns]
    assert len(tables) == 1
    refused = tables[0]
    assert refused["clip"].tolist() == ["sweeps/sweep_broken.dcm"]
    assert refused["error"].iloc[0].startswith("CorruptFileError")


def test_density_overlay(fetal_set, renders):
    clip = "sweeps/sweep_000.dcm"
    looked_at = pd.read_csv(fetal_set.parent / "sweeps" / "sweep_000.fixations.csv")["frame"]
    assert len(looked_at), "the simulated sweep should hold fixations"
    app = _app(fetal_set)
    app.sidebar.toggle(key="show_density").set_value(True).run()
    app.slider(key=f"frame::{fetal_set.parent / clip}").set_value(int(looked_at.iloc[0])).run()
    assert not app.exception
    call = renders[-1]
    assert call["options"].density and len(call["density_xy"]) >= 1


def test_a_broken_sidecar_is_reported_and_the_frame_still_shown(fetal_set, renders, tmp_path):
    copy = tmp_path / "fetal"
    shutil.copytree(fetal_set.parent, copy)
    planes = copy / "sweeps" / "sweep_000.planes.csv"
    planes.write_text("frame,plane\n0,Background\n")  # 11 of the 12 frames unlabelled
    app = _app(copy / "manifest.csv")
    assert not app.exception
    assert any(w.value.startswith("Frame labels not shown: ManifestError") for w in app.warning)
    assert "Plane (ground truth)" not in [m.label for m in app.metric]
    # the fixations still show: their sidecar is intact
    fixations = pd.read_csv(copy / "sweeps" / "sweep_000.fixations.csv")
    assert _metric(app, "Fixations on this frame") == str(int((fixations["frame"] == 0).sum()))
    assert len(renders) == 1 and renders[0]["options"].hide_outside_sector
