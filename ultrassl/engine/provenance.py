"""What produced a checkpoint, saved inside it: config, seed, package versions, data hash.

:class:`Provenance` adds ``checkpoint["provenance"]``, a dict of plain Python types (str, int,
dict), so that a checkpoint still loads with ``torch.load(path, weights_only=True)``:

* ``config``: the resolved run configuration as YAML text (set by the ``ultrassl`` command;
  None when the trainer was built in Python);
* ``seed``: the run seed (``seed_everything``), or None when the run was not seeded;
* ``versions``: python, torch, lightning, monai, numpy, pydicom, av and ultrassl;
* ``data``: what the data module reports (:meth:`ManifestDataModule.provenance`: the
  manifest paths and the SHA-256 of their bytes), or an empty dict.

The same record is written beside the logs as ``provenance.json``.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import lightning as L

#: packages whose versions are recorded, besides Python
RECORDED_PACKAGES = ("torch", "lightning", "monai", "numpy", "pydicom", "av", "ultrassl")
#: checkpoint key of the record
CHECKPOINT_KEY = "provenance"


def package_versions() -> dict[str, str]:
    """Versions of Python and of :data:`RECORDED_PACKAGES` (``"missing"`` when not installed)."""
    versions = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            module = importlib.import_module(name)
            versions[name] = str(getattr(module, "__version__", "unknown"))
        except ImportError:
            versions[name] = "missing"
    return versions


def run_seed() -> int | None:
    """The seed ``seed_everything`` set for this process, or None."""
    seed = os.environ.get("PL_GLOBAL_SEED")
    return None if seed is None else int(seed)


class Provenance(L.Callback):
    """Put the run's provenance into every checkpoint (see the module docstring).

    Args:
        config: the resolved configuration as YAML text; the ``ultrassl`` command sets it.
    """

    def __init__(self, config: str | None = None):
        self.config = config
        self.record: dict[str, Any] | None = None

    def build_record(self, trainer: L.Trainer) -> dict[str, Any]:
        datamodule = getattr(trainer, "datamodule", None)
        describe = getattr(datamodule, "provenance", None)
        data = describe() if callable(describe) else {}
        return {
            "config": self.config,
            "seed": run_seed(),
            "versions": package_versions(),
            "data": {str(k): (None if v is None else str(v)) for k, v in data.items()},
        }

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.record = self.build_record(trainer)
        if not trainer.loggers:
            return
        log_dir = trainer.log_dir  # on every process: in DDP it is a collective (broadcast)
        if trainer.is_global_zero and log_dir is not None:
            folder = Path(log_dir)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "provenance.json").write_text(json.dumps(self.record, indent=2) + "\n")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self.record if self.record is not None else self.build_record(trainer)
