"""Fixtures of the downstream tests (helpers in :mod:`tests.downstream.helpers`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.downstream.helpers import (
    SONONET,
    TINY3D,
    make_fetal_manifest,
    make_motion_manifest,
    write_pretrain_checkpoint,
)


@pytest.fixture(scope="session")
def checkpoint_factory(tmp_path_factory):
    """``make(objective, backbone="tiny3d"|"sononet16") -> Path``, cached per session."""
    root = tmp_path_factory.mktemp("pretrain_checkpoints")
    made: dict[tuple[str, str], Path] = {}

    def make(objective: str = "order_geometry", backbone: str = "tiny3d") -> Path:
        key = (objective, backbone)
        if key not in made:
            made[key] = write_pretrain_checkpoint(root / f"{objective}_{backbone}.ckpt", objective,
                                                  TINY3D if backbone == "tiny3d" else SONONET)
        return made[key]

    return make


@pytest.fixture(scope="session")
def fetal_manifest(tmp_path_factory):
    """Manifest of 4 simulated sweeps of 24 frames of 48 x 64 (DICOM and mp4), one subject in val."""
    return make_fetal_manifest(tmp_path_factory.mktemp("fetal_sweeps"))


@pytest.fixture(scope="session")
def fetal_manifest_two_held_out(tmp_path_factory):
    """6 simulated sweeps of 16 frames of 48 x 64, two subjects held out (shuffled AUC needs
    fixations from another held-out video)."""
    return make_fetal_manifest(tmp_path_factory.mktemp("fetal_sweeps_6"), n_sweeps=6, n_frames=16)


@pytest.fixture(scope="session")
def motion_manifest(tmp_path_factory):
    """The embedded motion clips, 3 per class (8 classes), UCF101 split 1."""
    return make_motion_manifest(tmp_path_factory.mktemp("motion"))
