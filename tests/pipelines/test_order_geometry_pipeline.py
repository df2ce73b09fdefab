"""Order + geometry pipeline on real files: collation, labels, one affine for every frame."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from ultrassl.data.datasets import ManifestDataset
from ultrassl.pipelines.base import ClipPipeline, KeepCollatabled, SplitViewd, collatable
from ultrassl.pipelines.order_geometry import OrderGeometryPipeline
from ultrassl.transforms.pretext import permutation_class
from ultrassl.transforms.spatial import RandAffineClip


def _items(manifest, pipeline, n_items: int, seed: int = 0) -> list[dict]:
    """Items of every row (DICOM and mp4 alike), each chain seeded as the data module does."""
    dataset = ManifestDataset(manifest, pipeline.train_transform())
    items = []
    for i in range(n_items):
        dataset.transform.set_random_state(seed=seed + i)
        items.append(dataset[i % len(dataset)])
    return items


@pytest.mark.parametrize(("mode", "in_channels"), [("parallel", 1), ("sequential", 3)])
def test_items_collate_with_labels_and_shapes(fetal_manifest, mode, in_channels):
    pipeline = OrderGeometryPipeline(mode=mode, in_channels=in_channels, size=(32, 40), spacing=3)
    batch = default_collate(_items(fetal_manifest, pipeline, 6))
    assert set(batch["format"]) == {"dicom", "video"}  # 1-channel DICOM and 3-channel mp4 in one batch
    for key in pipeline.image_keys:
        assert batch[key].shape == (6, in_channels, 4, 32, 40) and batch[key].dtype == torch.float32
    order = batch[f"{pipeline.order_key}_params"]["permutation"]
    perms = torch.stack(order["permutation"], dim=1)  # 4 tensors (B,) -> (B, 4)
    assert [permutation_class(p.tolist()) for p in perms] == order["index"].tolist()
    affine = batch[f"{pipeline.geometry_key}_params"]["affine"]
    assert torch.stack(affine["normalised"], dim=1).abs().max() <= 1.0
    # the frames are `spacing` frames apart in the file
    indices = batch["clip_frame_indices"]
    assert (indices.diff(dim=1) == 3).all()
    assert "sector_mask" not in batch and "clip_info" not in batch


def test_sector_is_masked_and_normalised(fetal_manifest):
    plain = OrderGeometryPipeline(size=(32, 40), mean=0.0, std=1.0, mask_sector=False, flip_prob=0.0,
                                  rotate_range_deg=0.0, scale_range=0.0, shear_range=0.0)
    masked = OrderGeometryPipeline(size=(32, 40), mean=0.0, std=1.0, keep_sector_mask=True, flip_prob=0.0,
                                   rotate_range_deg=0.0, scale_range=0.0, shear_range=0.0)
    raw, cut = _items(fetal_manifest, plain, 1)[0], _items(fetal_manifest, masked, 1)[0]
    mask = cut["sector_mask"]
    assert mask.shape == (1, 1, 32, 40) and 0.2 < mask.mean() < 0.9
    # The sector is masked at the file's size, then clip and mask are resized: away from the
    # sector's border (one pixel) the clip is unchanged inside and blank outside.
    inside = -torch.nn.functional.max_pool2d(-mask[0], 3, stride=1, padding=1) > 0.5
    outside = torch.nn.functional.max_pool2d(mask[0], 3, stride=1, padding=1) < 0.5
    torch.testing.assert_close(cut["order_clip"][..., inside[0]], raw["order_clip"][..., inside[0]])
    assert cut["order_clip"][..., outside[0]].abs().max() < 1e-6
    assert raw["order_clip"][..., outside[0]].abs().max() > 0.1  # burned-in text was there
    normalised = OrderGeometryPipeline(size=(32, 40), mean=0.25, std=0.5, mask_sector=False)
    item = _items(fetal_manifest, normalised, 1)[0]
    torch.testing.assert_close(item["order_clip"], (raw["order_clip"] - 0.25) / 0.5)


def test_one_affine_for_every_frame_through_the_pipeline(fetal_manifest):
    # Identity normalisation, so the geometry view is exactly the affine of the loaded frames.
    pipeline = OrderGeometryPipeline(size=(32, 40), mean=0.0, std=1.0, rotate_range_deg=40, scale_range=0.2,
                                     shear_range=0.2, flip_prob=0.5)
    for item in _items(fetal_manifest, pipeline, 4, seed=11):
        perm = item["order_clip_params"]["permutation"]["permutation"]
        frames = torch.empty_like(item["order_clip"])
        frames[:, perm] = item["order_clip"]  # undo the shuffle: the frames as loaded
        params = item["geometry_clip_params"]["affine"]
        assert params["applied"]
        for t in range(frames.shape[1]):  # each frame on its own, with the one recorded draw
            expected = RandAffineClip().apply(frames[:, t : t + 1], params)
            torch.testing.assert_close(item["geometry_clip"][:, t : t + 1], expected, atol=1e-5, rtol=0)
        assert not torch.allclose(item["geometry_clip"], frames, atol=1e-3)


def test_discrete_rotations_record_class_index(fetal_manifest):
    pipeline = OrderGeometryPipeline(size=(32, 32), discrete_rotations=[0, 90, 180, 270], rotate_range_deg=0,
                                     scale_range=0, shear_range=0, flip_prob=0)
    batch = default_collate(_items(fetal_manifest, pipeline, 8))
    affine = batch["geometry_clip_params"]["affine"]
    assert set(affine["class_index"].tolist()) <= {0, 1, 2, 3}
    torch.testing.assert_close(affine["rotation_deg"], 90.0 * affine["class_index"].double(), check_dtype=False)


def test_split_view_copies_records_and_keep_collatable_drops_objects():
    clip = torch.rand(1, 4, 8, 8)
    split = SplitViewd("clip", ("a", "b"))({"clip": clip, "clip_params": {"temporal": {"stride": 2}}})
    assert "clip" not in split and split["a"] is clip and split["b"] is clip
    assert split["a_params"] == split["b_params"] == {"temporal": {"stride": 2}}
    assert split["a_params"]["temporal"] is not split["b_params"]["temporal"]
    kept = KeepCollatabled(drop=("mask",))({"x": clip, "mask": clip, "info": object(), "none": None, "m": {"s": [1.0]}})
    assert set(kept) == {"x", "m"}
    assert collatable({"a": [1, 2.0, True, "t"]}) and not collatable([object()])


def test_bad_options_fail_when_built():
    with pytest.raises(ValueError, match="mask_sector applies to ultrasound"):
        ClipPipeline(modality="natural", mask_sector=True)
    assert not ClipPipeline(modality="natural", in_channels=3).mask_sector
    with pytest.raises(ValueError, match="in_channels"):
        ClipPipeline(in_channels=2)
    with pytest.raises(ValueError, match="mean needs 1 or 3"):
        ClipPipeline(in_channels=3, mean=[0.1, 0.2])
    with pytest.raises(ValueError, match="mode"):
        OrderGeometryPipeline(mode="both")
    with pytest.raises(ValueError, match="num_frames >= 3"):
        OrderGeometryPipeline(num_frames=2)


def test_warp_within_sector_keeps_the_sector_edges_where_they_were(fetal_manifest):
    # the warped view is blank exactly outside the sector found on the unwarped frames, so
    # the fan's edges cannot tell the rotation; without the option they move with it
    options = dict(size=(32, 40), spacing=3, rotate_range_deg=(25, 30), keep_sector_mask=True, mean=0.0, std=1.0)
    inside = OrderGeometryPipeline(warp_within_sector=True, **options)
    plain = OrderGeometryPipeline(**options)
    for within, item in ((True, _items(fetal_manifest, inside, 1)[0]), (False, _items(fetal_manifest, plain, 1)[0])):
        outside = item["sector_mask"][0, 0] == 0
        warped = item["geometry_clip"]
        assert (warped[..., outside] == 0).all() if within else (warped[..., outside] != 0).any()


def test_warp_within_sector_needs_the_sector():
    with pytest.raises(ValueError, match="needs the scan sector"):
        OrderGeometryPipeline(modality="natural", warp_within_sector=True)


def test_the_loop_cache_changes_no_sample(fetal_manifest):
    plain = OrderGeometryPipeline(size=(32, 40), spacing=3)
    cached = OrderGeometryPipeline(size=(32, 40), spacing=3, loop_cache_mb=64)
    dataset = ManifestDataset(fetal_manifest, cached.train_transform())
    cache = next(t for t in dataset.transform.transforms if hasattr(t, "cache")).cache
    cache.clear()  # the process's cache: earlier tests may have read these loops
    for _ in range(2):  # the second round is served from memory
        for expected, item in zip(_items(fetal_manifest, plain, 6), (_seeded(dataset, i) for i in range(6))):
            for key in plain.image_keys:
                torch.testing.assert_close(item[key], expected[key])
    assert cache.misses == len(dataset) and cache.hits == 12 - len(dataset)
    with pytest.raises(ValueError, match="loop_cache_mb"):
        OrderGeometryPipeline(loop_cache_mb=-1)


def _seeded(dataset, i, seed=0):
    dataset.transform.set_random_state(seed=seed + i)
    return dataset[i % len(dataset)]
