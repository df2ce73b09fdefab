"""One arm of a transfer comparison: a task config, an encoder spec, a protocol and a seed.

An arm's config is the task's config (``configs/downstream/<task>.yaml``: ``trainer``,
``model``, ``data``) with the encoder spec, the protocol, the seed, the budget and what the
encoder dictates (:meth:`~ultrassl.downstream.task.Task.prepare`) filled in
(:func:`arm_config`). It is built by the parser of ``ultrassl fit``
(:func:`~ultrassl.engine.cli.build_model_and_data`), trained (:func:`train_arm`) and
scored by its task (:meth:`~ultrassl.downstream.task.Task.score`)::

    from ultrassl.downstream.arms import arm_config, load_config, train_arm
    from ultrassl.downstream.tasks import get_task
    from ultrassl.models.encoders import PretrainedEncoder, RandomEncoder

    task = get_task("plane_detection")
    config = load_config(task.default_config_path())
    encoder = PretrainedEncoder("pretrain.ckpt")            # or RandomEncoder.like(encoder.describe(), seed=0)
    cfg = arm_config(config, encoder, "finetune", seed=0, manifest="manifest.csv", max_steps=150,
                     batch_size=16, train_subjects=["subject_00", "subject_01"])
    arm = train_arm(cfg, "runs/arm")                         # model, datamodule, resolved config, run record
    scored = task.score(arm.model, arm.datamodule)           # {"metrics": {...}, ...}
    reference = task.baseline(arm.datamodule, arm.config)    # None, or {"name", "metrics"}
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import yaml
from lightning.pytorch.loggers import CSVLogger

from ultrassl.downstream.tasks import task_of_config
from ultrassl.engine.bad_clips import BadClipMonitor
from ultrassl.engine.checkpoints import AtomicCheckpointIO
from ultrassl.engine.cli import build_model_and_data
from ultrassl.engine.quiet import quiet_lightning
from ultrassl.models.checkpoint import PretrainedInfo, import_class
from ultrassl.models.encoders import EncoderSpec

#: model arguments an arm's encoder spec replaces (the shorthand and the architecture)
ENCODER_ARGUMENTS = ("checkpoint", "init", "init_seed", "backbone", "backbone_kwargs", "in_channels", "encoder")
#: trainer options an arm sets itself
ARM_TRAINER_OPTIONS = ("logger", "callbacks", "default_root_dir", "enable_checkpointing")


def load_config(config: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A task config as a dict (a copy when given a dict)."""
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config))
    with open(config) as handle:
        loaded = yaml.safe_load(handle)
    if not isinstance(loaded, dict) or "model" not in loaded or "data" not in loaded:
        raise ValueError(f"{config}: a task config needs 'model' and 'data' sections")
    return loaded


def set_option(config: dict[str, Any], key: str, value: Any) -> None:
    """Set the dotted ``key`` (``"model.init_args.lr"``) of a config dict in place, creating
    the sections on the way."""
    *sections, name = key.split(".")
    node = config
    for section in sections:
        node = node.setdefault(section, {})
        if not isinstance(node, dict):
            raise ValueError(f"{key!r}: {section!r} is not a section of the config")
    node[name] = value


def arm_config(
    config: Mapping[str, Any],
    encoder: EncoderSpec,
    protocol: str,
    *,
    seed: int = 0,
    info: PretrainedInfo | None = None,
    manifest: str | os.PathLike | None = None,
    max_steps: int | None = None,
    batch_size: int | None = None,
    train_subjects: Sequence[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The config of one arm (a new dict).

    Args:
        config: the task config.
        encoder: where the arm's encoder comes from (its spec goes into ``model.init_args.encoder``;
            the config's own encoder arguments are dropped).
        protocol: ``"linear"`` or ``"finetune"``.
        seed: the run's seed (``seed_everything``) and, unless the config sets one, the data's.
        info: what the encoder is (:meth:`EncoderSpec.describe`; read from it when None, which
            for a :class:`~ultrassl.models.encoders.PretrainedEncoder` reads the checkpoint's
            hyperparameters).
        manifest, batch_size: override the data's.
        max_steps: the budget in optimiser steps (replaces ``max_epochs``).
        train_subjects: train on these subjects' clips only (``data.init_args.train_subjects``).
        overrides: further ``{"dotted.key": value}`` settings, applied last.
    """
    cfg = copy.deepcopy(dict(config))
    task = task_of_config(cfg)
    model = cfg["model"].setdefault("init_args", {})
    for key in ENCODER_ARGUMENTS:
        model.pop(key, None)  # the encoder spec decides
    model.update(encoder=encoder.config(), protocol=protocol)
    cfg["seed_everything"] = int(seed)
    data = cfg["data"].setdefault("init_args", {})
    if manifest is not None:
        data["manifest"] = str(manifest)
    if batch_size is not None:
        data["batch_size"] = int(batch_size)
    if train_subjects is not None:
        data["train_subjects"] = [str(s) for s in train_subjects]
    data.setdefault("seed", int(seed))
    data["pipeline"].setdefault("init_args", {})
    cfg = task.prepare(cfg, info or encoder.describe())
    trainer = cfg.setdefault("trainer", {})
    if max_steps is not None:
        trainer["max_steps"] = int(max_steps)
        trainer.pop("max_epochs", None)
    for key, value in (overrides or {}).items():
        set_option(cfg, key, value)
    return cfg


def solves_probe(cfg: Mapping[str, Any]) -> bool:
    """Whether the config's model solves its linear probe by L-BFGS rather than by SGD steps
    (:meth:`~ultrassl.downstream.base.DownstreamModule.probe_is_solved`)."""
    init_args = cfg["model"].get("init_args") or {}
    return import_class(cfg["model"]["class_path"]).probe_is_solved(
        init_args.get("protocol", "finetune"), init_args.get("linear_solver", "lbfgs"))


@dataclass
class Arm:
    """A built (and, from :func:`train_arm`, trained) arm.

    Attributes:
        model: the task's model.
        datamodule: its data.
        config: the resolved config (every default filled in), plain values.
        run: what training did: ``curves`` (the CSV log), ``seconds``, ``steps``, ``model``
            (the saved checkpoint), ``probe`` (an L-BFGS probe instead of SGD steps) or
            ``head_from_probe`` (LP-FT's start); empty before training.
    """

    model: Any
    datamodule: Any
    config: dict[str, Any]
    run: dict[str, Any] = field(default_factory=dict)


def build_arm(cfg: Mapping[str, Any], quiet: bool = True) -> Arm:
    """The model and data module of an arm config, built by ``ultrassl fit``'s parser (the
    global generator seeded with the config's ``seed_everything`` first)."""
    with quiet_lightning(info=not quiet):
        model, datamodule, resolved = build_model_and_data(cfg)
    return Arm(model, datamodule, resolved)


def arm_trainer(trainer_config: Mapping[str, Any], folder: Path, progress: bool = False) -> L.Trainer:
    """The trainer of an arm: the config's options with a CSV log in ``folder`` and no checkpoints."""
    options = {k: v for k, v in trainer_config.items() if k not in ARM_TRAINER_OPTIONS}
    options.setdefault("num_sanity_val_steps", 0)
    options.setdefault("log_every_n_steps", 1)
    return L.Trainer(
        **options, default_root_dir=str(folder), logger=CSVLogger(str(folder), name="", version=""),
        enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
        callbacks=[BadClipMonitor()], plugins=[AtomicCheckpointIO()],
    )


def read_curves(folder: Path) -> dict[str, dict[str, list[float]]]:
    """``{column: {"step": [...], "value": [...]}}`` of a CSV training log (NaN rows dropped)."""
    path = Path(folder) / "metrics.csv"
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    curves = {}
    for column in table.columns:
        if column in ("step", "epoch"):
            continue
        rows = table[["step", column]].dropna()
        if len(rows):
            curves[column] = {"step": rows["step"].astype(float).tolist(), "value": rows[column].astype(float).tolist()}
    return curves


def train_arm(cfg: Mapping[str, Any], folder: str | os.PathLike, progress: bool = False, save_model: bool = True) -> Arm:
    """Build and train one arm; with ``save_model`` write it to ``folder/model.ckpt`` (weights
    and hyperparameters, the pipeline among them: :func:`~ultrassl.downstream.base.load_task_model`)."""
    folder = Path(folder)
    arm = build_arm(cfg, quiet=not progress)
    started = time.perf_counter()
    with quiet_lightning(info=progress):
        trainer = arm_trainer(cfg.get("trainer", {}), folder, progress)
        trainer.fit(arm.model, datamodule=arm.datamodule)
        if save_model:
            trainer.save_checkpoint(folder / "model.ckpt", weights_only=True)
    run = {"curves": read_curves(folder), "seconds": time.perf_counter() - started, "steps": int(trainer.global_step)}
    monitor = next(c for c in trainer.callbacks if isinstance(c, BadClipMonitor))
    if monitor.records:
        run["replaced_clips"] = [dict(r) for r in monitor.records]
    if save_model:
        run["model"] = str(folder / "model.ckpt")
    model = arm.model
    if model.probe_fit is not None:
        fit = {k: v for k, v in model.probe_fit.as_dict().items() if k != "losses"}
        if model.solves_probe:  # solved by L-BFGS on frozen features: no SGD steps, no step curves
            run["probe"] = fit
            run["curves"] = {}
        else:
            run["head_from_probe"] = fit
    arm.run = run
    return arm
