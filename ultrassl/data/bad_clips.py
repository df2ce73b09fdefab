"""What a run does with a clip it cannot read: replace it and record it, within a limit.

A multi-day run over a hospital archive meets damaged files that indexing did not catch (a
JPEG frame broken in the middle of a loop). Losing the run to one of them is worse than
training on another clip in its place, as long as every replacement is recorded and a broken
archive still stops the run. :class:`BadClipPolicy` says which; ``SeededItems`` (the data
module's items) applies it, and :class:`ultrassl.engine.bad_clips.BadClipMonitor` records the
replacements in the run folder and enforces the limit.

Only :class:`~ultrassl.errors.ClipReadError` (a file that cannot be read) is replaced; any
other error (a bug, a bad config) still ends the run at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ultrassl.errors import ClipReadError, UltrasslError

#: batch key (one string per sample, "" when the sample was read at the first try) that
#: carries the failures a sample replaced: one ``path<TAB>error`` line each
READ_FAILURES_KEY = "read_failures"


class BadClipLimitError(UltrasslError):
    """More clips failed to read than the run's :class:`BadClipPolicy` allows."""


@dataclass(frozen=True)
class BadClipPolicy:
    """How a run treats clips that fail to read.

    Attributes:
        on_error: ``"skip"``: replace the clip by another one drawn with the item's seed (same
            seed, same replacements) and record it; ``"raise"``: stop at the first one.
        max_bad_clips: the most failed reads a run may replace before it stops: a count
            (>= 1) over the whole run, or a fraction (< 1) of the items of one training epoch.
        max_attempts: replacements tried for one item before giving up (a data set where
            nothing reads).
    """

    on_error: Literal["skip", "raise"] = "skip"
    max_bad_clips: float = 0.05
    max_attempts: int = 8

    def __post_init__(self):
        if self.on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {self.on_error!r}")
        if not self.max_bad_clips > 0:
            raise ValueError(f"max_bad_clips must be a count >= 1 or a fraction in (0, 1), got {self.max_bad_clips}")
        if self.max_bad_clips >= 1 and self.max_bad_clips != int(self.max_bad_clips):
            raise ValueError(f"max_bad_clips >= 1 is a count and must be whole, got {self.max_bad_clips}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def limit(self, items_per_epoch: int) -> int:
        """The most failed reads allowed, for an epoch of ``items_per_epoch`` items."""
        if self.max_bad_clips >= 1:
            return int(self.max_bad_clips)
        return max(1, int(self.max_bad_clips * items_per_epoch))

    @classmethod
    def from_config(cls, value: Any) -> BadClipPolicy:
        """A policy from itself, None (the default), ``"skip"``/``"raise"`` or a dict of fields."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(on_error=value)  # type: ignore[arg-type]
        if isinstance(value, dict):
            unknown = set(value) - {"on_error", "max_bad_clips", "max_attempts"}
            if unknown:
                raise ValueError(f"bad_clips: unknown keys {sorted(unknown)}; expected on_error, max_bad_clips, "
                                 "max_attempts")
            return cls(**value)
        raise TypeError(f"bad_clips must be 'skip', 'raise' or a dict, got {type(value).__name__}")


def failure_line(exc: ClipReadError) -> str:
    """One ``path<TAB>ErrorClass: cause`` line (tabs and newlines of the cause flattened)."""
    cause = " ".join(str(exc.cause).split())
    return f"{exc.path or ''}\t{type(exc).__name__}: {cause}"


def parse_failures(text: str) -> list[tuple[str, str]]:
    """``(path, error)`` pairs from a sample's :data:`READ_FAILURES_KEY` string."""
    pairs = []
    for line in str(text or "").splitlines():
        if line:
            path, _, error = line.partition("\t")
            pairs.append((path, error))
    return pairs


def attach_failures(sample: Any, failures: list[str]) -> Any:
    """``sample`` (a dict, or a list of dicts from multi-clip pipelines) with the failure lines."""
    text = "\n".join(failures)
    if isinstance(sample, dict):
        return {**sample, READ_FAILURES_KEY: text}
    if isinstance(sample, list):
        return [attach_failures(s, failures) for s in sample]
    return sample
