"""The Lightning module every self-supervised objective builds on.

:class:`PretrainModule` owns the backbone, the optimiser and learning-rate schedule, and the
logging. An objective subclasses it, adds its heads in ``__init__`` (passing the base's
arguments on through ``**kwargs``) and implements :meth:`PretrainModule.objective_step`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from typing import Any, Literal

import lightning as L
import torch
from torch import nn

from ultrassl.engine.batch import batch_size_of
from ultrassl.models.backbones import Backbone, FrameEncoder, create_backbone


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_factor: float = 0.0) -> float:
    """Learning-rate multiplier at optimiser ``step``: linear warm-up then half a cosine.

    Rises linearly from ``1 / (warmup_steps + 1)`` to 1 over ``warmup_steps`` steps, then falls
    along a cosine from 1 to ``min_factor`` at ``total_steps`` (and stays there).
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class PretrainModule(L.LightningModule):
    """Backbone + optimiser + schedule + logging; objectives add heads and a loss.

    Frame backbones (``sononet*``) are wrapped in :class:`FrameEncoder`, so ``self.backbone``
    always takes clips ``(B, C, T, H, W)``; its frame encoder is ``self.backbone.frame_backbone``.

    Multi-GPU: run with ``Trainer(strategy="ddp", sync_batchnorm=True)``; Lightning converts
    the BatchNorm layers. Logged values are averaged across processes.

    Args:
        backbone: registry name (:func:`ultrassl.models.backbones.list_backbones`).
        backbone_kwargs: backbone-specific options passed to ``create_backbone``.
        in_channels: channels of the input clips (1: grayscale ultrasound, 3: RGB video).
        optimizer: ``"adamw"`` or ``"sgd"``.
        lr: peak learning rate (after warm-up).
        weight_decay: weight decay of the weights; biases and normalisation parameters get none.
        momentum: SGD momentum (ignored by AdamW).
        scheduler: ``"cosine"`` (decay to ``min_lr`` over the run) or ``"constant"``; both warm up.
        warmup_epochs: linear warm-up length in epochs (fractions allowed).
        warmup_steps: warm-up length in optimiser steps; overrides ``warmup_epochs`` when set.
        min_lr: learning rate at the end of the cosine.
    """

    def __init__(
        self,
        backbone: str = "tiny3d",
        backbone_kwargs: dict[str, Any] | None = None,
        in_channels: int = 1,
        optimizer: Literal["adamw", "sgd"] = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        scheduler: Literal["cosine", "constant"] = "cosine",
        warmup_epochs: float = 0.0,
        warmup_steps: int | None = None,
        min_lr: float = 0.0,
    ):
        super().__init__()
        # Collects the arguments of the subclass constructors too.
        self.save_hyperparameters()
        encoder = create_backbone(backbone, in_channels=in_channels, **(backbone_kwargs or {}))
        self.backbone: Backbone = FrameEncoder(encoder) if encoder.input_kind == "frame" else encoder

    # ----------------------------------------------------------------- features
    @property
    def frame_wise(self) -> bool:
        """True when the backbone encodes frames one by one (per-frame features exist)."""
        return isinstance(self.backbone, FrameEncoder)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, F)`` of clips ``(B, C, T, H, W)`` (frame backbones: mean over T)."""
        return self.backbone.forward_features(x)

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features ``(B, T, F)`` of clips ``(B, C, T, H, W)``; frame backbones only."""
        if not isinstance(self.backbone, FrameEncoder):
            raise TypeError(
                f"backbone {self.hparams.backbone!r} encodes whole clips; per-frame features "
                "need a frame backbone (e.g. sononet16)"
            )
        return self.backbone.forward_frames(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)

    # ----------------------------------------------------------------- steps
    def objective_step(self, batch: Mapping[str, Any], stage: str) -> dict[str, torch.Tensor]:
        """Compute the objective on ``batch``.

        Returns a dict with the scalar ``"loss"`` to minimise and any other scalars to log
        (logged as ``"{stage}/{name}"``); ``stage`` is ``"train"``, ``"val"`` or ``"test"``.
        """
        raise NotImplementedError

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        outputs = self.objective_step(batch, stage="train")
        self._log_scalars(outputs, "train", batch)
        return outputs["loss"]

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        outputs = self.objective_step(batch, stage="val")
        self._log_scalars(outputs, "val", batch)
        return outputs["loss"]

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        outputs = self.objective_step(batch, stage="test")
        self._log_scalars(outputs, "test", batch)
        return outputs["loss"]

    def _log_scalars(self, outputs: Mapping[str, Any], stage: str, batch: Any) -> None:
        if "loss" not in outputs:
            raise KeyError(f"{type(self).__name__}.objective_step must return a 'loss'")
        scalars = {
            f"{stage}/{name}": value.detach() if isinstance(value, torch.Tensor) else value
            for name, value in outputs.items()
            if isinstance(value, (int, float)) or (isinstance(value, torch.Tensor) and value.numel() == 1)
        }
        options = dict(on_step=stage == "train", on_epoch=True, sync_dist=True, batch_size=batch_size_of(batch))
        self.log(f"{stage}/loss", scalars.pop(f"{stage}/loss"), prog_bar=True, **options)
        self.log_dict(scalars, **options)

    # ----------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = _decay_groups(self, hp.weight_decay)
        if hp.optimizer == "adamw":
            optimizer = torch.optim.AdamW(groups, lr=hp.lr)
        elif hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum)
        else:
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {hp.optimizer!r}")
        if hp.scheduler not in ("cosine", "constant"):
            raise ValueError(f"scheduler must be 'cosine' or 'constant', got {hp.scheduler!r}")

        total_steps = self.trainer.estimated_stepping_batches
        warmup = self._warmup_steps()
        if hp.scheduler == "cosine":
            if not math.isfinite(total_steps):
                raise ValueError("the cosine schedule needs a finite run: set trainer max_steps or max_epochs")
            factor = partial(warmup_cosine_factor, warmup_steps=warmup, total_steps=int(total_steps),
                             min_factor=hp.min_lr / hp.lr if hp.lr > 0 else 0.0)
        else:
            # A cosine that ends at factor 1 is constant after the warm-up.
            factor = partial(warmup_cosine_factor, warmup_steps=warmup, total_steps=warmup + 1, min_factor=1.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def _warmup_steps(self) -> int:
        hp = self.hparams
        if hp.warmup_steps is not None:
            return int(hp.warmup_steps)
        if hp.warmup_epochs <= 0:
            return 0
        if self.trainer.train_dataloader is None:
            # As Trainer.estimated_stepping_batches does: the loader's length is needed now.
            self.trainer.fit_loop.setup_data()
        batches = self.trainer.num_training_batches
        if not math.isfinite(batches):
            raise ValueError("warmup_epochs needs a sized training loader; set warmup_steps instead")
        steps_per_epoch = math.ceil(batches / self.trainer.accumulate_grad_batches)
        return int(round(hp.warmup_epochs * steps_per_epoch))


def _decay_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: weights with ``weight_decay``; biases and norm scales (1-D) without."""
    decay, no_decay = [], []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
