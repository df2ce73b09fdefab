"""PretrainModule: backbone wiring, logging template, optimiser groups and the LR schedule."""

from __future__ import annotations


import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from ultrassl.engine.base import PretrainModule
from ultrassl.engine.optim import warmup_cosine_factor
from ultrassl.engine.batch import batch_size_of
from ultrassl.models.backbones import FrameEncoder
from ultrassl.transforms.base import batch_param


class FeatureNorm(PretrainModule):
    """Minimal objective: shrink the features; logs one extra scalar and one non-scalar."""

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)

    def objective_step(self, batch, stage):
        features = self.encode(batch["clip"])
        loss = self.hparams.scale * features.pow(2).mean()
        return {"loss": loss, "feature_std": features.std(), "features": features}


def _loader(n: int = 20, batch_size: int = 4) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    samples = [{"clip": torch.rand(1, 4, 16, 16, generator=generator)} for _ in range(n)]
    return DataLoader(samples, batch_size=batch_size, collate_fn=default_collate)


def _trainer(max_steps: int, callbacks=()) -> L.Trainer:
    return L.Trainer(
        max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks),
    )


class _RecordLR(L.Callback):
    def __init__(self):
        self.lrs: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_warmup_cosine_factor_analytic_values():
    assert warmup_cosine_factor(0, 3, 13) == pytest.approx(0.25)
    assert warmup_cosine_factor(2, 3, 13) == pytest.approx(0.75)
    assert warmup_cosine_factor(3, 3, 13) == pytest.approx(1.0)
    assert warmup_cosine_factor(8, 3, 13) == pytest.approx(0.5)  # half-way through the cosine
    assert warmup_cosine_factor(13, 3, 13, min_factor=0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(99, 3, 13, min_factor=0.1) == pytest.approx(0.1)


def test_hparams_hold_subclass_and_base_arguments():
    model = FeatureNorm(scale=2.0, backbone="tiny3d", lr=0.5)
    assert model.hparams.scale == 2.0 and model.hparams.lr == 0.5 and model.hparams.backbone == "tiny3d"
    assert model.hparams.optimizer == "adamw"  # a base default, recorded too
    rebuilt = FeatureNorm(**model.hparams)
    assert rebuilt.hparams == model.hparams


def test_frame_backbones_are_wrapped_to_take_clips():
    model = FeatureNorm(backbone="sononet16").eval()
    assert isinstance(model.backbone, FrameEncoder) and model.frame_wise
    clip = torch.rand(2, 1, 4, 32, 32)
    assert model.encode(clip).shape == (2, 64)
    assert model.encode_frames(clip).shape == (2, 4, 64)
    clip_model = FeatureNorm(backbone="tiny3d")
    assert not clip_model.frame_wise
    with pytest.raises(TypeError, match="frame backbone"):
        clip_model.encode_frames(clip)


def test_training_logs_every_scalar_under_its_stage():
    model = FeatureNorm()
    trainer = _trainer(max_steps=3)  # one full epoch of 3 batches, then validation
    trainer.fit(model, _loader(12), val_dataloaders=_loader(10))
    logged = trainer.callback_metrics
    assert {"train/loss_epoch", "train/feature_std_epoch", "val/loss", "val/feature_std"} <= set(logged)
    assert "val/features" not in logged and "train/features_epoch" not in logged  # not a scalar
    # The epoch value is the sample-weighted mean over batches of 4, 4 and 2 clips.
    model.eval()
    with torch.no_grad():
        losses = [(model.objective_step(b, "val")["loss"], len(b["clip"])) for b in _loader(10)]
    expected = sum(loss * n for loss, n in losses) / 10
    assert logged["val/loss"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_weight_decay_spares_biases_and_norms():
    model = FeatureNorm(weight_decay=0.3, optimizer="sgd", momentum=0.8, scheduler="constant")
    trainer = _trainer(max_steps=1)
    trainer.fit(model, _loader(4))
    optimizer = trainer.optimizers[0]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.8
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.3 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_cosine_schedule_with_warmup_steps():
    recorder = _RecordLR()
    model = FeatureNorm(lr=0.1, min_lr=0.01, warmup_steps=2, scheduler="cosine")
    _trainer(max_steps=10, callbacks=[recorder]).fit(model, _loader())
    expected = [0.1 * warmup_cosine_factor(s, 2, 10, min_factor=0.1) for s in range(10)]
    assert recorder.lrs == pytest.approx(expected)
    assert recorder.lrs[2] == pytest.approx(0.1)


def test_warmup_epochs_are_converted_with_the_loader_length():
    recorder = _RecordLR()
    # 5 batches per epoch: 0.4 epochs = 2 warm-up steps, then constant.
    model = FeatureNorm(lr=0.2, warmup_epochs=0.4, scheduler="constant")
    _trainer(max_steps=5, callbacks=[recorder]).fit(model, _loader(20, batch_size=4))
    assert recorder.lrs == pytest.approx([0.2 / 3, 0.4 / 3, 0.2, 0.2, 0.2])


def test_batch_param_reads_collated_records():
    samples = [
        {"clip": torch.zeros(1), "clip_params": {"affine": {"normalised": [0.1 * i, -0.1 * i], "class_index": i}}}
        for i in range(3)
    ]
    batch = default_collate(samples)
    normalised = batch_param(batch, "clip", "affine", "normalised")
    torch.testing.assert_close(normalised, torch.tensor([[0.0, 0.0], [0.1, -0.1], [0.2, -0.2]], dtype=normalised.dtype))
    assert batch_param(batch, "clip", "affine", "class_index").tolist() == [0, 1, 2]
    with pytest.raises(KeyError, match="permutation"):
        batch_param(batch, "clip", "permutation", "index")
    assert batch_size_of(batch) == 3 and batch_size_of({"meta": "x"}) is None
