"""The Lightning data module over a manifest, with repeatable per-item randomness.

:class:`ManifestDataModule` splits a manifest by its split column, applies a
:class:`~ultrassl.data.pipeline.Pipeline`'s chains and batches the items with
``default_collate``. Randomness is a function of ``(seed, epoch, item)`` alone:

* :class:`EpochSeededSampler` orders the items of an epoch with a generator seeded by
  ``(seed, epoch)`` and yields ``(epoch, item)`` pairs, so the epoch travels with every index
  into the worker processes (persistent workers included);
* :class:`SeededItems` seeds the transform chain from ``(seed, epoch, item)`` before building
  each item (``Compose.set_random_state``, which reseeds every random step in it).

So a run repeats exactly with the same seed, does not depend on ``num_workers``, and a run
resumed from an end-of-epoch checkpoint sees the same batches as one that never stopped.
Validation items use epoch 0 in every epoch: the held-out draws (permutations, affines) are
the same each time they are scored.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
from torch.utils.data import DataLoader, Dataset, DistributedSampler, default_collate

from ultrassl.data.bad_clips import BadClipLimitError, BadClipPolicy, attach_failures, failure_line
from ultrassl.data.datasets import ManifestDataset
from ultrassl.data.manifest import manifest_hash, read_manifest
from ultrassl.data.pipeline import Pipeline
from ultrassl.errors import ClipReadError, ManifestError


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The seed (``[0, 2**32)``) of item ``index`` in ``epoch`` of a run seeded with ``seed``."""
    return int(np.random.SeedSequence([int(seed), 1, int(epoch), int(index)]).generate_state(1)[0])


def epoch_order(seed: int, epoch: int, length: int) -> np.ndarray:
    """The shuffled order of ``length`` items in ``epoch`` (a permutation, int64)."""
    return np.random.default_rng([int(seed), 0, int(epoch)]).permutation(length)


class SeededItems(Dataset):
    """A :class:`ManifestDataset` whose transform chain is seeded per item.

    Item ``i`` (of ``len(dataset) * clips_per_video``) is row ``i % len(dataset)``; several
    items of one video draw different clips from it. Indices are ``(epoch, i)`` pairs (from
    :class:`EpochSeededSampler`) or plain ints (epoch 0).
    """

    def __init__(self, dataset: ManifestDataset, seed: int, clips_per_video: int = 1,
                 bad_clips: BadClipPolicy | None = None):
        if clips_per_video < 1:
            raise ValueError(f"clips_per_video must be >= 1, got {clips_per_video}")
        self.dataset = dataset
        self.seed = int(seed)
        self.clips_per_video = int(clips_per_video)
        self.bad_clips = bad_clips or BadClipPolicy()

    def __len__(self) -> int:
        return len(self.dataset) * self.clips_per_video

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        """The item, with :data:`~ultrassl.data.bad_clips.READ_FAILURES_KEY`: under the
        ``"skip"`` policy a clip that fails to read is replaced by another item drawn from
        ``(seed, epoch, index)``, so a rerun makes the same replacements."""
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for {len(self)} items")
        failures: list[str] = []
        candidate, seed = index, item_seed(self.seed, epoch, index)
        replacements = np.random.default_rng([self.seed, 3, int(epoch), int(index)])
        for _ in range(self.bad_clips.max_attempts + 1):
            self.dataset.transform.set_random_state(seed=seed)
            try:
                sample = self.dataset[candidate % len(self.dataset)]
            except ClipReadError as exc:
                if self.bad_clips.on_error == "raise":
                    raise
                failures.append(failure_line(exc))
                candidate = int(replacements.integers(len(self)))
                seed = int(replacements.integers(2**32))
                continue
            return attach_failures(sample, failures)
        raise BadClipLimitError(
            f"item {index} and {self.bad_clips.max_attempts} replacements all failed to read; the last: "
            f"{failures[-1].replace(chr(9), ': ', 1)}"
        )


class EpochSeededSampler(DistributedSampler):
    """Yields ``(epoch, item)`` pairs: a seeded order per epoch, sharded across processes.

    It is a :class:`~torch.utils.data.DistributedSampler` (Lightning then keeps it instead
    of wrapping it, and calls :meth:`set_epoch` on it before every epoch). As in torch's,
    the order is padded by repeating items so that every process gets the same number.

    Args:
        length: items in the data set.
        seed: run seed.
        shuffle: order items by ``(seed, epoch)`` (training) or keep them in order.
        num_replicas, rank: processes sharing the data and this one's rank.
        follow_epoch: use the epoch set by :meth:`set_epoch`; False pins epoch 0
            (validation: the same draws every epoch).
    """

    def __init__(
        self,
        length: int,
        seed: int,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        follow_epoch: bool = True,
    ):
        super().__init__(range(length), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.length = length
        self.follow_epoch = follow_epoch

    def __iter__(self):
        epoch = self.epoch if self.follow_epoch else 0
        order = epoch_order(self.seed, epoch, self.length) if self.shuffle else np.arange(self.length)
        if self.total_size > self.length:
            order = np.resize(order, self.total_size)  # repeats from the start, as torch pads
        for index in order[self.rank : self.total_size : self.num_replicas]:
            yield epoch, int(index)


def sweep_loader(loader: Any) -> Any:
    """A loader for sweeps outside the training loop: the same items, order and batches as
    ``loader`` (its batch sampler), with worker processes of its own.

    Iterating a loader with persistent workers resets the one iterator it keeps, and the
    trainer holds that iterator for the epoch it is about to run: a sweep over the trainer's
    loader in ``on_train_start`` (the linear probe of an LP-FT fine-tune) would use it up, the
    first epoch would run no batch and training would follow epoch 1's order (with loading
    workers only; an in-process loader makes a new iterator per sweep). ``loader`` itself is
    returned when it keeps no workers, or is not a torch ``DataLoader``.
    """
    if not isinstance(loader, DataLoader) or not loader.persistent_workers:
        return loader
    # a loader without a batch sampler yields the dataset's items as they are (batch_size=None)
    batching = ({"batch_sampler": loader.batch_sampler} if loader.batch_sampler is not None
                else {"sampler": loader.sampler, "batch_size": None})
    return DataLoader(
        loader.dataset, **batching, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context,
        generator=loader.generator, prefetch_factor=loader.prefetch_factor,
        # every sweep of the probe from one worker set, which keeps its decoded loops
        persistent_workers=True,
    )


class ManifestDataModule(L.LightningDataModule):
    """Training and validation data from a manifest, through a pipeline.

    Splits: rows whose ``split_column`` equals ``train_split`` train, ``val_split`` validate
    (the fetal-sweep demo's annotations put whole subjects in ``val``). With ``val_manifest``
    every ok row of that manifest validates and ``manifest`` trains in full (its split column,
    if any, still selects ``train_split``). A manifest without the split column has
    ``holdout_fraction`` of its videos held out for validation, whole subjects at a time
    when it has a ``subject`` column, chosen by ``seed``.

    Args:
        manifest: the manifest CSV (``ultrassl data index``).
        pipeline: the data recipe (e.g. :class:`~ultrassl.pipelines.order_geometry.OrderGeometryPipeline`).
        val_manifest: a separate manifest of validation clips.
        split_column, train_split, val_split: how rows are assigned.
        holdout_fraction: share of videos (subjects) held out when there is no split column.
        batch_size: clips per batch and process.
        val_batch_size: the same for validation (default ``batch_size``).
        num_workers: loader processes per training process (0: load in the main process).
        seed: seed of the data order and of every random draw; default (None) the run's
            seed (``seed_everything``), else 0.
        clips_per_video: training items per video and epoch (each a different clip).
        val_clips_per_video: validation items per video (a larger, fixed held-out set).
        label_column: manifest column exposed as ``label`` (None: none).
        pin_memory: pin batches for faster transfer to a GPU.
        bad_clips: what to do with a clip that fails to read (:class:`~ultrassl.data.bad_clips.BadClipPolicy`):
            ``"skip"`` (default: replace it, record it in the run folder's ``bad_clips.csv``,
            stop past ``max_bad_clips``), ``"raise"`` (stop at the first), or a dict of the
            policy's fields, e.g. ``{on_error: skip, max_bad_clips: 20}``.
        train_subjects: train on the clips of these subjects only (the manifest's
            ``subject`` column; label-fraction studies); the held-out clips are unchanged.
            None: every training clip.
    """

    def __init__(
        self,
        manifest: str | os.PathLike,
        pipeline: Pipeline,
        val_manifest: str | os.PathLike | None = None,
        split_column: str = "split",
        train_split: str = "train",
        val_split: str = "val",
        holdout_fraction: float = 0.2,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int | None = None,
        clips_per_video: int = 1,
        val_clips_per_video: int = 1,
        label_column: str | None = "label",
        pin_memory: bool = False,
        train_subjects: list[str] | None = None,
        bad_clips: str | dict[str, Any] | None = None,
    ):
        super().__init__()
        for name, path in (("manifest", manifest), ("val_manifest", val_manifest)):
            if path is not None and not Path(path).is_file():
                raise ManifestError(f"{name}: no such manifest file", str(path))
        if batch_size < 1 or (val_batch_size is not None and val_batch_size < 1):
            raise ValueError(f"batch sizes must be >= 1, got {batch_size}, {val_batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        if not 0.0 <= holdout_fraction < 1.0:
            raise ValueError(f"holdout_fraction must lie in [0, 1), got {holdout_fraction}")
        if not isinstance(pipeline, Pipeline):
            raise TypeError(f"pipeline must be a Pipeline, got {type(pipeline).__name__}")
        self.manifest = str(manifest)
        self.val_manifest = None if val_manifest is None else str(val_manifest)
        self.pipeline = pipeline
        self.split_column = split_column
        self.train_split = train_split
        self.val_split = val_split
        self.holdout_fraction = holdout_fraction
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self._seed = seed
        self.clips_per_video = clips_per_video
        self.val_clips_per_video = val_clips_per_video
        self.label_column = label_column
        self.pin_memory = pin_memory
        self.train_subjects = None if train_subjects is None else [str(s) for s in train_subjects]
        self.bad_clips = BadClipPolicy.from_config(bad_clips)
        self.train_set: SeededItems | None = None
        self.val_set: SeededItems | None = None

    @property
    def seed(self) -> int:
        """The data seed: the one given, else the run's (``PL_GLOBAL_SEED``), else 0."""
        if self._seed is not None:
            return int(self._seed)
        return int(os.environ.get("PL_GLOBAL_SEED", 0))

    # ----------------------------------------------------------------- splits
    def split_tables(self) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        """The ok rows that train and those that validate (None: no validation data)."""
        train, val = self._splits()
        if self.train_subjects is None:
            return train, val
        if "subject" not in train.columns:
            raise ManifestError("train_subjects needs a 'subject' column", self.manifest)
        missing = sorted(set(self.train_subjects) - set(train["subject"].astype(str)))
        if missing:
            raise ManifestError(f"train_subjects {missing} have no training clips", self.manifest)
        chosen = train[train["subject"].astype(str).isin(self.train_subjects)]
        return chosen.reset_index(drop=True), val

    def _splits(self) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        table = read_manifest(self.manifest, status="ok")
        if self.val_manifest is not None:
            val = read_manifest(self.val_manifest, status="ok")
            if self.split_column in table.columns:
                table = table[table[self.split_column] == self.train_split]
            return self._nonempty(table, self.manifest, self.train_split), self._nonempty(
                val, self.val_manifest, None
            )
        if self.split_column in table.columns:
            train = table[table[self.split_column] == self.train_split]
            val = table[table[self.split_column] == self.val_split]
            return self._nonempty(train, self.manifest, self.train_split), (val if len(val) else None)
        return self._holdout(table)

    def _holdout(self, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
        groups = table["subject"] if "subject" in table.columns and (table["subject"] != "").all() else table["path"]
        names = np.array(sorted(set(groups)))
        n_val = int(math.floor(self.holdout_fraction * len(names)))
        if self.holdout_fraction > 0 and len(names) > 1:
            n_val = max(1, n_val)
        if n_val == 0:
            return self._nonempty(table, self.manifest, None), None
        held = set(np.random.default_rng([self.seed, 2]).permutation(names)[:n_val])
        is_val = groups.isin(held).to_numpy()
        return table[~is_val], table[is_val]

    def _nonempty(self, table: pd.DataFrame, source: str, split: str | None) -> pd.DataFrame:
        if len(table) == 0:
            where = f" with {self.split_column} == {split!r}" if split is not None else ""
            raise ManifestError(f"no clips with status ok{where}", source)
        return table.reset_index(drop=True)

    # ----------------------------------------------------------------- Lightning hooks
    def setup(self, stage: str | None = None) -> None:
        train, val = self.split_tables()
        self.train_set = SeededItems(
            ManifestDataset(train, self.pipeline.train_transform(), label_column=self.label_column),
            self.seed, self.clips_per_video, self.bad_clips,
        )
        self.val_set = None
        if val is not None:
            self.val_set = SeededItems(
                ManifestDataset(val, self.pipeline.val_transform(), label_column=self.label_column),
                self.seed, self.val_clips_per_video, self.bad_clips,
            )

    def _replicas(self) -> tuple[int, int]:
        """(processes, this one's rank) of the run; (1, 0) outside a trainer."""
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return int(trainer.world_size), int(trainer.global_rank)

    def _loader(self, items: SeededItems, batch_size: int, train: bool) -> DataLoader:
        replicas, rank = self._replicas()
        sampler = EpochSeededSampler(len(items), self.seed, shuffle=train, num_replicas=replicas, rank=rank,
                                     follow_epoch=train)
        per_process = len(sampler)
        # BatchNorm cannot train on a batch of one: drop the ragged last batch, unless the
        # whole split is smaller than one batch.
        drop_last = train and per_process > batch_size
        return DataLoader(
            items, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
            num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory, collate_fn=default_collate,
        )

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            self.setup("fit")
        return self._loader(self.train_set, self.batch_size, train=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.train_set is None:
            self.setup("validate")
        if self.val_set is None:
            return []
        return self._loader(self.val_set, self.val_batch_size, train=False)

    # ----------------------------------------------------------------- provenance
    def provenance(self) -> dict[str, str | None]:
        """Which data a run saw: manifest paths and the SHA-256 of their bytes (plain strings)."""
        record: dict[str, str | None] = {
            "manifest": str(Path(self.manifest).resolve()),
            "manifest_sha256": manifest_hash(self.manifest),
        }
        if self.val_manifest is not None:
            record["val_manifest"] = str(Path(self.val_manifest).resolve())
            record["val_manifest_sha256"] = manifest_hash(self.val_manifest)
        return record
