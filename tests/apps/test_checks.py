"""The warning that a loop does not look like the B-mode the models were trained on."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from apps.checks import bmode_doubts
from tests.apps.test_viewer import VIEWER
from ultrassl.io import probe_clip, read_clip
from ultrassl.synth import synthesize_motion
from ultrassl.transforms.ultrasound import LoopSector


@pytest.fixture(scope="module")
def cartoon(tmp_path_factory):
    """A clip of the embedded motion data: coloured textured shapes, not ultrasound."""
    root = tmp_path_factory.mktemp("motion")
    synthesize_motion(root, n_per_class=1, n_frames=12, size=(64, 64), clips_per_group=1)
    return next(root.rglob("v_MoveDown_*.mp4"))


def _frame_and_sector(path):
    info = probe_clip(path)
    return read_clip(path, [info.n_frames // 2]).frames[0], LoopSector(16)(path, info)


def test_simulated_sweeps_look_like_bmode_and_a_cartoon_does_not(fetal_set, cartoon):
    for clip in ("sweep_000.dcm", "sweep_001.mp4"):
        assert bmode_doubts(*_frame_and_sector(fetal_set.parent / "sweeps" / clip)) == []
    doubts = bmode_doubts(*_frame_and_sector(cartoon))
    assert any(d.startswith("it is in colour") for d in doubts), doubts


def test_flat_frames_and_frames_without_a_sector_are_doubted():
    flat = np.full((64, 80, 1), 90, np.uint8)
    assert bmode_doubts(flat, np.ones((64, 80), bool)) == ["large areas are flat where B-mode has speckle"]
    speckle = np.random.default_rng(0).integers(0, 255, (64, 80, 1), dtype=np.uint8)
    assert bmode_doubts(speckle, None) == ["no scan sector was found"]


def test_the_page_warns_when_a_model_is_shown_on_a_cartoon(cartoon, models, renders):
    sys.argv[:] = [VIEWER, "--data", str(cartoon.parent), "--runs", str(models["plane_detection"].parent),
                   "--plane-model", str(models["plane_detection"])]
    app = AppTest.from_file(VIEWER, default_timeout=120).run()
    assert not app.exception
    assert any(w.value.startswith("This loop does not look like the B-mode ultrasound") for w in app.warning)
