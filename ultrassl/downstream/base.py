"""The Lightning module every downstream task builds on: a transferred (or fresh) encoder.

:class:`DownstreamModule` takes its encoder from a pretraining checkpoint
(``init="pretrained"``) or builds the same architecture with fresh weights
(``init="random"``, the baseline every transfer result stands beside), and trains it under
one of two protocols:

* ``"linear"``: the encoder is frozen (no gradients, BatchNorm statistics fixed: it stays in
  eval mode) and only the task head learns. For the classification tasks the head is a
  linear probe, solved by default to convergence on the frozen features
  (``linear_solver="lbfgs"``, :mod:`ultrassl.downstream.linear_probe`) when fitting starts,
  instead of being trained for ``max_steps`` SGD steps (``linear_solver="sgd"``); for saliency
  the decoder trains by SGD;
* ``"finetune"``: everything learns; the encoder at ``lr * backbone_lr_scale``.

Frame-level tasks (plane detection, saliency) follow one rule for both kinds of backbone
(:meth:`DownstreamModule.frame_feature_map`): the frame to predict is the centre one,
position ``T // 2``, of the input clip ``(B, C, T, H, W)``. A frame backbone (SonoNet) sees
that frame alone (its pipeline gives T = 1); a clip backbone (3D CNN) sees the whole short
clip around it and its feature map is averaged over time.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from functools import partial
from typing import Any, Literal

import lightning as L
import torch
from torch import nn

from ultrassl.downstream.checkpoint import (
    BackboneSpec,
    CheckpointError,
    class_from_checkpoint,
    PretrainedInfo,
    load_pretrained_backbone,
    random_init_backbone,
    read_checkpoint,
)
from ultrassl.downstream.linear_probe import ProbeFit, fit_linear_probe
from ultrassl.engine.base import warmup_cosine_factor
from ultrassl.models.backbones import Backbone, FrameEncoder

Protocol = Literal["linear", "finetune"]
Init = Literal["pretrained", "random"]


class DownstreamModule(L.LightningModule):
    """Encoder + task head, trained by a linear probe or a fine-tune.

    Args:
        checkpoint: pretraining checkpoint whose encoder to transfer (and, with
            ``init="random"``, whose architecture to rebuild).
        init: ``"pretrained"`` (load the checkpoint's weights) or ``"random"`` (fresh weights).
        backbone, backbone_kwargs, in_channels: the architecture when there is no
            checkpoint (random init only); ignored when a checkpoint is given, except that
            a ``backbone`` naming another architecture is an error.
        init_seed: seed of the fresh weights (random init); None: the global generator.
        protocol: ``"linear"`` (frozen encoder) or ``"finetune"``.
        lr: learning rate of the head (peak, after warm-up).
        backbone_lr_scale: the encoder's learning rate relative to ``lr`` (fine-tune).
        weight_decay: AdamW weight decay of the weights (not of biases and norms).
        scheduler: ``"cosine"`` (to ``min_lr`` at the end of the run) or ``"constant"``.
        warmup_steps: linear warm-up in optimiser steps.
        min_lr: learning rate at the end of the cosine.
        linear_solver: how a linear probe learns (protocol ``"linear"``, tasks with
            ``has_linear_probe``): ``"lbfgs"`` solves it on the frozen features when fitting
            starts and ends the fit there; ``"sgd"`` trains it like a fine-tune's head.
        probe_passes: sweeps of the training loader whose features the L-BFGS probe sees.
        probe_l2: L2 coefficient of the L-BFGS probe's weights (standardised features).
        probe_max_iter: L-BFGS iterations at most.
        head_init: where a fine-tune's linear head starts (tasks with ``has_linear_probe``):
            ``"random"``, or ``"probe"``: the L-BFGS probe solved on the starting encoder's
            features (LP-FT, Kumar et al., ICLR 2022), so that the first steps do not send a
            random head's gradients into the encoder.
        freeze_encoder_norm: fine-tune with the encoder's BatchNorm layers in evaluation mode
            (their statistics fixed, their affine parameters still learning), as is usual
            when batches are small or, like frames of a few loops, strongly correlated.
    """

    #: whether the task's head is a linear classifier that ``linear_solver="lbfgs"`` can solve
    has_linear_probe: bool = False

    def __init__(
        self,
        checkpoint: str | None = None,
        init: Init = "pretrained",
        backbone: str | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        in_channels: int | None = None,
        init_seed: int | None = None,
        protocol: Protocol = "finetune",
        lr: float = 1e-3,
        backbone_lr_scale: float = 0.1,
        weight_decay: float = 1e-4,
        scheduler: Literal["cosine", "constant"] = "cosine",
        warmup_steps: int = 0,
        min_lr: float = 0.0,
        linear_solver: Literal["lbfgs", "sgd"] = "lbfgs",
        probe_passes: int = 4,
        probe_l2: float = 1e-3,
        probe_max_iter: int = 500,
        head_init: Literal["random", "probe"] = "random",
        freeze_encoder_norm: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        if protocol not in ("linear", "finetune"):
            raise ValueError(f"protocol must be 'linear' or 'finetune', got {protocol!r}")
        if linear_solver not in ("lbfgs", "sgd"):
            raise ValueError(f"linear_solver must be 'lbfgs' or 'sgd', got {linear_solver!r}")
        if head_init not in ("random", "probe"):
            raise ValueError(f"head_init must be 'random' or 'probe', got {head_init!r}")
        if scheduler not in ("cosine", "constant"):
            raise ValueError(f"scheduler must be 'cosine' or 'constant', got {scheduler!r}")
        self.backbone, self.pretrained_info = build_encoder(
            checkpoint, init, backbone, backbone_kwargs, in_channels, init_seed
        )
        spec = self.pretrained_info.spec
        # Resolved architecture in the hyperparameters: this module's own checkpoints can be
        # transferred again by load_pretrained_backbone.
        self.hparams.update(backbone=spec.name, backbone_kwargs=dict(spec.kwargs), in_channels=spec.in_channels)
        self.frozen = protocol == "linear"
        self.probe_fit: ProbeFit | None = None
        #: the data pipeline's ``{"class_path", "init_args"}`` (set by ``ultrassl fit`` and
        #: ``ultrassl evaluate``), saved in checkpoints for :func:`load_task_pipeline`
        self.pipeline_config: dict[str, Any] | None = None
        if self.frozen:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    # ----------------------------------------------------------------- encoder
    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    @property
    def frame_wise(self) -> bool:
        return isinstance(self.backbone, FrameEncoder)

    def train(self, mode: bool = True) -> DownstreamModule:
        super().train(mode)
        if mode:
            self._fix_encoder_modes()
        return self

    def _fix_encoder_modes(self) -> None:
        if self.frozen:
            self.backbone.eval()  # a frozen encoder keeps its BatchNorm statistics
        elif self.hparams.get("freeze_encoder_norm", False):
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Lightning restores every submodule's recorded mode around validation, bypassing train()
        self._fix_encoder_modes()

    def _encoder_context(self):
        return torch.no_grad() if self.frozen else contextlib.nullcontext()

    def frame_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map ``(B, F, h, w)`` of the centre frame of clips ``(B, C, T, H, W)``
        (frames ``(B, C, H, W)`` are clips of one frame); see the module docstring."""
        if x.ndim == 4:
            x = x[:, :, None]
        if x.ndim != 5:
            raise ValueError(f"expected clips (B, C, T, H, W) or frames (B, C, H, W), got shape {tuple(x.shape)}")
        with self._encoder_context():
            if self.frame_wise:
                return self.backbone.frame_backbone.forward_feature_map(x[:, :, x.shape[2] // 2])
            return self.backbone.forward_feature_map(x).mean(dim=2)

    def clip_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``(B, F)`` of clips ``(B, C, T, H, W)`` (frame backbones: mean over
        frames); clips ``(B, N, C, T, H, W)`` give the mean over the N clips."""
        if x.ndim == 6:
            b, n = x.shape[:2]
            return self.clip_features(x.flatten(0, 1)).reshape(b, n, -1).mean(dim=1)
        with self._encoder_context():
            return self.backbone.forward_features(x)

    # ----------------------------------------------------------------- linear probe
    @classmethod
    def probe_is_solved(cls, protocol: str, linear_solver: str = "lbfgs") -> bool:
        """Whether this task, run with ``protocol`` and ``linear_solver``, solves a linear probe
        with L-BFGS instead of training by SGD (see the class docstring)."""
        return protocol == "linear" and cls.has_linear_probe and linear_solver == "lbfgs"

    @property
    def solves_probe(self) -> bool:
        """Whether fitting solves a linear probe with L-BFGS instead of training by SGD."""
        return self.probe_is_solved(self.hparams.protocol, self.hparams.linear_solver)

    def probe_features(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(N, F)`` the probe head reads and their targets ``(N,)`` (-1: unlabelled)."""
        raise NotImplementedError(f"{type(self).__name__} has no linear probe")

    def probe_class_weight(self) -> torch.Tensor | None:
        """Cross-entropy class weights ``(K,)`` of the probe, or None."""
        return None

    @property
    def starts_from_probe(self) -> bool:
        """Whether a fine-tune's head starts from a solved probe (LP-FT)."""
        return not self.frozen and self.has_linear_probe and self.hparams.head_init == "probe"

    def on_train_start(self) -> None:
        if not (self.solves_probe or self.starts_from_probe):
            return
        if self.trainer.world_size > 1:
            # each process would solve on its own shard of the data and the copies would differ
            raise ValueError("the L-BFGS probe (linear_solver='lbfgs' or head_init='probe') is solved in one "
                             "process: train it with trainer.devices=1, or use linear_solver='sgd' and "
                             "head_init='random' under DDP")
        hp = self.hparams
        self.probe_fit = fit_linear_probe(self, self.trainer.train_dataloader, passes=hp.probe_passes,
                                          l2=hp.probe_l2, max_iter=hp.probe_max_iter)
        if self.solves_probe:
            if self.logger is not None:
                for i, loss in enumerate(self.probe_fit.losses):
                    self.logger.log_metrics({"train/probe_objective": loss}, step=i)
            # The probe is solved: no SGD step follows (the loop checks this before its first step).
            self.trainer.should_stop = True

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the task's class, so that load_task_model can rebuild it without the pretraining file,
        # and the pipeline it was trained with, so that load_task_pipeline can prepare new clips
        checkpoint["task_class"] = f"{type(self).__module__}.{type(self).__qualname__}"
        if self.pipeline_config is not None:
            checkpoint["pipeline"] = self.pipeline_config

    # ----------------------------------------------------------------- logging
    def log_scalars(self, values: dict[str, Any], stage: str, batch_size: int) -> None:
        """Log scalars as ``"{stage}/{name}"``; the loss on the progress bar."""
        options = dict(on_step=stage == "train", on_epoch=True, sync_dist=True, batch_size=batch_size)
        for name, value in values.items():
            self.log(f"{stage}/{name}", value, prog_bar=name == "loss", **options)

    # ----------------------------------------------------------------- optimisation
    def head_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters outside the encoder."""
        encoder = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder and p.requires_grad]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = _decay_groups(self.head_parameters(), hp.lr, hp.weight_decay)
        if not self.frozen:
            groups += _decay_groups(
                [p for p in self.backbone.parameters() if p.requires_grad], hp.lr * hp.backbone_lr_scale, hp.weight_decay
            )
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=hp.lr)
        total = self.trainer.estimated_stepping_batches
        if hp.scheduler == "cosine":
            if not math.isfinite(total):
                raise ValueError("the cosine schedule needs a finite run: set trainer max_steps or max_epochs")
            factor = partial(warmup_cosine_factor, warmup_steps=int(hp.warmup_steps), total_steps=int(total),
                             min_factor=hp.min_lr / hp.lr if hp.lr > 0 else 0.0)
        else:
            factor = partial(warmup_cosine_factor, warmup_steps=int(hp.warmup_steps),
                             total_steps=int(hp.warmup_steps) + 1, min_factor=1.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def build_encoder(
    checkpoint: str | None,
    init: Init,
    backbone: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    in_channels: int | None = None,
    init_seed: int | None = None,
) -> tuple[Backbone, PretrainedInfo]:
    """The encoder of a downstream task (see :class:`DownstreamModule`'s arguments)."""
    if init not in ("pretrained", "random"):
        raise ValueError(f"init must be 'pretrained' or 'random', got {init!r}")
    if checkpoint is not None:
        encoder, info = load_pretrained_backbone(checkpoint)
        if backbone is not None and backbone != info.spec.name:
            raise CheckpointError(
                f"the config names backbone {backbone!r} but the checkpoint holds {info.spec.name!r}", checkpoint
            )
        if init == "random":
            encoder, random_info = random_init_backbone(info.spec, seed=init_seed)
            random_info.objective = info.objective
            return encoder, random_info
        return encoder, info
    if init == "pretrained":
        raise ValueError("init='pretrained' needs a checkpoint")
    if backbone is None:
        raise ValueError("a random initialisation without a checkpoint needs a backbone name")
    spec = BackboneSpec(backbone, dict(backbone_kwargs or {}), 1 if in_channels is None else int(in_channels))
    return random_init_backbone(spec, seed=init_seed)


def _decay_groups(parameters: list[nn.Parameter], lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """Weights with ``weight_decay``; biases and norm scales (1-D) without."""
    decay = [p for p in parameters if p.ndim > 1]
    no_decay = [p for p in parameters if p.ndim <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay, "lr": lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": lr},
    ]


def load_task_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> DownstreamModule:
    """A trained downstream model from its checkpoint (``ultrassl evaluate``'s ``model.ckpt`` or
    ``ultrassl fit``'s), in evaluation mode.

    The architecture comes from the checkpoint's hyperparameters (the encoder's registry name,
    options and input channels are resolved there), so the pretraining checkpoint it started
    from is not needed; every weight comes from the file (read with ``weights_only=True``).

    Raises:
        CheckpointError: the file cannot be read or holds no downstream task model.
    """
    checkpoint = read_checkpoint(path)
    class_path = checkpoint.get("task_class")
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if not class_path or "state_dict" not in checkpoint or not hparams.get("backbone"):
        raise CheckpointError("not a downstream task checkpoint (no task class, weights or backbone)", path)
    task_class = class_from_checkpoint(class_path, DownstreamModule, "downstream task", path)
    hparams = {k: v for k, v in hparams.items() if not k.startswith("_")}  # LightningCLI's "_class_path"
    hparams.update(checkpoint=None, init="random", init_seed=0)
    model = task_class(**hparams)
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit {task_class.__name__}: {' '.join(str(exc).split())[:300]}", path) from exc
    return model.to(map_location).eval()


def load_task_pipeline(path: str | os.PathLike):
    """The data pipeline a downstream model was trained with, from its checkpoint (plain
    values: the pipeline's class path and arguments), for preparing new clips as in training.

    Raises:
        CheckpointError: the checkpoint records no pipeline of this package.
    """
    from ultrassl.pipelines.base import ClipPipeline

    spec = read_checkpoint(path).get("pipeline")
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise CheckpointError("the checkpoint records no data pipeline (saved by an older version or by hand)", path)
    pipeline_class = class_from_checkpoint(spec["class_path"], ClipPipeline, "clip pipeline", path)
    return pipeline_class(**dict(spec.get("init_args") or {}))
