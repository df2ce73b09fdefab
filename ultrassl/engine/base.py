"""The Lightning module every self-supervised objective builds on.

:class:`PretrainModule` owns the backbone, the optimiser and learning-rate schedule, and the
logging (the parts shared with the downstream models live in :mod:`ultrassl.engine.module`
and :mod:`ultrassl.engine.optim`). An objective subclasses it, adds its heads in
``__init__`` (passing the base's arguments on through ``**kwargs``) and implements
:meth:`PretrainModule.objective_step`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from ultrassl.engine.batch import batch_size_of
from ultrassl.engine.module import EncoderModule
from ultrassl.engine.optim import decay_groups
from ultrassl.models.backbones import Backbone, FrameEncoder, create_backbone


class PretrainModule(EncoderModule):
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
        self.log_scalars({"loss": outputs["loss"], **outputs}, stage, batch_size_of(batch))

    # ----------------------------------------------------------------- optimisation
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Every trainable parameter at ``lr``: weights decayed, biases and norms not."""
        return decay_groups(self.parameters(), self.hparams.weight_decay)
