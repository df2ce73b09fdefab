"""What Lightning prints that is noise to the users of this package, and the one place that hides it.

Always hidden: the advertisement for Lightning's cloud logger, and a deprecation warning
that Lightning 2.6 triggers in torch 2.13's pytree module once per run. With
``info=False`` (the transfer arms of ``ultrassl evaluate``, which print their own lines):
also Lightning's informational lines (accelerator summary, tips, stop reasons, seeds) and
its warning about modules in evaluation mode, which a frozen encoder or frozen BatchNorm
statistics are meant to be.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

#: loggers whose informational lines ``info=False`` hides
_INFO_LOGGERS = ("lightning.pytorch", "lightning.fabric")


class _DropAdvert(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


@contextlib.contextmanager
def quiet_lightning(info: bool = True) -> Iterator[None]:
    """Within the block, hide Lightning's noise (see the module docstring); ``info=False``
    hides its informational lines too. Everything is restored on leaving."""
    advert, drop = logging.getLogger("lightning.pytorch.utilities.rank_zero"), _DropAdvert()
    advert.addFilter(drop)
    levels = {name: logging.getLogger(name).level for name in _INFO_LOGGERS}
    if not info:
        for name in _INFO_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            if not info:
                warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
            yield
    finally:
        advert.removeFilter(drop)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
