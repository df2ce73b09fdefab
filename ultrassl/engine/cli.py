"""``ultrassl fit|validate|test|predict -c CONFIG``: the training command (LightningCLI).

Configs follow LightningCLI/jsonargparse conventions: ``model`` and ``data`` are chosen by
``class_path`` with their ``init_args`` (any LightningModule / LightningDataModule, e.g.
:class:`ultrassl.objectives.order_geometry.OrderGeometry` and
:class:`ultrassl.data.datamodule.ManifestDataModule` with its ``pipeline``); every value can
be overridden on the command line (``--model.init_args.lr=3e-3``, ``--trainer.max_epochs=5``);
``--print_config`` prints the resolved config, which ``-c`` reads back.

What the command adds to a plain LightningCLI:

* ``seed_everything`` defaults to 0 (runs repeat unless told otherwise);
* ``checkpoint``: a configurable :class:`~lightning.pytorch.callbacks.ModelCheckpoint`
  keeping the best by ``checkpoint.monitor`` (default ``val/loss``), and
  :class:`~ultrassl.engine.checkpoints.LastCheckpoint` keeping ``last.ckpt`` (resume with
  ``--ckpt_path <log dir>/checkpoints/last.ckpt``);
* ``trainer.logger`` unset (or ``true``): a CSV and a TensorBoard logger writing to one
  folder, ``<default_root_dir>/logs/version_N`` (``metrics.csv``, TensorBoard events,
  ``config.yaml``, ``provenance.json``, ``checkpoints/``), and the learning rate logged;
* :class:`~ultrassl.engine.provenance.Provenance` in every checkpoint (resolved config, seed,
  package versions, manifest SHA-256), loadable with ``torch.load(weights_only=True)``;
* values said once: the model's ``in_channels``, ``num_frames``, ``mode`` and ``num_segments`` (where its
  class takes them), and a downstream model's ``pipeline``, are the data pipeline's
  (:data:`SHARED_SETTINGS`, see :func:`take_from_pipeline`). A config states them in
  ``data.init_args.pipeline`` only; an older config that states them in the model too
  still runs when the two agree and fails with one line naming both keys when they do not;
* after ``fit``, one line: ``checkpoint: <path>  logs: <dir>  (tensorboard --logdir <dir>)``;
* bad input (arguments, config values, manifests, unreadable clips) ends with one line
  ``error: ...`` on stderr and exit status 2 (see :func:`main`).

Multi-GPU / multi-node: ``--trainer.strategy=ddp --trainer.devices=N [--trainer.num_nodes=M]``
(``trainer.sync_batchnorm: true`` converts BatchNorm layers); on CPU, DDP uses gloo.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ultrassl.engine.checkpoints import AtomicCheckpointIO, LastCheckpoint
from ultrassl.engine.bad_clips import BadClipMonitor
from ultrassl.engine.provenance import Provenance
from ultrassl.engine.quiet import quiet_lightning
from ultrassl.engine.config_errors import explain, name_the_key
from ultrassl.errors import ClipReadError, UltrasslError
from ultrassl.plain import plain

#: model arguments that are the data pipeline's settings (stated once, in the pipeline)
SHARED_SETTINGS = ("in_channels", "num_frames", "mode", "num_segments")
#: the model argument that receives the whole data pipeline (downstream models)
PIPELINE_ARGUMENT = "pipeline"


class ConfigError(UltrasslError):
    """A configuration value is invalid or model and data disagree."""


class UltrasslCLI(LightningCLI):
    """LightningCLI with ultrassl's defaults (see the module docstring).

    Args:
        args: command-line arguments (without the program name); None reads ``sys.argv``.
        run: run the subcommand (False: only parse and instantiate).
        trainer_defaults: extra trainer defaults; ``callbacks`` listed here are always added.
        build_trainer: instantiate the trainer (False, with ``run=False``: only the model
            and the data module, see :func:`build_model_and_data`).
        **kwargs: passed to :class:`~lightning.pytorch.cli.LightningCLI`.
    """

    def __init__(self, args: list[str] | dict[str, Any] | None = None, run: bool = True,
                 trainer_defaults: dict[str, Any] | None = None, build_trainer: bool = True, **kwargs: Any):
        self.summary: dict[str, str] | None = None
        self.build_trainer = build_trainer
        no_exit = {"exit_on_error": False}
        defaults = dict(trainer_defaults or {})
        defaults["callbacks"] = [Provenance(), LastCheckpoint(), BadClipMonitor(), *_as_list(defaults.get("callbacks"))]
        kwargs.setdefault("seed_everything_default", 0)
        with quiet_lightning():
            super().__init__(
                model_class=L.LightningModule,
                datamodule_class=L.LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                trainer_defaults=defaults,
                parser_kwargs={"prog": "ultrassl", **no_exit, **{name: dict(no_exit) for name in self.subcommands()}},
                save_config_kwargs={"overwrite": True},
                auto_configure_optimizers=False,  # every module configures its own (engine.module)
                args=args,
                run=run,
                **kwargs,
            )

    # ----------------------------------------------------------------- parser
    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        # No ``--weights_only``: checkpoints are always read with weights_only=True (below),
        # since unpickling anything else runs code from the file.
        return {name: {*skipped, "weights_only"} for name, skipped in LightningCLI.subcommands().items()}

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        ckpt_path = kwargs.get("ckpt_path")
        if isinstance(ckpt_path, str) and "://" in ckpt_path:
            raise ConfigError(f"ckpt_path={ckpt_path!r}: checkpoints are read from local files only")
        kwargs["weights_only"] = True
        return kwargs

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val/loss",
            "checkpoint.mode": "min",
            "checkpoint.save_top_k": 1,
            "checkpoint.filename": "best-epoch{epoch:03d}",
            "checkpoint.auto_insert_metric_name": False,
        })

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        # As LightningCLI's, without its warning when both args and sys.argv are given: the
        # demo and the tests run the command in-process from other programs.
        def parse(defaults: bool):
            try:
                return parser.parse_object(args, defaults=defaults) if isinstance(args, dict) else parser.parse_args(
                    args, defaults=defaults)
            except ArgumentError as exc:  # one line naming the key, for every caller (evaluate, benchmark)
                raise ConfigError(explain(str(exc))) from exc

        self.config = parse(defaults=True)
        stated = parse(defaults=False)  # only what the config files and arguments say
        subcommand = self.config.get("subcommand")
        take_from_pipeline(self.config.get(subcommand) if subcommand else self.config,
                           stated.get(subcommand) if subcommand else stated)

    # ----------------------------------------------------------------- instantiation
    def instantiate_classes(self) -> None:
        try:
            if self.build_trainer:
                super().instantiate_classes()
            else:  # LightningCLI's first steps, without the trainer
                self.config_init = self.parser.instantiate_classes(self.config)
                self.datamodule = self._get(self.config_init, "data")
                self.model = self._get(self.config_init, "model")
                self.trainer = None
        except (ValueError, TypeError, KeyError, MisconfigurationException) as exc:
            cause = _ultrassl_cause(exc)
            if cause is not None:  # e.g. a missing checkpoint, under jsonargparse's wrapping
                message = getattr(cause, "cause", None)
                named = None if isinstance(cause, ClipReadError) or not message else name_the_key(
                    message, getattr(cause, "path", None), self.config)
                if named is None:
                    raise cause from None
                raise type(cause)(named) from None  # a file a config value names: say which key
            raise ConfigError(explain(str(exc))) from exc
        if self.trainer is not None:
            provenance = next(c for c in self.trainer.callbacks if isinstance(c, Provenance))
            provenance.config = self.resolved_config()

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True):
            root = trainer_config.get("default_root_dir") or os.getcwd()
            kwargs["logger"] = default_loggers(root)
        if kwargs.get("logger", trainer_config.get("logger")):
            self.trainer_defaults["callbacks"] = [
                c for c in self.trainer_defaults["callbacks"] if not isinstance(c, LearningRateMonitor)
            ] + [LearningRateMonitor(logging_interval="step")]
        trainer = super().instantiate_trainer(**kwargs)
        # Set here, not as a trainer default: a plugin instance does not round-trip through
        # the saved config. A checkpoint I/O of the user's own is kept.
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def resolved_config(self) -> str:
        """The parsed configuration of this run as YAML text (what ``--print_config`` shows)."""
        parser = self._parser(self.subcommand)
        config = self.config.get(str(self.subcommand), self.config)
        return parser.dump(config, skip_none=False)

    # ----------------------------------------------------------------- subcommand hooks
    def after_fit(self) -> None:
        if getattr(self.model, "solves_probe", False) and self.datamodule is not None:
            # the probe was solved when fitting started and no epoch ran: report it on the
            # validation data as an epoch would have
            self.trainer.validate(self.model, datamodule=self.datamodule, verbose=False)
        self.summary = run_summary(self.trainer)
        monitor = next((c for c in self.trainer.callbacks if isinstance(c, BadClipMonitor)), None)
        if self.trainer.is_global_zero:
            if monitor is not None and monitor.summary():
                print(f"{monitor.summary()}: listed in {monitor.path(self.trainer)}", flush=True)
            print(summary_line(self.summary), flush=True)


def default_loggers(root: str | os.PathLike) -> list:
    """A CSV and a TensorBoard logger writing to the same ``<root>/logs/version_N`` folder."""
    csv = CSVLogger(save_dir=str(root), name="logs")
    tensorboard = TensorBoardLogger(save_dir=str(root), name="logs", version=csv.version, default_hp_metric=False)
    # Create the folder now (process 0), before config.yaml lands in it, so the CSV writer
    # does not take the folder for an old run's.
    _ = csv.experiment
    return [csv, tensorboard]


def take_from_pipeline(config: Any, stated: Any) -> None:
    """Give the model what the data pipeline decides, in the parsed ``config`` (in place).

    For each of :data:`SHARED_SETTINGS` that both the model's class and the pipeline's take,
    the model gets the pipeline's value; a model that takes a ``pipeline`` gets the data
    module's. ``stated`` is what the config files and arguments said (parsed without
    defaults): a model value stated there that differs from the pipeline's raises.

    Raises:
        ConfigError: one line naming both keys and both values.
    """
    model, data = config.get("model"), config.get("data")
    if not _has(model, "init_args") or not _has(data, "init_args") or not _has(data.init_args, "pipeline"):
        return
    pipeline = data.init_args.pipeline
    if pipeline is None:
        return
    told = stated.get("model") if stated is not None else None
    told = told.get("init_args") if _has(told, "init_args") else None

    def agree(name: str, value: Any, source: str) -> None:
        given = model.init_args[name]  # parsed: the stated value with its defaults filled in
        if told is not None and told.get(name) is not None and plain(given) != plain(value):
            raise ConfigError(f"model.init_args.{name}={plain(given)!r} but {source}={plain(value)!r}; "
                              f"state it once, in {source}")
        model.init_args[name] = value

    for name in SHARED_SETTINGS:
        if name in model.init_args and _has(pipeline, "init_args") and name in pipeline.init_args:
            agree(name, pipeline.init_args[name], f"data.init_args.pipeline.init_args.{name}")
    if PIPELINE_ARGUMENT in model.init_args:
        agree(PIPELINE_ARGUMENT, pipeline.clone() if hasattr(pipeline, "clone") else pipeline, "data.init_args.pipeline")


def _ultrassl_cause(exc: BaseException) -> UltrasslError | None:
    """The first of this package's errors in the chain of causes of ``exc``."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, UltrasslError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _has(node: Any, key: str) -> bool:
    return node is not None and not isinstance(node, (str, int, float, bool)) and key in node and node[key] is not None


def build_model_and_data(config: Mapping[str, Any]) -> tuple[L.LightningModule, L.LightningDataModule, dict[str, Any]]:
    """The model and data module of a config (``seed_everything``, ``trainer``, ``model``,
    ``data``, as a dict), built as ``ultrassl fit`` builds them: by its parser, with its
    rules (:func:`take_from_pipeline`) and seed, but without a trainer.

    Returns:
        ``(model, datamodule, resolved)``: ``resolved`` is the parsed config with every
        default filled in, as plain values.

    Raises:
        ConfigError, ArgumentError: the config is invalid (one line each).
    """
    cli = UltrasslCLI(args=plain(dict(config)), run=False, build_trainer=False)
    return cli.model, cli.datamodule, plain(cli.config)


def run_summary(trainer: L.Trainer) -> dict[str, str]:
    """Where a finished fit left its checkpoints and logs (absolute paths; "" when none):
    ``checkpoint`` (the best by the monitored metric, else the last), ``last_checkpoint``, ``logs``."""
    best = last = ""
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, LastCheckpoint):
            last = last or callback.latest_path
        elif isinstance(callback, ModelCheckpoint):
            best = best or callback.best_model_path or ""
    logs = trainer.log_dir if trainer.loggers else ""
    return {
        "checkpoint": str(Path(best or last).resolve()) if (best or last) else "",
        "last_checkpoint": str(Path(last).resolve()) if last else "",
        "logs": str(Path(logs).resolve()) if logs else "",
    }


def summary_line(summary: dict[str, str]) -> str:
    """``checkpoint: <path>  logs: <dir>  (tensorboard --logdir <dir>)``."""
    logs = summary["logs"] or "(none)"
    line = f"checkpoint: {summary['checkpoint'] or '(none)'}  logs: {logs}"
    return line + (f"  (tensorboard --logdir {logs})" if summary["logs"] else "")


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def one_line(exc: BaseException) -> str:
    """An error message on one line (jsonargparse's span several)."""
    return " ".join(str(exc).split())


def main(argv: list[str] | None = None) -> int:
    """Run ``ultrassl <subcommand> ...`` with ``argv``; returns the exit status.

    0: done (or ``--help`` / ``--print_config``); 2: bad input, reported as one line
    ``error: <message>`` on stderr.
    """
    try:
        UltrasslCLI(args=argv)
    except SystemExit as exc:  # --help, --print_config
        return exc.code if isinstance(exc.code, int) else 0
    except ArgumentError as exc:
        print(f"error: {explain(str(exc))}", file=sys.stderr)
        return 2
    except UltrasslError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
