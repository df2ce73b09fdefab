"""Where a downstream model's encoder comes from: a pretraining checkpoint, or fresh weights.

An encoder spec is a small typed object, selected in YAML by ``class_path`` like every other
part (``model.init_args.encoder``), that builds the encoder when the model is built::

    encoder:
      class_path: ultrassl.models.encoders.PretrainedEncoder
      init_args: {checkpoint: runs/order_geometry/.../last.ckpt}

    encoder:
      class_path: ultrassl.models.encoders.RandomEncoder
      init_args: {backbone: tiny3d, backbone_kwargs: {channels: [16, 32, 64]}, in_channels: 1, seed: 0}

:meth:`EncoderSpec.build` returns the backbone and a :class:`PretrainedInfo`;
:meth:`EncoderSpec.describe` says what it would build (architecture, input channels,
whether it encodes frames one by one) without building it. A :class:`RandomEncoder` never
opens a file: the random-init arm of a comparison takes the architecture the pretrained
arm's checkpoint names (:meth:`RandomEncoder.like`), read once.

The shorthand arguments of the downstream models (``checkpoint``, ``init``, ``backbone``,
``backbone_kwargs``, ``in_channels``, ``init_seed``) are turned into a spec here, by
:func:`encoder_from_arguments`, and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ultrassl.errors import CheckpointError
from ultrassl.models.backbones import Backbone, backbone_info
from ultrassl.models.checkpoint import (
    BackboneSpec,
    PretrainedInfo,
    backbone_spec,
    class_from_checkpoint,
    load_pretrained_backbone,
    objective_of,
    random_init_backbone,
    read_checkpoint,
)


class EncoderSpec:
    """How to obtain an encoder; subclasses implement :meth:`build` and :meth:`describe`."""

    def build(self) -> tuple[Backbone, PretrainedInfo]:
        """The encoder (clip input ``(B, C, T, H, W)``; frame backbones wrapped in
        :class:`~ultrassl.models.backbones.FrameEncoder`) and what was built."""
        raise NotImplementedError

    def describe(self) -> PretrainedInfo:
        """What :meth:`build` gives, without building it (``num_features`` is None)."""
        raise NotImplementedError

    def init_args(self) -> dict[str, Any]:
        """The constructor arguments, as plain values."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """``{"class_path": ..., "init_args": {...}}``: plain values that rebuild this spec
        (YAML, hyperparameters, checkpoints)."""
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}", "init_args": self.init_args()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.init_args() == self.init_args()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.init_args().items())
        return f"{type(self).__name__}({args})"


class PretrainedEncoder(EncoderSpec):
    """The encoder of a pretraining checkpoint (or of a downstream model's checkpoint, which
    stores its encoder the same way), weights loaded strictly.

    Args:
        checkpoint: the checkpoint file.
        backbone: the architecture the config expects (None: whatever the checkpoint holds);
            a checkpoint holding another is an error.
    """

    def __init__(self, checkpoint: str | os.PathLike, backbone: str | None = None):
        self.checkpoint = str(checkpoint)
        self.backbone = backbone

    def init_args(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint, "backbone": self.backbone}

    def _check(self, spec: BackboneSpec) -> None:
        if self.backbone is not None and self.backbone != spec.name:
            raise CheckpointError(f"the config names backbone {self.backbone!r} but the checkpoint holds "
                                  f"{spec.name!r}", self.checkpoint)

    def build(self) -> tuple[Backbone, PretrainedInfo]:
        encoder, info = load_pretrained_backbone(self.checkpoint)
        self._check(info.spec)
        return encoder, info

    def describe(self) -> PretrainedInfo:
        checkpoint = read_checkpoint(self.checkpoint)
        spec = backbone_spec(checkpoint, self.checkpoint)
        self._check(spec)
        return PretrainedInfo(checkpoint=self.checkpoint, spec=spec, objective=objective_of(checkpoint),
                              frame_wise=_frame_wise(spec.name), num_features=None,
                              global_step=checkpoint.get("global_step"))


class RandomEncoder(EncoderSpec):
    """A registered backbone with fresh weights: the baseline every transfer result stands beside.

    Args:
        backbone: registry name (:func:`ultrassl.models.backbones.list_backbones`).
        backbone_kwargs: its options.
        in_channels: channels of the input clips.
        seed: seeds the initialisation without touching the global generator (None: the
            global generator draws them).
    """

    def __init__(self, backbone: str = "tiny3d", backbone_kwargs: dict[str, Any] | None = None, in_channels: int = 1,
                 seed: int | None = None):
        self.spec = BackboneSpec(str(backbone), dict(backbone_kwargs or {}), int(in_channels))
        self.seed = None if seed is None else int(seed)

    @classmethod
    def like(cls, architecture: BackboneSpec | PretrainedInfo, seed: int | None = None) -> RandomEncoder:
        """The same architecture as a checkpoint's (its :class:`BackboneSpec` or the
        :class:`PretrainedInfo` that describes it), freshly initialised."""
        spec = architecture.spec if isinstance(architecture, PretrainedInfo) else architecture
        return cls(spec.name, dict(spec.kwargs), spec.in_channels, seed)

    def init_args(self) -> dict[str, Any]:
        return {"backbone": self.spec.name, "backbone_kwargs": dict(self.spec.kwargs),
                "in_channels": self.spec.in_channels, "seed": self.seed}

    def build(self) -> tuple[Backbone, PretrainedInfo]:
        return random_init_backbone(self.spec, seed=self.seed)

    def describe(self) -> PretrainedInfo:
        return PretrainedInfo(checkpoint=None, spec=self.spec, objective=None, frame_wise=_frame_wise(self.spec.name),
                              num_features=None)


def _frame_wise(name: str) -> bool:
    return backbone_info(name).input_kind == "frame"


def encoder_from_config(config: EncoderSpec | Mapping[str, Any], source: str | os.PathLike | None = None) -> EncoderSpec:
    """A spec from its :meth:`EncoderSpec.config` (as saved in hyperparameters), or the spec itself.

    Raises:
        CheckpointError: the class path names no encoder spec of this package.
    """
    if isinstance(config, EncoderSpec):
        return config
    if not isinstance(config, Mapping) or "class_path" not in config:
        raise CheckpointError(f"an encoder spec is {{'class_path': ..., 'init_args': ...}}, got {config!r}", source)
    spec_class = class_from_checkpoint(config["class_path"], EncoderSpec, "encoder spec", source)
    return spec_class(**dict(config.get("init_args") or {}))


def encoder_from_arguments(
    checkpoint: str | os.PathLike | None = None,
    init: str = "pretrained",
    backbone: str | None = None,
    backbone_kwargs: dict[str, Any] | None = None,
    in_channels: int | None = None,
    init_seed: int | None = None,
) -> EncoderSpec:
    """The spec the shorthand arguments of a downstream model mean.

    * ``checkpoint`` + ``init="pretrained"``: :class:`PretrainedEncoder` (``backbone``, when
      given, must be the checkpoint's);
    * ``checkpoint`` + ``init="random"``: :class:`RandomEncoder` of the checkpoint's
      architecture (the checkpoint's hyperparameters are read; its weights are not used);
    * no checkpoint, ``init="random"``: :class:`RandomEncoder` of ``backbone``,
      ``backbone_kwargs`` and ``in_channels`` (default 1);

    with ``init_seed`` as the random encoder's seed.

    Raises:
        ValueError: ``init`` is neither, or the arguments do not name an encoder.
    """
    if init not in ("pretrained", "random"):
        raise ValueError(f"init must be 'pretrained' or 'random', got {init!r}")
    if checkpoint is not None:
        pretrained = PretrainedEncoder(checkpoint, backbone)
        return pretrained if init == "pretrained" else RandomEncoder.like(pretrained.describe(), seed=init_seed)
    if init == "pretrained":
        raise ValueError("init='pretrained' needs a checkpoint")
    if backbone is None:
        raise ValueError("a random initialisation without a checkpoint needs a backbone name")
    return RandomEncoder(backbone, backbone_kwargs, 1 if in_channels is None else int(in_channels), init_seed)
