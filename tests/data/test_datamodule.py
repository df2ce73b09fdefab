"""ManifestDataModule: splits, per-(seed, epoch, item) randomness, sharding across processes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tests.sweeps import make_fetal_manifest
from ultrassl.data.datamodule import EpochSeededSampler, ManifestDataModule, item_seed
from ultrassl.data.manifest import manifest_hash, read_manifest, write_manifest
from ultrassl.errors import ManifestError
from ultrassl.pipelines.cvrl import CVRLPipeline
from ultrassl.pipelines.order_geometry import OrderGeometryPipeline


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_fetal_manifest(tmp_path_factory.mktemp("sweeps"))


def _module(manifest, **kwargs) -> ManifestDataModule:
    options = dict(batch_size=4, clips_per_video=4, seed=7)
    options.update(kwargs)
    module = ManifestDataModule(manifest, OrderGeometryPipeline(size=(32, 32)), **options)
    module.setup("fit")
    return module


def _fingerprint(batches) -> list[tuple]:
    return [
        (tuple(b["path"]), b["order_clip_params"]["permutation"]["index"].tolist(), float(b["order_clip"].sum()))
        for b in batches
    ]


def test_splits_follow_the_split_column(manifest):
    module = _module(manifest)
    table = read_manifest(manifest)
    train = set(table.loc[table["split"] == "train", "path"])
    val = set(table.loc[table["split"] == "val", "path"])
    assert {row["path"] for row in module.train_set.dataset.data} == train
    assert {row["path"] for row in module.val_set.dataset.data} == val
    assert len(module.train_set) == 4 * len(train)  # clips_per_video items per sweep
    assert module.provenance()["manifest_sha256"] == manifest_hash(manifest)


def test_a_subset_of_training_subjects_trains_and_the_held_out_set_stays(manifest):
    table = read_manifest(manifest)
    train = table[table["split"] == "train"]
    chosen = sorted(set(train["subject"]))[:2]
    module = _module(manifest, train_subjects=chosen)
    assert {row["subject"] for row in module.train_set.dataset.data} == set(chosen)
    assert len(module.train_set.dataset) == int(train["subject"].isin(chosen).sum())
    assert {row["path"] for row in module.val_set.dataset.data} == set(table.loc[table["split"] == "val", "path"])
    with pytest.raises(ManifestError, match="no training clips"):
        _module(manifest, train_subjects=["nobody"])


def test_without_split_column_whole_subjects_are_held_out(manifest, tmp_path):
    table = read_manifest(manifest).drop(columns=["split"])
    table["subject"] = ["A", "A", "B", "B"]
    write_manifest(table, tmp_path / "nosplit.csv")
    module = _module(tmp_path / "nosplit.csv", holdout_fraction=0.5)
    train = {row["subject"] for row in module.train_set.dataset.data}
    val = {row["subject"] for row in module.val_set.dataset.data}
    assert len(train) == len(val) == 1 and train != val
    assert _module(tmp_path / "nosplit.csv", holdout_fraction=0.0).val_set is None


def test_batches_repeat_per_seed_and_epoch_and_ignore_workers(manifest):
    module = _module(manifest)
    loader = module.train_dataloader()
    epoch0 = _fingerprint(loader)
    assert epoch0 == _fingerprint(loader)  # same epoch again: same order, same draws
    assert epoch0 == _fingerprint(_module(manifest, num_workers=2).train_dataloader())
    loader.sampler.set_epoch(1)
    epoch1 = _fingerprint(loader)
    assert epoch1 != epoch0 and sorted(p for b in epoch1 for p in b[0]) == sorted(p for b in epoch0 for p in b[0])
    assert epoch0 != _fingerprint(_module(manifest, seed=8).train_dataloader())


def test_items_built_in_the_training_process_equal_a_workers_to_the_bit(manifest):
    """8 x 64 x 80 views are large enough for torch to split the contrast jitter's mean over
    threads; were they built on the training process's two threads, their last bits would
    differ from a worker's (one thread), and so would the runs."""
    pipeline = CVRLPipeline(num_frames=8, stride=1, size=(64, 80), in_channels=1, color_prob=1.0)

    def first_batch(num_workers):
        module = ManifestDataModule(manifest, pipeline, batch_size=4, clips_per_video=2, seed=7,
                                   num_workers=num_workers)
        module.setup("fit")
        return next(iter(module.train_dataloader()))

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        in_process = first_batch(0)
        assert torch.get_num_threads() == 2  # the training process keeps its threads
    finally:
        torch.set_num_threads(threads)
    in_worker = first_batch(1)
    assert in_process["view1"].shape == (4, 1, 8, 64, 80)
    assert in_process["view1_params"]["intensity"]["contrast"].ne(1.0).all()  # the jitter ran
    for view in ("view1", "view2"):
        assert torch.equal(in_process[view], in_worker[view])


def test_validation_draws_do_not_change_with_the_epoch(manifest):
    loader = _module(manifest, val_clips_per_video=3).val_dataloader()
    first = _fingerprint(loader)
    loader.sampler.set_epoch(5)
    assert _fingerprint(loader) == first


def test_items_draw_from_their_own_seed():
    assert item_seed(0, 0, 1) != item_seed(0, 1, 0) != item_seed(1, 0, 0)
    assert item_seed(3, 2, 1) == item_seed(3, 2, 1) and 0 <= item_seed(3, 2, 1) < 2**32


def test_sampler_shards_an_epoch_across_processes():
    shards = [list(EpochSeededSampler(10, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded as torch's DistributedSampler pads
    items = [index for shard in shards for _, index in shard]
    assert set(items) == set(range(10)) and len(items) == 12
    assert all(epoch == 0 for shard in shards for epoch, _ in shard)
    sampler = EpochSeededSampler(10, seed=1)
    sampler.set_epoch(3)
    assert {epoch for epoch, _ in sampler} == {3}


def test_each_process_loads_its_own_share(manifest):
    module = _module(manifest, clips_per_video=5, batch_size=2)
    shares = []
    for rank in (0, 1):
        module.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        loader = module.train_dataloader()
        assert (loader.sampler.num_replicas, loader.sampler.rank) == (2, rank)
        shares.append([index for _, index in loader.sampler])
    assert len(shares[0]) == len(shares[1]) == 8  # 15 items padded to 16, half each
    assert set(shares[0]) | set(shares[1]) == set(range(15))


def test_bad_settings_are_refused(manifest, tmp_path):
    with pytest.raises(ManifestError, match="no such manifest"):
        ManifestDataModule(tmp_path / "missing.csv", OrderGeometryPipeline())
    with pytest.raises(TypeError, match="Pipeline"):
        ManifestDataModule(manifest, pipeline="order_geometry")
    table = read_manifest(manifest)
    table["split"] = "test"
    write_manifest(table, tmp_path / "test_only.csv")
    with pytest.raises(ManifestError, match="split == 'train'"):
        _module(tmp_path / "test_only.csv")


def test_small_split_keeps_its_only_batch(manifest):
    # BatchNorm needs more than one clip per batch: the ragged last batch is dropped,
    # unless the split holds fewer clips than one batch.
    module = _module(manifest, clips_per_video=1, batch_size=8)
    assert len(module.train_dataloader()) == 1
    module = _module(manifest, clips_per_video=3, batch_size=4)
    assert len(module.train_dataloader()) == 2  # 9 items: 2 full batches, the 1 left over dropped
    assert next(iter(module.train_dataloader()))["order_clip"].shape[0] == 4
