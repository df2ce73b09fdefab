"""torch's intra-op thread count, set for a block.

Written here because torch has ``set_num_threads`` but no context manager for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_thread(when: bool = True) -> Iterator[None]:
    """Run the block on one intra-op thread (when ``when``), then restore the count."""
    threads = torch.get_num_threads()
    if not when or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
