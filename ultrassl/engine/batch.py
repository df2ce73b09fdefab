"""Reading a batch: clips and the transform parameters recorded beside them.

Transforms record their draws as plain numbers and lists under
``sample["{key}_params"][transform_name][field]`` (see :mod:`ultrassl.transforms.base`).
After collation a number becomes a tensor ``(B,)`` and a list of P numbers becomes P
tensors ``(B,)``; :func:`batch_param` turns either back into one tensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ultrassl.transforms.base import params_key


def batch_param(batch: Mapping[str, Any], key: str, transform: str, field: str) -> torch.Tensor:
    """The collated parameter ``field`` drawn by ``transform`` for ``key``.

    Returns ``(B,)`` for a scalar field and ``(B, P)`` for a list field.
    Raises ``KeyError`` naming what is missing (e.g. the transform was not in the pipeline).
    """
    record: Any = batch
    for level, name in enumerate((params_key(key), transform, field)):
        if not isinstance(record, Mapping) or name not in record:
            path = "][".join(repr(n) for n in (params_key(key), transform, field)[: level + 1])
            found = sorted(map(str, record)) if isinstance(record, Mapping) else type(record).__name__
            raise KeyError(
                f"batch has no [{path}] (found {found}): the data pipeline must apply the "
                f"transform {transform!r} to {key!r}"
            )
        record = record[name]
    if isinstance(record, torch.Tensor):
        return record
    if isinstance(record, (list, tuple)) and record and isinstance(record[0], torch.Tensor):
        return torch.stack(list(record), dim=1)  # P tensors (B,) -> (B, P)
    return torch.as_tensor(record)


def batch_size_of(batch: Any) -> int | None:
    """Size of the batch dimension of the first top-level tensor, or None if there is none."""
    if isinstance(batch, Mapping):
        values = list(batch.values())
    else:
        values = list(batch) if isinstance(batch, (list, tuple)) else [batch]
    for value in values:
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return None
