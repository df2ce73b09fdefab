from __future__ import annotations

import pytest

from tests.sweeps import make_fetal_manifest


@pytest.fixture(scope="session")
def fetal_manifest(tmp_path_factory):
    """Manifest of 4 simulated sweeps (24 frames of 48 x 64; 1-channel DICOM and 3-channel mp4)."""
    return make_fetal_manifest(tmp_path_factory.mktemp("fetal_sweeps"))
