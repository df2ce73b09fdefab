"""What the tasks' scoring shares: the held-out videos of a data module, read deterministically.

Scores are computed on whole held-out videos, not on the training-time validation draws:
every frame of every loop for the frame-level tasks (the pipeline's ``cine_transform``),
every video once through the evaluation chain (evenly spaced clips) for clip-level ones.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch
from torch.utils.data import DataLoader, default_collate

from ultrassl.data.datasets import ManifestDataset


def held_out_table(datamodule) -> pd.DataFrame:
    """The manifest rows the data module holds out (its validation or test split)."""
    _, val = datamodule.split_tables()
    if val is None:
        raise ValueError("the data has no held-out videos to score (no val/test split)")
    return val


def held_out_loops(datamodule, table: pd.DataFrame | None = None) -> ManifestDataset:
    """Each video of ``table`` (default: the held-out ones) as one whole loop ``(C, N, H, W)``
    with its annotations (the pipeline's ``cine_transform``)."""
    table = held_out_table(datamodule) if table is None else table
    return ManifestDataset(table, datamodule.pipeline.cine_transform(), label_column=None)


def evaluation_items(datamodule, table: pd.DataFrame | None = None) -> ManifestDataset:
    """Each video of ``table`` (default: the held-out ones) once, through the pipeline's
    evaluation chain (evenly spaced clips: deterministic)."""
    table = held_out_table(datamodule) if table is None else table
    return ManifestDataset(table, datamodule.pipeline.val_transform(), label_column=datamodule.label_column)


def in_order(dataset, batch_size: int) -> DataLoader:
    """``dataset`` in batches, in order."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=default_collate)


@torch.no_grad()
def features_and_labels(encode: Callable[[torch.Tensor], torch.Tensor], dataset, batch_size: int,
                        device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``encode(batch["clip"])`` of every item ``(N, F)`` and the items' labels ``(N,)``."""
    features, labels = [], []
    for batch in in_order(dataset, batch_size):
        features.append(encode(batch["clip"].to(device)).cpu())
        labels.append(batch["label"])
    return torch.cat(features), torch.cat(labels)


def spread(n: int, k: int) -> torch.Tensor:
    """``k`` positions spread evenly over ``range(n)``, centred (one pick is the middle)."""
    return ((torch.arange(k) + 0.5) * n / k).long().clamp(max=n - 1).unique()


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
