"""Checkpoint callbacks and checkpoint writing of the ``ultrassl`` command.

Lightning's ``ModelCheckpoint(save_last=True)`` refreshes ``last.ckpt`` only when it also
saves a top-k checkpoint, i.e. only when the monitored metric improved; a run is resumed
from its latest state, so :class:`LastCheckpoint` writes ``last.ckpt`` after every
validation (or every epoch when there is no validation) on its own.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ultrassl.atomic import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, except that local checkpoints are written to a temporary
    file in their own folder, flushed to disk and renamed over the target: a kill during a
    save leaves the previous checkpoint whole (remote paths keep Lightning's behaviour)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with atomic_write(path, "wb") as stream:
            torch.save(checkpoint, stream)


class LastCheckpoint(ModelCheckpoint):
    """Always keeps the latest state in ``<dirpath>/last.ckpt`` (default dirpath: the
    trainer's log folder ``checkpoints/``), beside any best-by-metric checkpoint.

    Args:
        dirpath: folder of the file (None: Lightning's default, as ``ModelCheckpoint``).
        **kwargs: further ``ModelCheckpoint`` options (``every_n_epochs`` ...).
    """

    def __init__(self, dirpath: str | None = None, **kwargs: Any):
        kwargs.setdefault("save_on_train_epoch_end", True)  # also in epochs without validation
        super().__init__(dirpath=dirpath, filename="last", monitor=None, save_top_k=1, save_last=False,
                         enable_version_counter=False, **kwargs)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_end(trainer, pl_module)
        # A fit that ends before its first epoch does (a downstream linear probe is solved
        # when training starts, then the fit stops) has saved nothing yet: keep its result.
        if not self._last_checkpoint_saved:
            path = self.format_checkpoint_name({})
            self._save_checkpoint(trainer, path)
            self.best_model_path = path

    @property
    def state_key(self) -> str:
        # Distinct from a best-by-metric ModelCheckpoint's, so both are saved and restored.
        return self._generate_state_key(kind="last", every_n_epochs=self._every_n_epochs)

    @property
    def latest_path(self) -> str:
        """The file written (empty before the first save)."""
        return self.best_model_path
