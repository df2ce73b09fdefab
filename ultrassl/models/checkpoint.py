"""Reading checkpoints: the backbone of a pretraining checkpoint, the same architecture freshly
initialised, and the one resolver of the class paths checkpoints name.

Every pretraining objective is a :class:`~ultrassl.engine.base.PretrainModule`, so every
Lightning checkpoint it writes holds:

* ``hyper_parameters``: ``backbone`` (registry name), ``backbone_kwargs`` and ``in_channels``
  (with the objective's own arguments beside them);
* ``state_dict``: the encoder under ``backbone.`` (frame backbones are wrapped in
  :class:`~ultrassl.models.backbones.FrameEncoder`, so their keys read
  ``backbone.frame_backbone.``); heads, momentum copies and queues live under other
  prefixes and are left out;
* optionally ``provenance`` (:mod:`ultrassl.engine.provenance`), whose resolved config names
  the objective's class.

Checkpoints are read with ``torch.load(weights_only=True)``: nothing in them is executed.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ultrassl.errors import CheckpointError
from ultrassl.models.backbones import Backbone, FrameEncoder, create_backbone

#: the prefix of the encoder's weights in a PretrainModule's state dict
BACKBONE_PREFIX = "backbone."


@dataclass
class BackboneSpec:
    """Everything needed to rebuild a backbone: registry name, its options and input channels."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    in_channels: int = 1

    def build(self) -> Backbone:
        """A freshly initialised backbone; frame backbones come wrapped in
        :class:`FrameEncoder`, exactly as in :class:`~ultrassl.engine.base.PretrainModule`."""
        encoder = create_backbone(self.name, in_channels=self.in_channels, **self.kwargs)
        return FrameEncoder(encoder) if encoder.input_kind == "frame" else encoder


@dataclass
class PretrainedInfo:
    """What was loaded.

    Attributes:
        checkpoint: the checkpoint path (None for a random initialisation).
        spec: the backbone's architecture.
        objective: the pretraining module's class path, from the checkpoint's provenance
            config when it has one (else None).
        frame_wise: the backbone encodes frames one by one (a frame backbone).
        num_features: F, width of the pooled features and of the feature map (None when
            described without building, :meth:`~ultrassl.models.encoders.EncoderSpec.describe`).
        num_tensors: tensors loaded into the backbone.
        global_step: the optimiser step the checkpoint was written at (None if unknown).
    """

    checkpoint: str | None
    spec: BackboneSpec
    objective: str | None
    frame_wise: bool
    num_features: int | None
    num_tensors: int = 0
    global_step: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for result tables and logs."""
        return asdict(self)


def import_class(class_path: str) -> Any:
    """The object a dotted ``"package.module.Name"`` path names (as LightningCLI's ``class_path``).

    Raises:
        ImportError, AttributeError, ValueError: the module or the name does not exist.
    """
    module_name, _, name = str(class_path).rpartition(".")
    if not module_name:
        raise ValueError(f"{class_path!r} is not a dotted 'module.Name' path")
    return getattr(importlib.import_module(module_name), name)


#: the package whose classes a checkpoint may name; importing a module runs its code, so a
#: class path from a file is checked against this before it is imported
TRUSTED_PACKAGE = "ultrassl"


def class_from_checkpoint(class_path: str, base: type, what: str, path: str | os.PathLike,
                          trusted: Collection[str] = ()) -> type:
    """The subclass of ``base`` a checkpoint names; :class:`CheckpointError` otherwise.

    The name is checked before anything is imported: it must lie in the ``ultrassl`` package
    or be one of ``trusted`` (full class paths the caller vouches for, e.g. the models of
    registered tasks); then the class must be a subclass of ``base``.
    """
    class_path = str(class_path)
    if not (class_path.startswith(TRUSTED_PACKAGE + ".") or class_path in trusted):
        raise CheckpointError(
            f"the {what} class {class_path!r} lies outside the {TRUSTED_PACKAGE} package and is not a registered "
            "one; it was not imported", path,
        )
    try:
        found = import_class(class_path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise CheckpointError(f"unknown {what} class {class_path!r}", path) from exc
    if not (isinstance(found, type) and issubclass(found, base)):
        raise CheckpointError(f"{class_path!r} is not a {what}", path)
    return found


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict, loaded on the CPU with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("no such checkpoint file", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad file
        raise CheckpointError(f"not a loadable checkpoint ({type(exc).__name__}: {exc})", path) from exc


def backbone_spec(checkpoint: dict[str, Any], path: str | os.PathLike | None = None) -> BackboneSpec:
    """The backbone's architecture from the checkpoint's saved hyperparameters."""
    hparams = checkpoint.get("hyper_parameters") or {}
    if "backbone" not in hparams:
        raise CheckpointError(
            "the checkpoint's hyper_parameters name no 'backbone' (was it written by a "
            "PretrainModule or a downstream task of this package?)", path,
        )
    return BackboneSpec(
        name=str(hparams["backbone"]),
        kwargs=dict(hparams.get("backbone_kwargs") or {}),
        in_channels=int(hparams.get("in_channels", 1)),
    )


def objective_of(checkpoint: dict[str, Any]) -> str | None:
    """The model's ``class_path`` from the provenance config, or None."""
    config = (checkpoint.get("provenance") or {}).get("config")
    if not config:
        return None
    try:
        parsed = yaml.safe_load(config)
    except yaml.YAMLError:
        return None
    model = parsed.get("model") if isinstance(parsed, dict) else None
    return str(model["class_path"]) if isinstance(model, dict) and "class_path" in model else None


def backbone_state_dict(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The ``backbone.*`` entries of the state dict, prefix removed."""
    state = checkpoint.get("state_dict") or {}
    return {key[len(BACKBONE_PREFIX):]: value for key, value in state.items() if key.startswith(BACKBONE_PREFIX)}


def load_pretrained_backbone(checkpoint_path: str | os.PathLike) -> tuple[Backbone, PretrainedInfo]:
    """Rebuild a checkpoint's backbone and load its weights (strictly: every tensor must fit).

    Args:
        checkpoint_path: a Lightning checkpoint of any :class:`~ultrassl.engine.base.PretrainModule`
            (or of a downstream task, which stores its encoder the same way).

    Returns:
        ``(backbone, info)``: the backbone (clip input ``(B, C, T, H, W)``; frame backbones
        wrapped in :class:`FrameEncoder`) in training mode, and what was loaded.

    Raises:
        CheckpointError: unreadable file, no backbone hyperparameters, no ``backbone.``
            weights, or weights that do not fit the architecture.
    """
    checkpoint = read_checkpoint(checkpoint_path)
    spec = backbone_spec(checkpoint, checkpoint_path)
    try:
        # The fresh weights are overwritten; building them must not advance the global
        # generator, so that a task head built next starts the same as in a random-init run.
        with torch.random.fork_rng(devices=[]):
            backbone = spec.build()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"cannot rebuild backbone {spec.name!r} ({exc})", checkpoint_path) from exc
    weights = backbone_state_dict(checkpoint)
    if not weights:
        raise CheckpointError("the state_dict holds no 'backbone.' weights", checkpoint_path)
    try:
        backbone.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"backbone weights do not fit {spec.name!r}: {exc}", checkpoint_path) from exc
    info = PretrainedInfo(
        checkpoint=str(checkpoint_path), spec=spec, objective=objective_of(checkpoint),
        frame_wise=isinstance(backbone, FrameEncoder), num_features=backbone.num_features,
        num_tensors=len(weights), global_step=checkpoint.get("global_step"),
    )
    return backbone, info


def random_init_backbone(spec: BackboneSpec | PretrainedInfo, seed: int | None = None) -> tuple[Backbone, PretrainedInfo]:
    """The same architecture with fresh weights (the baseline of every transfer result).

    Args:
        spec: the architecture, or the info of a loaded checkpoint.
        seed: seeds the initialisation (without touching the global generator); None uses
            the global generator.
    """
    spec = spec.spec if isinstance(spec, PretrainedInfo) else spec
    if seed is None:
        backbone = spec.build()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            backbone = spec.build()
    info = PretrainedInfo(
        checkpoint=None, spec=spec, objective=None, frame_wise=isinstance(backbone, FrameEncoder),
        num_features=backbone.num_features,
    )
    return backbone, info
