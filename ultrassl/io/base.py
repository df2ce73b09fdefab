"""The interface every reader implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Sequence

import numpy as np

from ultrassl.io.types import Clip, ClipInfo


class ClipReader(ABC):
    """Reads clips from one family of files.

    Readers may raise any exception from their decoder: :func:`ultrassl.io.read_clip`
    turns foreign exceptions into :class:`~ultrassl.errors.CorruptFileError` naming the
    file, and checks the frame count and shape of what comes back. Readers raise the
    typed errors of :mod:`ultrassl.errors` themselves where they know the cause better.
    """

    #: short name written to the manifest's ``format`` column
    name: str = ""
    #: lower-case file suffixes this reader claims (``".dcm"``); folders use ``"/"``
    suffixes: tuple[str, ...] = ()
    #: whether reading a frame means decoding it; False for frames stored decoded (packed
    #: clips), which caches of whole decoded loops then leave alone
    decodes: bool = True

    def can_read(self, path: Path) -> bool:
        """Whether ``path`` looks like this reader's format (cheap: suffix or magic bytes)."""
        return path.suffix.lower() in self.suffixes

    @abstractmethod
    def probe(self, path: Path) -> ClipInfo:
        """Header facts, without decoding every frame."""

    @abstractmethod
    def read(
        self,
        path: Path,
        frame_indices: np.ndarray,
        info: ClipInfo,
        with_audio: bool = False,
    ) -> Clip:
        """Decode the frames at ``frame_indices`` (sorted or not, repeats allowed).

        ``frame_indices`` are already checked to lie in ``[0, info.n_frames)``. Decode only
        what is needed where the format allows it. Return frames in the order asked.
        """

    def check_integrity(self, path: Path, info: ClipInfo) -> None:
        """After every frame decoded: checks that decoding cannot make (a stored checksum).
        By default none; formats that carry one raise :class:`~ultrassl.errors.CorruptFileError`."""

    def validate(self, path: Path, info: ClipInfo) -> None:
        """Check that the file decodes: by default its first, middle and last frames."""
        n = info.n_frames
        self.read(path, np.unique(np.array([0, n // 2, n - 1], dtype=np.int64)), info)


def default_timestamps(frame_indices: Sequence[int], fps: float | None) -> np.ndarray:
    """Seconds from the start of the file for each index, at a constant frame rate."""
    idx = np.asarray(frame_indices, dtype=np.float64)
    return idx / fps if fps else np.full(idx.shape, np.nan)
