"""Recording the clips a run replaced because they could not be read, and stopping the run
past the limit of its :class:`~ultrassl.data.bad_clips.BadClipPolicy`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import lightning as L

from ultrassl.atomic import write_text_atomically
from ultrassl.data.bad_clips import READ_FAILURES_KEY, BadClipLimitError, BadClipPolicy, parse_failures

#: the file, in the run's log folder, listing every replaced clip
BAD_CLIPS_FILE = "bad_clips.csv"
_COLUMNS = ("stage", "epoch", "step", "path", "error")


class BadClipMonitor(L.Callback):
    """Collects the read failures that batches carry (:data:`READ_FAILURES_KEY`), writes them
    to ``bad_clips.csv`` in the run's log folder (``bad_clips.rank<r>.csv`` per process in a
    multi-process run), logs how many clips validation replaced (``val/replaced_clips``), and
    raises :class:`BadClipLimitError` when training replaced more than the policy allows.

    Attributes:
        records: every failure seen, as dicts of :data:`_COLUMNS`.
    """

    def __init__(self):
        self.records: list[dict[str, Any]] = []
        self._val_replaced = 0

    def _policy(self, trainer: L.Trainer) -> BadClipPolicy:
        return getattr(getattr(trainer, "datamodule", None), "bad_clips", None) or BadClipPolicy()

    def _items_per_epoch(self, trainer: L.Trainer) -> int:
        train_set = getattr(getattr(trainer, "datamodule", None), "train_set", None)
        return len(train_set) if train_set is not None else int(trainer.num_training_batches or 1)

    def path(self, trainer: L.Trainer) -> Path | None:
        """Where the records go; None when the run has no log folder."""
        if not trainer.loggers or trainer.log_dir is None:
            return None
        name = BAD_CLIPS_FILE if trainer.world_size == 1 else f"bad_clips.rank{trainer.global_rank}.csv"
        return Path(trainer.log_dir) / name

    def observe(self, trainer: L.Trainer, batch: Any, stage: str, epoch: int | None = None) -> int:
        """Record the failures ``batch`` carries, met in ``stage`` (``"train"``, ``"validate"``,
        ``"probe"``: the training sweeps of a linear probe, ``epoch`` then numbering the
        sweep); returns how many. Past the policy's limit, training and probe sweeps raise
        :class:`BadClipLimitError`."""
        texts = batch.get(READ_FAILURES_KEY) if isinstance(batch, Mapping) else None
        if not texts:
            return 0
        found = [pair for text in texts for pair in parse_failures(text)]
        epoch = trainer.current_epoch if epoch is None else int(epoch)
        for path, error in found:
            self.records.append({"stage": stage, "epoch": epoch, "step": trainer.global_step,
                                 "path": path, "error": error})
        if found:
            self._write(trainer)
            if stage == "train":
                self._check(trainer, sum(r["stage"] == "train" for r in self.records))
            elif stage == "probe":  # each sweep reads the same clips: the limit holds per sweep
                self._check(trainer, sum(r["stage"] == "probe" and r["epoch"] == epoch for r in self.records))
        return len(found)

    def _check(self, trainer: L.Trainer, failed: int) -> None:
        policy = self._policy(trainer)
        limit = policy.limit(self._items_per_epoch(trainer))
        if failed > limit:
            where = self.path(trainer)
            raise BadClipLimitError(
                f"{failed} training clips failed to read, more than the limit of {limit} (data.init_args.bad_clips."
                f"max_bad_clips = {policy.max_bad_clips}); the archive may be damaged"
                + (f": see {where}" if where else "") + f"; the last: {self.records[-1]['path']}: "
                f"{self.records[-1]['error']}"
            )

    def _write(self, trainer: L.Trainer) -> None:
        target = self.path(trainer)
        if target is None:
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=_COLUMNS)
        writer.writeheader()
        writer.writerows(self.records)
        write_text_atomically(target, buffer.getvalue(), newline="")

    def summary(self) -> str:
        """One line: how many reads failed and were replaced, or "" when none did."""
        if not self.records:
            return ""
        files = len({r["path"] for r in self.records})
        return f"{len(self.records)} clip reads failed ({files} files) and were replaced by other clips"

    # ----------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        # plain types only: checkpoints load with weights_only=True
        return {"records": [dict(r) for r in self.records]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """A resumed run counts the failures before the kill towards its limit."""
        self.records = [dict(r) for r in state_dict.get("records", [])]

    # ----------------------------------------------------------------- hooks
    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        self.observe(trainer, batch, "train")

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_replaced = 0

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        self._val_replaced += self.observe(trainer, batch, "validate")

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            pl_module.log("val/replaced_clips", float(self._val_replaced), sync_dist=True)


def monitored_batches(trainer: L.Trainer, batches: Iterable[Any], stage: str = "probe") -> Iterable[Any]:
    """``batches`` (re-iterable: one sweep per iteration) with the read failures of every
    batch handed to the trainer's :class:`BadClipMonitor` (``stage``, the sweep as epoch), for
    data read outside Lightning's loops (a linear probe's feature sweeps)."""
    monitor = next((c for c in trainer.callbacks if isinstance(c, BadClipMonitor)), None)
    return batches if monitor is None else _Sweeps(trainer, batches, monitor, stage)


class _Sweeps:
    def __init__(self, trainer: L.Trainer, batches: Iterable[Any], monitor: BadClipMonitor, stage: str):
        self.trainer, self.batches, self.monitor, self.stage = trainer, batches, monitor, stage
        self.sweep = -1

    def __iter__(self):
        self.sweep += 1
        for batch in self.batches:
            self.monitor.observe(self.trainer, batch, self.stage, epoch=self.sweep)
            yield batch
