"""Loading a pretraining checkpoint's backbone, and the random-init twin of it."""

from __future__ import annotations

import pytest
import torch

from ultrassl.errors import CheckpointError
from ultrassl.models.backbones import FrameEncoder, Tiny3D
from ultrassl.models.checkpoint import BackboneSpec, load_pretrained_backbone, objective_of, random_init_backbone
from ultrassl.models.encoders import PretrainedEncoder, RandomEncoder, encoder_from_arguments


@pytest.mark.parametrize("backbone", ["tiny3d", "sononet16"])
def test_backbone_weights_equal_the_checkpoint_state_dict(checkpoint_factory, backbone):
    path = checkpoint_factory("order_geometry", backbone)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    encoder, info = load_pretrained_backbone(path)
    state = encoder.state_dict()
    prefix = "backbone."
    expected = {k[len(prefix):]: v for k, v in raw["state_dict"].items() if k.startswith(prefix)}
    assert set(state) == set(expected) and info.num_tensors == len(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    if backbone == "sononet16":
        assert isinstance(encoder, FrameEncoder) and info.frame_wise
        assert any(k.startswith("frame_backbone.") for k in state)
        assert info.spec == BackboneSpec("sononet16", {}, 1) and info.num_features == 64
    else:
        assert isinstance(encoder, Tiny3D) and not info.frame_wise
    assert info.global_step == 2
    # the pretrained encoder computes what the pretraining module's encoder computed
    clip = torch.rand(2, 1, 4, 32, 32)
    assert encoder.eval()(clip).shape == (2, info.num_features)


def test_random_init_rebuilds_the_architecture_with_fresh_seeded_weights(checkpoint_factory):
    encoder, info = load_pretrained_backbone(checkpoint_factory("order_geometry", "tiny3d"))
    fresh, fresh_info = random_init_backbone(info, seed=3)
    again, _ = random_init_backbone(info.spec, seed=3)
    assert fresh_info.checkpoint is None and fresh_info.spec == info.spec
    assert set(fresh.state_dict()) == set(encoder.state_dict())
    weight = "layers.0.conv.weight"
    assert not torch.equal(fresh.state_dict()[weight], encoder.state_dict()[weight])
    assert torch.equal(fresh.state_dict()[weight], again.state_dict()[weight])


def test_build_encoder_rules(checkpoint_factory):
    path = checkpoint_factory("order_geometry", "tiny3d")
    with pytest.raises(ValueError, match="needs a checkpoint"):
        encoder_from_arguments(None, "pretrained")
    with pytest.raises(CheckpointError, match="sononet16"):
        encoder_from_arguments(str(path), "pretrained", backbone="sononet16").build()
    encoder, info = encoder_from_arguments(None, "random", backbone="tiny3d", backbone_kwargs={"channels": [2, 2, 2]}).build()
    assert info.num_features == 2


def test_the_shorthand_means_one_spec_and_a_random_spec_opens_no_file(checkpoint_factory, tmp_path):
    path = checkpoint_factory("order_geometry", "sononet16")
    assert encoder_from_arguments(str(path)) == PretrainedEncoder(str(path))
    described = PretrainedEncoder(str(path)).describe()
    assert described.spec == BackboneSpec("sononet16", {}, 1) and described.frame_wise and described.global_step == 2
    twin = encoder_from_arguments(str(path), "random", init_seed=4)
    assert twin == RandomEncoder("sononet16", {}, 1, seed=4) == RandomEncoder.like(described, seed=4)
    # the spec's config rebuilds it; building it needs no checkpoint
    rebuilt = type(twin)(**twin.config()["init_args"])
    assert rebuilt == twin and twin.config()["class_path"] == "ultrassl.models.encoders.RandomEncoder"
    encoder, info = twin.build()
    again, _ = RandomEncoder.like(described, seed=4).build()
    assert info.checkpoint is None and isinstance(encoder, FrameEncoder)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in encoder.state_dict().items())


def test_unusable_checkpoints_raise_checkpoint_errors_naming_the_file(tmp_path):
    missing = tmp_path / "missing.ckpt"
    with pytest.raises(CheckpointError, match="missing.ckpt: no such checkpoint"):
        load_pretrained_backbone(missing)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_pretrained_backbone(garbage)
    no_hparams = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, no_hparams)
    with pytest.raises(CheckpointError, match="'backbone'"):
        load_pretrained_backbone(no_hparams)
    mismatch = tmp_path / "mismatch.ckpt"
    torch.save({"hyper_parameters": {"backbone": "tiny3d", "in_channels": 1},
                "state_dict": {"backbone.layers.0.conv.weight": torch.zeros(3)}}, mismatch)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_pretrained_backbone(mismatch)


def test_objective_is_read_from_the_provenance_config():
    config = "model:\n  class_path: ultrassl.objectives.cvrl.CVRL\n  init_args:\n    lr: 0.1\n"
    assert objective_of({"provenance": {"config": config}}) == "ultrassl.objectives.cvrl.CVRL"
    assert objective_of({}) is None


def test_a_class_path_from_a_checkpoint_is_checked_before_it_is_imported(tmp_path, monkeypatch):
    import sys

    from ultrassl.downstream.base import load_task_model

    # a module that would run code on import, on the path as a checkpoint's author could arrange
    (tmp_path / "payload_module.py").write_text("import pathlib\npathlib.Path(__file__).with_name('ran').touch()\n"
                                                "class Model: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "model.ckpt"
    torch.save({"task_class": "payload_module.Model", "state_dict": {}, "hyper_parameters": {"backbone": "tiny3d"}},
               path)
    with pytest.raises(CheckpointError, match="'payload_module.Model' lies outside the ultrassl package"):
        load_task_model(path)
    assert "payload_module" not in sys.modules and not (tmp_path / "ran").exists()
