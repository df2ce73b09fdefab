"""A least-recently-used store of model outputs within a byte budget.

Streamlit's caches bound their entries by count, and a model's maps over a long loop take
hundreds of MB: eight of them would take a small server's memory. This store counts the
bytes of the numpy arrays it holds and drops the least recently used entries past its
budget. Written here because Streamlit's caches have no byte bound and the page needs one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

import numpy as np


def nbytes(value: Any) -> int:
    """Bytes of the numpy arrays in ``value`` (a dict, list or array; other values count 0)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    return 0


class ByteBudgetLRU:
    """``get``/``put`` by key, holding at most ``max_bytes`` of arrays (an entry larger than the
    budget is not kept). Safe to share between the page's sessions (one lock)."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key not in self._entries:
                return None
            self._entries.move_to_end(key)
            return self._entries[key][0]

    def put(self, key: Hashable, value: Any) -> None:
        size = nbytes(value)
        with self._lock:
            if key in self._entries:
                self.bytes -= self._entries.pop(key)[1]
            if size > self.max_bytes:
                return
            self._entries[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped

    def __len__(self) -> int:
        return len(self._entries)
