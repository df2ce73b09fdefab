"""The Lightning module every downstream task builds on: a transferred (or fresh) encoder.

:class:`DownstreamModule` takes its encoder from an encoder spec
(:mod:`ultrassl.models.encoders`): :class:`~ultrassl.models.encoders.PretrainedEncoder`
loads a pretraining checkpoint's, :class:`~ultrassl.models.encoders.RandomEncoder` builds
an architecture with fresh weights (the baseline every transfer result stands beside, which
opens no file). It trains under one of the protocols of :mod:`ultrassl.downstream.protocols`:

* ``"linear"``: the encoder is frozen and only the task head learns; a linear classifier
  head is solved by default to convergence on the frozen features when fitting starts
  (``linear_solver="lbfgs"``) instead of being trained for ``max_steps`` SGD steps;
* ``"finetune"``: everything learns, the encoder at ``lr * backbone_lr_scale``.

The data pipeline the model was trained with is one of its hyperparameters (``pipeline``,
saved in its checkpoints), so that :class:`~ultrassl.downstream.inference.LoopPredictor`
prepares new clips as in training.

Frame-level tasks (plane detection, saliency) follow one rule for both kinds of backbone
(:meth:`DownstreamModule.frame_feature_map`): the frame to predict is the centre one,
position ``T // 2``, of the input clip ``(B, C, T, H, W)``. A frame backbone (SonoNet) sees
that frame alone (its pipeline gives T = 1); a clip backbone (3D CNN) sees the whole short
clip around it and its feature map is averaged over time.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from ultrassl.data.pipeline import Pipeline
from ultrassl.downstream.linear_probe import ProbeFit
from ultrassl.downstream.protocols import make_protocol
from ultrassl.downstream.protocols.linear import LinearProbe
from ultrassl.engine.module import EncoderModule
from ultrassl.engine.optim import check_scheduler
from ultrassl.errors import CheckpointError
from ultrassl.models.checkpoint import class_from_checkpoint, read_checkpoint
from ultrassl.models.encoders import EncoderSpec, RandomEncoder, encoder_from_arguments, encoder_from_config
from ultrassl.plain import plain

Protocol = Literal["linear", "finetune"]
Init = Literal["pretrained", "random"]
#: the shorthand arguments that name an encoder (see :func:`~ultrassl.models.encoders.encoder_from_arguments`)
SHORTHAND = ("checkpoint", "init", "init_seed")


class DownstreamModule(EncoderModule):
    """Encoder + task head, trained by a linear probe or a fine-tune.

    Args:
        encoder: where the encoder comes from (an :class:`~ultrassl.models.encoders.EncoderSpec`
            or its ``{"class_path", "init_args"}`` config). Without it, the shorthand below.
        pipeline: the data pipeline the model is trained with (``ultrassl fit`` gives it the
            data module's); saved with the model. Its ``in_channels`` must be the encoder's.
        checkpoint, init, init_seed: shorthand for the encoder: a pretraining checkpoint and
            ``init="pretrained"`` (its weights) or ``"random"`` (its architecture, fresh
            weights seeded by ``init_seed``); without a checkpoint, ``init="random"`` builds
            ``backbone``.
        backbone, backbone_kwargs: the architecture of a random encoder without a checkpoint;
            with one, a ``backbone`` naming another architecture is an error.
        in_channels: channels of the input clips (``ultrassl fit`` gives the pipeline's);
            must be the encoder's; None: the encoder's.
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
            features (LP-FT, Kumar et al., ICLR 2022).
        freeze_encoder_norm: fine-tune with the encoder's BatchNorm layers in evaluation mode
            (their statistics fixed, their affine parameters still learning).
    """

    #: whether the task's head is a linear classifier that ``linear_solver="lbfgs"`` can solve
    has_linear_probe: bool = False

    def __init__(
        self,
        encoder: EncoderSpec | None = None,
        pipeline: Pipeline | None = None,
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
        check_scheduler(scheduler)
        self.protocol = make_protocol(protocol, linear_solver=linear_solver, probe_passes=probe_passes,
                                      probe_l2=probe_l2, probe_max_iter=probe_max_iter, weight_decay=weight_decay,
                                      backbone_lr_scale=backbone_lr_scale, head_init=head_init,
                                      freeze_encoder_norm=freeze_encoder_norm)
        if linear_solver not in ("lbfgs", "sgd"):
            raise ValueError(f"linear_solver must be 'lbfgs' or 'sgd', got {linear_solver!r}")
        if head_init not in ("random", "probe"):
            raise ValueError(f"head_init must be 'random' or 'probe', got {head_init!r}")
        if encoder is None:
            encoder = encoder_from_arguments(checkpoint, init, backbone, backbone_kwargs, in_channels, init_seed)
        elif checkpoint is not None or init != "pretrained" or init_seed is not None:
            raise ValueError("give the encoder either as encoder or by checkpoint/init/init_seed, not both")
        encoder = encoder_from_config(encoder)
        self.backbone, self.pretrained_info = encoder.build()
        spec = self.pretrained_info.spec
        if backbone is not None and backbone != spec.name:
            raise ValueError(f"backbone={backbone!r} but the encoder is a {spec.name!r}")
        if in_channels is not None and int(in_channels) != spec.in_channels:
            raise ValueError(f"the encoder takes {spec.in_channels}-channel clips but in_channels={in_channels} "
                             f"(the data pipeline's): set the pipeline's in_channels to {spec.in_channels}")
        self.pipeline, pipeline_config = _pipeline_and_config(pipeline, self.hparams.get("pipeline"))
        if self.pipeline is not None and getattr(self.pipeline, "in_channels", spec.in_channels) != spec.in_channels:
            raise ValueError(f"the encoder takes {spec.in_channels}-channel clips but the pipeline gives "
                             f"{self.pipeline.in_channels}: set its in_channels to {spec.in_channels}")
        # Hyperparameters that rebuild this module: the encoder as a spec, the resolved
        # architecture (so that load_pretrained_backbone can transfer this model's encoder
        # again) and the pipeline, all plain values; the shorthand has been read.
        hparams = {k: v for k, v in self.hparams.items() if k not in SHORTHAND}
        hparams.update(encoder=encoder.config(), pipeline=pipeline_config, backbone=spec.name,
                       backbone_kwargs=dict(spec.kwargs), in_channels=spec.in_channels)
        self.save_hyperparameters(hparams)
        self.frozen = self.protocol.frozen
        self.probe_fit: ProbeFit | None = None
        self.protocol.attach(self)

    # ----------------------------------------------------------------- encoder
    @property
    def num_features(self) -> int:
        return self.backbone.num_features

    def train(self, mode: bool = True) -> DownstreamModule:
        super().train(mode)
        if mode:
            self._fix_encoder_modes()
        return self

    def _fix_encoder_modes(self) -> None:
        self.protocol.fix_modes(self)

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
        return protocol == "linear" and LinearProbe.solves(cls, linear_solver)

    @property
    def solves_probe(self) -> bool:
        """Whether fitting solves a linear probe with L-BFGS instead of training by SGD."""
        return self.protocol.solves_probe(self)

    @property
    def starts_from_probe(self) -> bool:
        """Whether a fine-tune's head starts from a solved probe (LP-FT)."""
        return self.protocol.starts_from_probe(self)

    def probe_features(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``(N, F)`` the probe head reads and their targets ``(N,)`` (-1: unlabelled)."""
        raise NotImplementedError(f"{type(self).__name__} has no linear probe")

    def probe_class_weight(self) -> torch.Tensor | None:
        """Cross-entropy class weights ``(K,)`` of the probe, or None."""
        return None

    def on_train_start(self) -> None:
        fit = self.protocol.on_train_start(self)
        if fit is not None:
            self.probe_fit = fit

    # ----------------------------------------------------------------- checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # the task's class, so that load_task_model can rebuild it without the pretraining file
        checkpoint["task_class"] = f"{type(self).__module__}.{type(self).__qualname__}"

    # ----------------------------------------------------------------- optimisation
    def head_parameters(self) -> list[nn.Parameter]:
        """Trainable parameters outside the encoder."""
        encoder = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if id(p) not in encoder and p.requires_grad]

    def parameter_groups(self) -> list[dict[str, Any]]:
        return self.protocol.parameter_groups(self, self.hparams.lr)


def pipeline_from_config(config: Mapping[str, Any], source: str | os.PathLike | None = None) -> Pipeline:
    """The pipeline a ``{"class_path", "init_args"}`` config names (as saved with a model).

    Raises:
        CheckpointError: the class path names no pipeline of this package.
    """
    if not isinstance(config, Mapping) or "class_path" not in config:
        raise CheckpointError(f"a pipeline is {{'class_path': ..., 'init_args': ...}}, got {config!r}", source)
    pipeline_class = class_from_checkpoint(config["class_path"], Pipeline, "clip pipeline", source)
    return pipeline_class(**dict(config.get("init_args") or {}))


def _pipeline_and_config(pipeline: Any, saved: Any) -> tuple[Pipeline | None, dict[str, Any] | None]:
    """The pipeline object and the plain config that rebuilds it. LightningCLI builds the
    object and hands ``save_hyperparameters`` the config it came from (``saved``); a config
    given directly is built here."""
    if pipeline is None:
        return None, None
    if isinstance(pipeline, Mapping):
        return pipeline_from_config(pipeline), plain(pipeline)
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"pipeline must be a Pipeline or its config, got {type(pipeline).__name__}")
    if not isinstance(saved, Mapping):
        raise TypeError("give the pipeline as its config ({'class_path': ..., 'init_args': {...}}), so that it is "
                        "saved with the model")
    return pipeline, plain(saved)


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
    from ultrassl.downstream.tasks import TASKS  # here: the registry imports this module

    registered = {f"{task.model_class.__module__}.{task.model_class.__qualname__}" for task in TASKS.values()}
    task_class = class_from_checkpoint(class_path, DownstreamModule, "downstream task", path, trusted=registered)
    hparams = {k: v for k, v in hparams.items() if not k.startswith("_")}  # LightningCLI's "_class_path"
    for key in (*SHORTHAND, "encoder"):  # what the encoder started from: every weight is in the file
        hparams.pop(key, None)
    hparams["encoder"] = RandomEncoder(hparams["backbone"], hparams.get("backbone_kwargs"), hparams.get("in_channels", 1),
                                       seed=0)
    if hparams.get("pipeline") is None and isinstance(checkpoint.get("pipeline"), Mapping):
        hparams["pipeline"] = checkpoint["pipeline"]  # where versions before the pipeline hyperparameter kept it
    model = task_class(**hparams)
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"weights do not fit {task_class.__name__}: {' '.join(str(exc).split())[:300]}", path) from exc
    return model.to(map_location).eval()


def load_task_pipeline(path: str | os.PathLike) -> Pipeline:
    """The data pipeline a downstream model was trained with, from its checkpoint (plain
    values: the pipeline's class path and arguments), for preparing new clips as in training.

    Raises:
        CheckpointError: the checkpoint records no pipeline of this package.
    """
    checkpoint = read_checkpoint(path)
    spec = (checkpoint.get("hyper_parameters") or {}).get("pipeline") or checkpoint.get("pipeline")
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        raise CheckpointError("the checkpoint records no data pipeline (saved by an older version or by hand)", path)
    return pipeline_from_config(spec, path)
