"""Pools split by subject never share a subject; label fractions are nested."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from ultrassl.benchmark.pools import draws_of, fraction_size, label_subsets, split_pools, write_manifests
from ultrassl.benchmark.profile import Pools
from ultrassl.data.manifest import read_manifest, write_manifest


@pytest.mark.parametrize("seed,n,sizes", [(s, n, sizes) for s in range(4) for n, sizes in
                                          [(6, (2, 2, 2)), (10, (3, 4, 3)), (30, (12, 10, 8)), (9, (0, 5, 4))]])
def test_pools_never_share_a_subject(seed, n, sizes):
    units = [f"S{i:03d}" for i in range(n)]
    pools = split_pools(units, Pools(*sizes), seed)
    groups = [set(pools.pretrain), set(pools.labelled), set(pools.test)]
    assert [len(g) for g in groups] == list(sizes)
    for a, b in itertools.combinations(groups, 2):
        assert not a & b
    assert set().union(*groups) <= set(units)
    assert split_pools(units, Pools(*sizes), seed) == pools  # the same seed, the same split


def test_the_test_pool_does_not_depend_on_the_pretrain_pool_size():
    units = [f"S{i:03d}" for i in range(20)]
    small, large = split_pools(units, Pools(2, 4, 5), 3), split_pools(units, Pools(11, 4, 5), 3)
    assert small.test == large.test and small.labelled == large.labelled


def test_too_few_subjects_is_an_error():
    with pytest.raises(ValueError, match="need 7 subjects"):
        split_pools(["a", "b", "c"], Pools(3, 2, 2), 0)


@pytest.mark.parametrize("seed", range(5))
def test_label_fractions_are_nested_per_seed(seed):
    labelled = [f"S{i:03d}" for i in range(40)]
    subsets = label_subsets(labelled, [0.05, 0.2, 1.0], seed)
    assert [len(subsets[f]) for f in (0.05, 0.2, 1.0)] == [2, 8, 40]
    assert set(subsets[0.05]) < set(subsets[0.2]) < set(subsets[1.0]) == set(labelled)


def test_a_fraction_has_at_least_one_subject():
    assert fraction_size(3, 0.05) == 1 and fraction_size(20, 0.05) == 1 and fraction_size(20, 0.2) == 4
    assert fraction_size(10, 1.0) == 10
    with pytest.raises(ValueError):
        fraction_size(10, 0.0)


def test_manifests_hold_each_pool_and_the_test_subjects_as_val(tmp_path):
    rows = [{"path": str(tmp_path / f"clip_{s}_{k}.mp4"), "format": "mp4", "n_frames": 8, "fps": 25.0, "height": 8,
             "width": 8, "channels": 1, "spacing_row_mm": None, "spacing_col_mm": None, "has_audio": False,
             "status": "ok", "error": "", "subject": f"S{s:03d}"} for s in range(12) for k in range(2)]
    manifest = write_manifest(pd.DataFrame(rows), tmp_path / "manifest.csv")
    data = write_manifests(manifest, Pools(4, 5, 3), sim_seed=1, seeds=[0, 1], fractions=[0.2, 1.0])
    pretrain = read_manifest(data.pretrain_manifest)
    assert set(pretrain.loc[pretrain.split == "train", "subject"]) == set(data.pools.pretrain)
    assert set(pretrain.loc[pretrain.split == "val", "subject"]) == set(data.pools.labelled)
    assert not set(pretrain.subject) & set(data.pools.test)
    for seed in (0, 1):
        for fraction in (0.2, 1.0):
            [path] = data.labelled[seed][fraction]
            table = read_manifest(path)
            assert set(table.loc[table.split == "train", "subject"]) == set(data.subsets[seed][fraction][0])
            assert set(table.loc[table.split == "val", "subject"]) == set(data.pools.test)
            assert not set(table.subject) & set(data.pools.pretrain)
    assert "label_draws" not in data.record()


@pytest.mark.parametrize("seed", range(3))
def test_label_draws_are_nested_and_draw_0_does_not_depend_on_the_draws(seed):
    labelled = [f"S{i:03d}" for i in range(30)]
    draws = [label_subsets(labelled, [0.2, 0.5, 1.0], seed, sim_seed=4, draw=d) for d in range(4)]
    assert draws[0] == label_subsets(labelled, [0.2, 0.5, 1.0], seed, sim_seed=4)
    for subsets in draws:
        assert [len(subsets[f]) for f in (0.2, 0.5, 1.0)] == [6, 15, 30]
        assert set(subsets[0.2]) < set(subsets[0.5]) < set(subsets[1.0]) == set(labelled)
    # C(30, 6) subsets: four draws that coincide would be a stream that ignores the draw
    assert len({tuple(d[0.2]) for d in draws}) == 4
    with pytest.raises(ValueError, match="numbered from 0"):
        label_subsets(labelled, [0.2], seed, draw=-1)


def test_a_fraction_of_every_subject_has_one_draw():
    assert draws_of(30, 0.2, 3) == 3 and draws_of(30, 1.0, 3) == 1 and draws_of(2, 0.5, 2) == 2
    assert draws_of(1, 0.5, 4) == 1  # one subject: every fraction takes it
    with pytest.raises(ValueError, match=">= 1"):
        draws_of(30, 0.2, 0)


def test_each_label_draw_gets_its_own_manifest(tmp_path):
    rows = [{"path": str(tmp_path / f"clip_{s}_{k}.mp4"), "format": "mp4", "n_frames": 8, "fps": 25.0, "height": 8,
             "width": 8, "channels": 1, "spacing_row_mm": None, "spacing_col_mm": None, "has_audio": False,
             "status": "ok", "error": "", "subject": f"S{s:03d}"} for s in range(30) for k in range(2)]
    manifest = write_manifest(pd.DataFrame(rows), tmp_path / "manifest.csv")
    data = write_manifests(manifest, Pools(4, 20, 6), sim_seed=2, seeds=[0, 1], fractions=[0.2, 1.0], draws=3)
    for seed in (0, 1):
        assert len(data.labelled[seed][0.2]) == 3 and len(data.labelled[seed][1.0]) == 1
        assert data.labelled[seed][0.2][0].name == f"labelled_20pct_seed{seed}.csv"
        assert data.labelled[seed][0.2][2].name == f"labelled_20pct_seed{seed}_draw2.csv"
        for path, chosen in zip(data.labelled[seed][0.2], data.subsets[seed][0.2]):
            table = read_manifest(path)
            assert set(table.loc[table.split == "train", "subject"]) == set(chosen) and len(chosen) == 4
            assert set(table.loc[table.split == "val", "subject"]) == set(data.pools.test)
    assert data.draws(0.2, 3) == 3 and data.draws(0.2, 2) == 2 and data.draws(0.2, 5) == 3
    assert data.draws(1.0, 3) == 1
    record = data.record()
    assert record["label_subsets"]["1"]["20%"] == data.subsets[1][0.2][0]
    assert record["label_draws"]["1"]["20%"] == data.subsets[1][0.2]
