"""Fixtures of the viewer tests: a tiny simulated data set and a spy on what the page draws."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from apps import overlays
from ultrassl.data.indexing import index_folder
from tests.media import truncate_file
from ultrassl.data.manifest import write_manifest
from ultrassl.synth import synthesize_fetal_sweeps
from tests.downstream.helpers import TINY3D, loader_of, plane_batch, quick_trainer, saliency_batch
from ultrassl.data.planes import PLANE_CLASSES
from ultrassl.downstream.plane_detection import PlaneDetection
from ultrassl.downstream.saliency import SaliencyPrediction


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


def _pipeline(class_path: str) -> dict:
    return {"class_path": class_path,
            "init_args": {"modality": "ultrasound", "in_channels": 1, "size": [32, 40], "clip_frames": 2}}


def _trained(path: Path, task: str) -> Path:
    """A tiny model of ``task``, one step on random batches, saved with its pipeline."""
    torch.manual_seed(0)
    if task == "plane_detection":
        pipeline = _pipeline("ultrassl.pipelines.plane_detection.PlaneDetectionPipeline")
        model = PlaneDetection(init="random", class_names=list(PLANE_CLASSES), class_weights=None, pipeline=pipeline,
                               **TINY3D)
        batch = plane_batch(classes=len(PLANE_CLASSES))
    else:
        model = SaliencyPrediction(init="random", n_splits=3, pipeline=_pipeline("ultrassl.pipelines.saliency.SaliencyPipeline"),
                                   **TINY3D)
        batch = saliency_batch()
    trainer = quick_trainer(1, limit_val_batches=0)
    trainer.fit(model, loader_of(batch, 1))
    trainer.save_checkpoint(path, weights_only=True)
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny trained plane-detection and saliency model, in one folder (a run folder to serve)."""
    root = tmp_path_factory.mktemp("models")
    return {task: _trained(root / f"{task}.ckpt", task) for task in ("plane_detection", "saliency")}
