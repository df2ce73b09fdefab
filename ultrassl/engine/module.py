"""What every Lightning module of this package shares, pretraining and downstream alike.

:class:`EncoderModule` holds the encoder as ``self.backbone`` (clips ``(B, C, T, H, W)`` in;
frame backbones wrapped in :class:`~ultrassl.models.backbones.FrameEncoder`), logs scalars
under their stage, and configures the optimiser and schedule of :mod:`ultrassl.engine.optim`
from :meth:`EncoderModule.parameter_groups` and the hyperparameters ``lr``, ``scheduler``,
``min_lr``, ``warmup_steps`` / ``warmup_epochs`` and, where a module has them, ``optimizer``
(default AdamW) and ``momentum``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import lightning as L
import torch

from ultrassl.engine.optim import check_scheduler, make_optimizer, warmup_cosine_schedule
from ultrassl.models.backbones import Backbone, FrameEncoder


class EncoderModule(L.LightningModule):
    """An encoder, its logging and its optimiser; subclasses build ``self.backbone`` and say
    which parameters learn at which rate (:meth:`parameter_groups`)."""

    backbone: Backbone

    @property
    def frame_wise(self) -> bool:
        """True when the backbone encodes frames one by one (per-frame features exist)."""
        return isinstance(self.backbone, FrameEncoder)

    # ----------------------------------------------------------------- logging
    def log_scalars(self, values: Mapping[str, Any], stage: str, batch_size: int | None) -> None:
        """Log the scalars among ``values`` as ``"{stage}/{name}"``: per step and per epoch in
        training, per epoch otherwise, averaged across processes; the loss also on the
        progress bar. Entries that are not scalars are left out."""
        options = dict(on_step=stage == "train", on_epoch=True, sync_dist=True, batch_size=batch_size)
        for name, value in values.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.detach()
            elif not isinstance(value, (int, float)):
                continue
            self.log(f"{stage}/{name}", value, prog_bar=name == "loss", **options)

    # ----------------------------------------------------------------- optimisation
    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimiser's parameter groups (:func:`~ultrassl.engine.optim.decay_groups`)."""
        raise NotImplementedError

    def warmup_steps(self) -> int:
        """Warm-up length in optimiser steps: ``warmup_steps``, else ``warmup_epochs``
        converted with the training loader's length, else 0."""
        hp = self.hparams
        if hp.get("warmup_steps") is not None:
            return int(hp.warmup_steps)
        if hp.get("warmup_epochs", 0) <= 0:
            return 0
        if self.trainer.train_dataloader is None:
            # As Trainer.estimated_stepping_batches does: the loader's length is needed now.
            self.trainer.fit_loop.setup_data()
        batches = self.trainer.num_training_batches
        if not math.isfinite(batches):
            raise ValueError("warmup_epochs needs a sized training loader; set warmup_steps instead")
        steps_per_epoch = math.ceil(batches / self.trainer.accumulate_grad_batches)
        return int(round(hp.warmup_epochs * steps_per_epoch))

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = make_optimizer(hp.get("optimizer", "adamw"), self.parameter_groups(), hp.lr, hp.get("momentum", 0.9))
        check_scheduler(hp.scheduler)
        total_steps = self.trainer.estimated_stepping_batches
        schedule = warmup_cosine_schedule(optimizer, hp.scheduler, self.warmup_steps(), total_steps, hp.lr, hp.min_lr)
        return {"optimizer": optimizer, "lr_scheduler": schedule}
