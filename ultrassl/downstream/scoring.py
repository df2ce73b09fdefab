"""What the tasks' scoring shares: the held-out videos of a data module, read deterministically.

Scores are computed on whole held-out videos, not on the training-time validation draws:
every frame of every loop for the frame-level tasks (the pipeline's ``cine_transform``),
every video once through the evaluation chain (evenly spaced clips) for clip-level ones.

A video that cannot be read is left out of a score, never replaced by another (a held-out
set with a duplicate is a different test set), and recorded: :class:`ScoredVideos` keeps
the list, which each score reports as ``"left_out"`` (file and error). The data module's
:class:`~ultrassl.data.bad_clips.BadClipPolicy` applies: ``"raise"`` stops at the first
unreadable video, and more left out than its limit stops the scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pandas as pd
import torch
from torch.utils.data import default_collate

from ultrassl.data.bad_clips import BadClipLimitError, BadClipPolicy, failure_line
from ultrassl.data.datasets import ManifestDataset
from ultrassl.errors import ClipReadError


class ScoredVideos:
    """The items of a :class:`ManifestDataset`, read in order, one pass per iteration; those
    that fail to read are left out and listed in :attr:`left_out` (see the module docstring).

    Args:
        dataset: one item per video.
        policy: what an unreadable video does (default :class:`BadClipPolicy`'s).
        role: what the videos are, for messages ("held-out videos", "training videos").

    Attributes:
        left_out: ``{"path", "error"}`` of each video the last pass left out.
    """

    def __init__(self, dataset: ManifestDataset, policy: BadClipPolicy | None = None, role: str = "held-out videos"):
        self.dataset = dataset
        self.policy = policy or BadClipPolicy()
        self.role = role
        self.left_out: list[dict[str, str]] = []

    def __len__(self) -> int:
        """Videos listed (read or not)."""
        return len(self.dataset)

    def __iter__(self) -> Iterator[Any]:
        self.left_out = []
        limit = self.policy.limit(len(self.dataset))
        read = 0
        for index in range(len(self.dataset)):
            try:
                item = self.dataset[index]
            except ClipReadError as exc:
                if self.policy.on_error == "raise":
                    raise
                path, _, error = failure_line(exc).partition("\t")
                self.left_out.append({"path": path, "error": error})
                if len(self.left_out) > limit:
                    raise BadClipLimitError(
                        f"{len(self.left_out)} of {len(self.dataset)} {self.role} failed to read, more than the "
                        f"limit of {limit} (data.init_args.bad_clips.max_bad_clips = {self.policy.max_bad_clips}); "
                        f"the last: {path}: {error}") from exc
                continue
            read += 1
            yield item
        if len(self.dataset) and not read:
            raise BadClipLimitError(f"none of the {len(self.dataset)} {self.role} could be read")

    def report(self, key: str = "left_out") -> dict[str, Any]:
        """``{key: [...]}`` for a scored result: the videos left out (empty when all were read;
        ``"left_out_training"`` for the training videos a baseline or a retrieval bank read)."""
        return {key: list(self.left_out)} if self.left_out else {}


def _policy(datamodule) -> BadClipPolicy:
    return getattr(datamodule, "bad_clips", None) or BadClipPolicy()


def held_out_table(datamodule) -> pd.DataFrame:
    """The manifest rows the data module holds out (its validation or test split)."""
    _, val = datamodule.split_tables()
    if val is None:
        raise ValueError("the data has no held-out videos to score (no val/test split)")
    return val


def held_out_loops(datamodule, table: pd.DataFrame | None = None) -> ScoredVideos:
    """Each video of ``table`` (default: the held-out ones) as one whole loop ``(C, N, H, W)``
    with its annotations (the pipeline's ``cine_transform``); unreadable ones left out."""
    role = "held-out videos" if table is None else "training videos"
    table = held_out_table(datamodule) if table is None else table
    return ScoredVideos(ManifestDataset(table, datamodule.pipeline.cine_transform(), label_column=None),
                        _policy(datamodule), role)


def evaluation_items(datamodule, table: pd.DataFrame | None = None) -> ScoredVideos:
    """Each video of ``table`` (default: the held-out ones) once, through the pipeline's
    evaluation chain (evenly spaced clips: deterministic); unreadable ones left out."""
    role = "held-out videos" if table is None else "training videos"
    table = held_out_table(datamodule) if table is None else table
    return ScoredVideos(ManifestDataset(table, datamodule.pipeline.val_transform(), label_column=datamodule.label_column),
                        _policy(datamodule), role)


def in_order(items: Iterable[Any], batch_size: int) -> Iterator[Any]:
    """``items`` collated in batches of ``batch_size``, in order (in this process: the items
    are read here, so that :class:`ScoredVideos` sees every failure)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == batch_size:
            yield default_collate(batch)
            batch = []
    if batch:
        yield default_collate(batch)


@torch.no_grad()
def features_and_labels(encode: Callable[[torch.Tensor], torch.Tensor], items: Iterable[Any], batch_size: int,
                        device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``encode(batch["clip"])`` of every item ``(N, F)`` and the items' labels ``(N,)``."""
    features, labels = [], []
    for batch in in_order(items, batch_size):
        features.append(encode(batch["clip"].to(device)).cpu())
        labels.append(batch["label"])
    return torch.cat(features), torch.cat(labels)


def spread(n: int, k: int) -> torch.Tensor:
    """``k`` positions spread evenly over ``range(n)``, centred (one pick is the middle)."""
    return ((torch.arange(k) + 0.5) * n / k).long().clamp(max=n - 1).unique()


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
