"""Checkpoints, manifests and records are replaced atomically: a write that dies half way
leaves the previous file whole and no partial file behind."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch

from ultrassl.atomic import atomic_write, write_text_atomically
from ultrassl.data.manifest import read_manifest, write_manifest
from ultrassl.engine.checkpoints import AtomicCheckpointIO


class Killed(BaseException):
    """Stands in for the process dying in the middle of a write."""


def test_a_checkpoint_save_that_dies_half_way_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 1}, path)

    real_save = torch.save

    def dies_half_way(obj, stream, *args, **kwargs):
        real_save(obj, stream, *args, **kwargs)
        stream.truncate(stream.tell() // 2)
        raise Killed()

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(Killed):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    loaded = io.load_checkpoint(path, weights_only=True)
    assert loaded["epoch"] == 1 and torch.equal(loaded["state_dict"]["w"], torch.ones(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary left


def test_fit_and_the_benchmark_arms_write_checkpoints_atomically(fetal_manifest, tmp_path):
    from ultrassl.downstream.arms import arm_trainer
    from ultrassl.engine.cli import UltrasslCLI
    from tests.engine.test_cli_fit import small_run

    cli = UltrasslCLI(args=small_run(fetal_manifest, tmp_path / "run")[1:], run=False)
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert isinstance(arm_trainer({"max_steps": 1}, tmp_path / "arm").strategy.checkpoint_io, AtomicCheckpointIO)


def test_a_manifest_write_that_dies_leaves_the_previous_manifest(tmp_path, monkeypatch):
    rows = pd.DataFrame({"path": [str(tmp_path / f"c{i}.dcm") for i in range(4)], "format": "dicom", "n_frames": 8,
                         "fps": 25.0, "height": 32, "width": 48, "channels": 1, "spacing_row_mm": None,
                         "spacing_col_mm": None, "has_audio": False, "status": "ok", "error": ""})
    path = write_manifest(rows, tmp_path / "manifest.csv")
    before = path.read_bytes()

    def dies(*args, **kwargs):
        raise Killed()

    # killed after the new rows were written to the temporary file, before it replaced the manifest
    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(Killed):
        write_manifest(rows.iloc[:2], path)
    monkeypatch.undo()
    assert path.read_bytes() == before and len(read_manifest(path)) == 4
    # no temporary file left; the integrity sidecar is gone (removed before the write), never stale
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv"]


def test_atomic_write_replaces_only_on_success(tmp_path):
    path = write_text_atomically(tmp_path / "a.txt", "one")
    with pytest.raises(Killed):
        with atomic_write(path) as stream:
            stream.write("two")
            raise Killed()
    assert path.read_text() == "one"
    write_text_atomically(path, "three")
    assert path.read_text() == "three" and len(list(tmp_path.iterdir())) == 1
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(path, "a"):
            pass
