"""Fixtures of the viewer tests: a tiny simulated data set and a spy on what the page draws."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from apps import overlays
from ultrassl.data.indexing import index_folder
from tests.media import truncate_file
from ultrassl.data.manifest import write_manifest
from ultrassl.synth import synthesize_fetal_sweeps


@pytest.fixture(scope="session")
def fetal_set(tmp_path_factory) -> Path:
    """Two simulated sweeps (a DICOM and an mp4, 12 frames of 64x80) plus one truncated DICOM."""
    root = tmp_path_factory.mktemp("fetal")
    synthesize_fetal_sweeps(root, n_sweeps=2, n_frames=12, size=(64, 80), workers=1)
    truncate_file(root / "sweeps" / "sweep_000.dcm", root / "sweeps" / "sweep_broken.dcm", 0.5)
    manifest = index_folder(root, annotations=root / "annotations.csv", progress=False)
    return write_manifest(manifest, root / "manifest.csv")


@pytest.fixture
def renders(monkeypatch) -> list[dict]:
    """Every call the page makes to ``overlays.render_view``: its arguments and the image shown."""
    calls: list[dict] = []
    original = overlays.render_view

    def spy(frame, options=overlays.ViewOptions(), sector=None, fixations_xy=None, density_xy=None, scale=1):
        image = original(frame, options, sector, fixations_xy, density_xy, scale)
        calls.append(dict(frame=frame, options=options, sector=sector, fixations_xy=fixations_xy,
                          density_xy=density_xy, scale=scale, image=image))
        return image

    monkeypatch.setattr(overlays, "render_view", spy)
    return calls


@pytest.fixture(autouse=True)
def _viewer_arguments():
    """The viewer reads its server's arguments from ``sys.argv``; each test sets its own."""
    saved = list(sys.argv)
    yield
    sys.argv[:] = saved
