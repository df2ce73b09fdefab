"""CVRL, VTDL and CATE recipes on real files: views, the asymmetric pair, switches, records."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from ultrassl.data.datasets import ManifestDataset
from ultrassl.models.cate_tokens import augmentation_tokens
from ultrassl.pipelines.cate import CATEPipeline
from ultrassl.pipelines.cvrl import CVRLPipeline
from ultrassl.pipelines.vtdl import VTDLPipeline

SIZE = (32, 40)


def _batch(manifest, pipeline, n_items: int, seed: int = 0) -> dict:
    """Items of every row, each chain seeded as the data module does, collated."""
    dataset = ManifestDataset(manifest, pipeline.train_transform())
    items = []
    for i in range(n_items):
        dataset.transform.set_random_state(seed=seed + i)
        items.append(dataset[i % len(dataset)])
    return default_collate(items)


@pytest.mark.parametrize(("modality", "in_channels"), [("ultrasound", 1), ("natural", 3)])
def test_cvrl_views_and_the_asymmetric_augmentation(fetal_manifest, modality, in_channels):
    pipeline = CVRLPipeline(modality=modality, in_channels=in_channels, size=SIZE, num_frames=4, stride=2,
                            mask_sector=modality == "ultrasound")
    batch = _batch(fetal_manifest, pipeline, 24)
    for view in ("view1", "view2"):
        assert batch[view].shape == (24, in_channels, 4, *SIZE)
    first, second = batch["view1_params"], batch["view2_params"]
    # blur always on view 1, rarely on view 2; solarisation never on view 1
    assert first["blur"]["applied"].all() and (first["blur"]["sigma"] > 0).all()
    assert second["blur"]["applied"].float().mean() < 0.5
    assert not first["solarize"]["applied"].any()
    colour = {"color_jitter", "grayscale"}
    if modality == "natural":
        assert colour <= set(first) and "intensity" not in first
    else:
        assert not colour & set(first) and "intensity" in first
    # the two clips are gap_frames apart; every view its own crop
    starts = first["temporal"]["start_frame"], second["temporal"]["start_frame"]
    torch.testing.assert_close((starts[0] - starts[1]).abs(), first["temporal"]["gap_frames"])
    assert not torch.equal(torch.stack(first["resized_crop"]["box"]), torch.stack(second["resized_crop"]["box"]))


def test_cvrl_per_frame_switch_draws_every_frame(fetal_manifest):
    consistent = _batch(fetal_manifest, CVRLPipeline(size=SIZE, num_frames=4), 2)
    per_frame = _batch(fetal_manifest, CVRLPipeline(size=SIZE, num_frames=4, per_frame=True), 2)
    assert "per_frame" not in consistent["view1_params"]["resized_crop"]
    record = per_frame["view1_params"]["resized_crop"]
    assert record["per_frame"].all() and len(record["frames"]) == 4
    boxes = torch.stack([torch.stack(frame["box"], 1) for frame in record["frames"]], 1)  # (B, T, 4)
    assert (boxes[:, 1:] != boxes[:, :1]).any(dim=-1).all()  # each frame its own crop
    # a frame of the consistent view differs from its neighbour only by the motion, the
    # per-frame view's also by the crop: its frame-to-frame change is larger
    change = lambda clips: (clips[:, :, 1:] - clips[:, :, :-1]).abs().mean()  # noqa: E731
    assert change(per_frame["view1"]) > change(consistent["view1"])


def test_cvrl_options_reach_the_sampler_and_bad_ones_are_refused():
    assert CVRLPipeline(gap="increasing").sampler().gap == "increasing"
    assert CVRLPipeline().sampler().strides is None  # CVRL: one stride for both views
    assert CVRLPipeline(strides=[1, 2, 4]).sampler().strides == (1, 2, 4)
    assert CVRLPipeline().sampler().max_gap is None and CVRLPipeline(max_gap=3).sampler().max_gap == 3
    with pytest.raises(ValueError, match="max_gap"):
        CVRLPipeline(max_gap=-2)
    with pytest.raises(ValueError, match="strides"):
        CVRLPipeline(strides=[0, 2])
    with pytest.raises(ValueError, match="keep_sector_mask"):
        CVRLPipeline(keep_sector_mask=True)
    with pytest.raises(ValueError, match="blur_prob"):
        CVRLPipeline(blur_prob=(1.0,))
    with pytest.raises(ValueError, match="gap"):
        CVRLPipeline(gap="random")


def test_vtdl_triplet_tca_on_the_anchor_only(fetal_manifest):
    batch = _batch(fetal_manifest, VTDLPipeline(size=SIZE, num_frames=4, min_negative_gap=4), 8)
    torch.testing.assert_close(batch["anchor_frame_indices"], batch["positive_frame_indices"])
    far = batch["negative_params"]["temporal"]["negative_far_enough"]
    gaps = (batch["negative_frame_indices"][:, 0] - batch["anchor_frame_indices"][:, 0]).abs()
    assert ((gaps >= 4) == far).all() and far.any()
    assert "tca" in batch["anchor_params"] and "tca" not in batch["positive_params"]
    assert (batch["anchor_params"]["tca"]["lam"] < 0.1).all()
    for view in ("anchor", "positive", "negative"):
        assert {"resized_crop", "flip", "intensity"} <= set(batch[f"{view}_params"])


def test_vtdl_without_basic_augmentation_tca_only_scales_the_motion(fetal_manifest):
    plain = _batch(fetal_manifest, VTDLPipeline(size=SIZE, num_frames=4, basic_augmentation=False, tca=False), 4)
    torch.testing.assert_close(plain["anchor"], plain["positive"])  # same frames, no augmentation
    batch = _batch(fetal_manifest, VTDLPipeline(size=SIZE, num_frames=4, basic_augmentation=False), 4)
    lam = batch["anchor_params"]["tca"]["lam"].float().view(-1, 1, 1, 1, 1)
    anchor, positive = batch["anchor"], batch["positive"]
    torch.testing.assert_close(anchor.diff(dim=2), (1 - lam) * positive.diff(dim=2), atol=1e-5, rtol=1e-4)
    assert (anchor - positive).abs().max() > 1e-3


def test_cate_items_give_tokens_and_per_frame_is_refused(fetal_manifest):
    batch = _batch(fetal_manifest, CATEPipeline(size=SIZE, num_frames=4), 6)
    tokens = augmentation_tokens(batch, "view1", "view2", ["time", "crop", "flip"])
    gap_s = batch["view1_params"]["temporal"]["gap_frames"] / batch["view1_params"]["temporal"]["fps"]
    torch.testing.assert_close(tokens["time"][:, 0].abs(), gap_s.float())
    assert tokens["crop"].abs().sum() > 0
    with pytest.raises(ValueError, match="per_frame"):
        CATEPipeline(per_frame=True)


def test_cate_views_at_drawn_strides_give_speed_encodings_that_vary(fetal_manifest):
    batch = _batch(fetal_manifest, CATEPipeline(size=SIZE, num_frames=4, strides=[1, 2, 4]), 12)
    speed = augmentation_tokens(batch, "view1", "view2", ["speed"])["speed"][:, 0]
    stride1, stride2 = (batch[f"{view}_params"]["temporal"]["stride"] for view in ("view1", "view2"))
    torch.testing.assert_close(speed, torch.log2(stride1 / stride2).float())
    assert len(set(speed.tolist())) > 1, speed
    assert batch["view1"].shape == batch["view2"].shape  # same T frames whatever the speed
