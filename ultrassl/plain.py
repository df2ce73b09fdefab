"""Plain Python values for JSON files and checkpoints.

Results tables, saved hyperparameters (a downstream model's encoder spec and pipeline) and
the parsed configs they come from hold numpy and torch scalars, tuples, paths and
jsonargparse namespaces; ``json`` and ``torch.load(weights_only=True)`` want dicts, lists,
strings, ints, floats and None. :func:`plain` is the one conversion.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def plain(value: Any) -> Any:
    """``value`` as plain Python: mappings (and objects with ``as_dict()``, such as
    jsonargparse namespaces) become dicts with string keys, lists and tuples lists, numpy and
    one-element torch scalars ints or floats, paths strings; non-finite floats become None
    (JSON has no NaN). Everything else is returned as it is."""
    if hasattr(value, "as_dict") and not isinstance(value, Mapping):
        value = value.as_dict()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value
