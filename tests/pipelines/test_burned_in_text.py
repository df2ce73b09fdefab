"""No pixel of the text a scanner burns into the frames reaches a model: on every simulated
sweep, DICOM (with ultrasound regions) and mp4 (without), for one-frame and four-frame clips."""

from __future__ import annotations

import pytest
import torch

from ultrassl.data.datasets import ManifestDataset
from ultrassl.data.indexing import index_folder
from ultrassl.io import read_clip
from ultrassl.pipelines.order_geometry import OrderGeometryPipeline
from ultrassl.pipelines.plane_detection import PlaneDetectionPipeline
from ultrassl.synth.fetal_sweep import PROGRAMS, plan_fetal_sweeps, scanner_overlay, synthesize_fetal_sweeps
from ultrassl.transforms.ultrasound import SectorMaskd

SIZE, N_FRAMES, SEED = (128, 160), 24, 2


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """One sweep of every program, formats alternating, with each sweep's text mask."""
    root = tmp_path_factory.mktemp("text_sweeps")
    n = len(PROGRAMS)
    synthesize_fetal_sweeps(root, n_sweeps=n, n_frames=N_FRAMES, size=SIZE, seed=SEED, sweeps_per_subject=1,
                            workers=1)
    manifest = index_folder(root, annotations=root / "annotations.csv", progress=False)
    manifest = manifest.sort_values("path").reset_index(drop=True)
    plans = plan_fetal_sweeps(n, N_FRAMES, SIZE, SEED, sweeps_per_subject=1)
    texts = [scanner_overlay(plan, 25.0) > 0 for plan in plans]
    assert all(t.sum() > 300 for t in texts)
    return manifest, texts


@pytest.mark.parametrize("pipeline", [
    PlaneDetectionPipeline(size=SIZE, keep_sector_mask=True, mean=0.0, std=1.0),
    OrderGeometryPipeline(size=SIZE, keep_sector_mask=True, mean=0.0, std=1.0, rotate_range_deg=0, scale_range=0,
                          shear_range=0, flip_prob=0),
], ids=["one_frame", "four_frames"])
def test_no_text_pixel_survives_the_mask_on_any_sweep(sweeps, pipeline):
    manifest, texts = sweeps
    assert set(manifest["format"]) == {"dicom", "video"}
    data = ManifestDataset(manifest, pipeline.val_transform(), label_column=None)
    image_key = "clip" if "clip" in data[0] else "order_clip"
    for index, text in enumerate(texts):
        for draw in range(3):
            data.transform.set_random_state(seed=draw)
            sample = data[index]
            mask = sample["sector_mask"][0, 0].numpy() > 0.5
            assert not (mask & text).any(), (manifest["path"][index], int((mask & text).sum()))
            assert torch.all(sample[image_key][..., torch.from_numpy(text)] == 0)


def test_one_frame_alone_would_let_text_through_which_is_why_the_loop_is_used(sweeps):
    # Evidence for the design: on single mp4 frames, text beside the fan joins the sector.
    manifest, texts = sweeps
    leaked = 0
    for index, text in enumerate(texts):
        if manifest["format"][index] != "video":
            continue
        clip = torch.from_numpy(read_clip(manifest["path"][index]).frames).permute(3, 0, 1, 2).float() / 255
        for t in range(0, N_FRAMES, 4):
            sample = SectorMaskd(keys="clip", loop_frames=0)({"clip": clip[:, t : t + 1]})
            leaked += int(((sample["sector_mask"][0, 0].numpy() > 0.5) & text).sum())
    assert leaked > 0
