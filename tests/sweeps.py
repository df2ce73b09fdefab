"""A few small simulated fetal sweeps, indexed into a manifest, for engine and pipeline tests."""

from __future__ import annotations

from pathlib import Path

from ultrassl.data.indexing import index_folder
from ultrassl.data.manifest import write_manifest
from ultrassl.synth import synthesize_fetal_sweeps


def make_fetal_manifest(root: Path, n_sweeps: int = 4, n_frames: int = 24, size: tuple[int, int] = (48, 64)) -> Path:
    """Write ``n_sweeps`` sweeps under ``root`` and return their manifest.

    DICOM (1 channel) and mp4 (3 channels) alternate; one sweep per subject, so that with 4
    sweeps 3 subjects train (both formats among them) and 1 is held out (split ``val``).
    """
    synthesize_fetal_sweeps(root, n_sweeps=n_sweeps, n_frames=n_frames, size=size, sweeps_per_subject=1, workers=1)
    manifest = index_folder(root, annotations=root / "annotations.csv")
    return write_manifest(manifest, root / "manifest.csv")
