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
* a check before fitting that model and data pipeline agree (``in_channels``,
  ``num_frames``, ``mode``);
* after ``fit``, one line: ``checkpoint: <path>  logs: <dir>  (tensorboard --logdir <dir>)``;
* bad input (arguments, config values, manifests, unreadable clips) ends with one line
  ``error: ...`` on stderr and exit status 2 (see :func:`main`).

Multi-GPU / multi-node: ``--trainer.strategy=ddp --trainer.devices=N [--trainer.num_nodes=M]``
(``trainer.sync_batchnorm: true`` converts BatchNorm layers); on CPU, DDP uses gloo.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from ultrassl.engine.checkpoints import LastCheckpoint
from ultrassl.engine.provenance import Provenance
from ultrassl.errors import UltrasslError

#: attributes that must agree between the model (hparams) and the data pipeline
SHARED_SETTINGS = ("in_channels", "num_frames", "mode")


class ConfigError(UltrasslError):
    """A configuration value is invalid or model and data disagree."""


class UltrasslCLI(LightningCLI):
    """LightningCLI with ultrassl's defaults (see the module docstring).

    Args:
        args: command-line arguments (without the program name); None reads ``sys.argv``.
        run: run the subcommand (False: only parse and instantiate).
        trainer_defaults: extra trainer defaults; ``callbacks`` listed here are always added.
        **kwargs: passed to :class:`~lightning.pytorch.cli.LightningCLI`.
    """

    def __init__(self, args: list[str] | None = None, run: bool = True,
                 trainer_defaults: dict[str, Any] | None = None, **kwargs: Any):
        self.summary: dict[str, str] | None = None
        _quiet_lightning_noise()
        no_exit = {"exit_on_error": False}
        defaults = dict(trainer_defaults or {})
        defaults["callbacks"] = [Provenance(), LastCheckpoint(), *_as_list(defaults.get("callbacks"))]
        kwargs.setdefault("seed_everything_default", 0)
        super().__init__(
            model_class=L.LightningModule,
            datamodule_class=L.LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults=defaults,
            parser_kwargs={"prog": "ultrassl", **no_exit, **{name: dict(no_exit) for name in self.subcommands()}},
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,  # objectives configure their own (PretrainModule)
            args=args,
            run=run,
            **kwargs,
        )

    # ----------------------------------------------------------------- parser
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
        self.config = parser.parse_object(args) if isinstance(args, dict) else parser.parse_args(args)

    # ----------------------------------------------------------------- instantiation
    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError, KeyError, MisconfigurationException) as exc:
            raise ConfigError(str(exc)) from exc
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
        return super().instantiate_trainer(**kwargs)

    def resolved_config(self) -> str:
        """The parsed configuration of this run as YAML text (what ``--print_config`` shows)."""
        parser = self._parser(self.subcommand)
        config = self.config.get(str(self.subcommand), self.config)
        return parser.dump(config, skip_none=False)

    # ----------------------------------------------------------------- subcommand hooks
    def before_fit(self) -> None:
        check_model_matches_data(self.model, self.datamodule)
        if hasattr(self.model, "pipeline_config"):  # downstream models keep their pipeline
            data = _plain(self.config[str(self.subcommand)]).get("data") or {}
            spec = (data.get("init_args") or {}).get("pipeline")
            if isinstance(spec, dict) and "class_path" in spec:
                self.model.pipeline_config = spec

    before_validate = before_test = before_fit

    def after_fit(self) -> None:
        if getattr(self.model, "solves_probe", False) and self.datamodule is not None:
            # the probe was solved when fitting started and no epoch ran: report it on the
            # validation data as an epoch would have
            self.trainer.validate(self.model, datamodule=self.datamodule, verbose=False)
        self.summary = run_summary(self.trainer)
        if self.trainer.is_global_zero:
            print(summary_line(self.summary), flush=True)


def _plain(value: Any) -> Any:
    """A parsed config node as plain dicts and lists."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def default_loggers(root: str | os.PathLike) -> list:
    """A CSV and a TensorBoard logger writing to the same ``<root>/logs/version_N`` folder."""
    csv = CSVLogger(save_dir=str(root), name="logs")
    tensorboard = TensorBoardLogger(save_dir=str(root), name="logs", version=csv.version, default_hp_metric=False)
    # Create the folder now (process 0), before config.yaml lands in it, so the CSV writer
    # does not take the folder for an old run's.
    _ = csv.experiment
    return [csv, tensorboard]


def check_model_matches_data(model: Any, datamodule: Any) -> None:
    """Raise :class:`ConfigError` when model and data pipeline disagree on a shared setting."""
    pipeline = getattr(datamodule, "pipeline", None)
    hparams = getattr(model, "hparams", {})
    if pipeline is None:
        return
    for name in SHARED_SETTINGS:
        if name in hparams and hasattr(pipeline, name) and hparams[name] != getattr(pipeline, name):
            raise ConfigError(
                f"model.init_args.{name}={hparams[name]!r} but data.init_args.pipeline.init_args.{name}="
                f"{getattr(pipeline, name)!r}; set both to the same value"
            )


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


class _DropAdvert(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def _quiet_lightning_noise() -> None:
    """Drop Lightning's advertisement for its cloud logger, and a deprecation warning that
    Lightning 2.6 triggers in torch 2.13's pytree module once per run, from the output."""
    logger = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdvert) for f in logger.filters):
        logger.addFilter(_DropAdvert())
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


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
    except (ArgumentError, UltrasslError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
