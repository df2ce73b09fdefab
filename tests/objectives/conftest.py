from __future__ import annotations

from pathlib import Path

import pytest
import torch

from data_tools.cli import main as data_main


@pytest.fixture(scope="session")
def sweeps(tmp_path_factory) -> Path:
    """Manifest of 12 simulated sweeps of 24 frames (subject-level train/val split)."""
    out = tmp_path_factory.mktemp("sweeps")
    assert data_main(["synth", str(out), "--kind", "fetal-sweep", "--n", "12", "--frames", "24", "--quiet"]) == 0
    return out / "manifest.csv"


@pytest.fixture(scope="session")
def motion(tmp_path_factory) -> Path:
    """Manifest of the motion clips, 6 per class of 20 frames, in the UCF101 layout."""
    out = tmp_path_factory.mktemp("motion")
    assert data_main(["synth", str(out), "--kind", "motion", "--n", "6", "--frames", "20", "--quiet"]) == 0
    return out / "manifest.csv"


@pytest.fixture()
def one_thread():
    """Tiny models run fastest on one intra-op thread, and do not stall when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
