"""Whole decoded loops kept in memory: :class:`LoopCache`.

A pretext task or a frame classifier reads a few frames of a loop per sample, many times per
epoch. Decoding those frames costs most of a step on a CPU (an mp4 decodes from the last key
frame, a JPEG DICOM frame by frame), while a small data set's decoded loops fit in memory.
The cache decodes a loop once per process and serves later reads from memory. It lives in
memory only (no file is written, so no pixel of a patient leaves the process), holds at most
``max_bytes`` of frames and drops the least recently used loop first. The loaders of a process
share one (:func:`shared_loop_cache`): the runs of a benchmark, each with its own data set,
decode a loop once between them instead of once each. A data set larger than
the cache pays a whole-loop decode on every miss: leave the cache off for archives.

Written here because MONAI's ``CacheDataset`` caches the output of the deterministic
transforms per item, and our items draw their frames at random from the loop.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ultrassl.errors import FrameCountMismatchError
from ultrassl.io.packed import clip_stamp
from ultrassl.io.registry import check_frame_indices, get_reader, read_clip
from ultrassl.io.types import Clip, ClipInfo


class LoopCache:
    """Least-recently-used cache of whole decoded loops, bounded in bytes.

    Args:
        max_bytes: most bytes of uint8 frames held; a loop larger than this is read
            without being cached.
    """

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._loops: OrderedDict[tuple[str, int, int], Clip] = OrderedDict()  # by clip_stamp
        self._lock = threading.Lock()  # the app's threads may share a process's cache
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._loops)

    def __getstate__(self) -> dict:
        # a worker process starts with an empty cache of the same size, not a copy of ours
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_bytes"])

    def read(
        self,
        path: str | os.PathLike,
        frame_indices: Sequence[int] | np.ndarray,
        *,
        expected_n_frames: int | None = None,
        info: ClipInfo | None = None,
        format: str | None = None,
    ) -> Clip:
        """The frames ``frame_indices`` of ``path`` as :func:`~ultrassl.io.read_clip` returns
        them (same checks, same typed errors), from memory when the loop was read before and
        the file has not changed since (its modification time and size)."""
        path = Path(path)
        if not get_reader(path, format or (info.format if info is not None else None)).decodes:
            # frames stored decoded: reading only those asked for is cheaper than a second copy
            return read_clip(path, frame_indices, expected_n_frames=expected_n_frames, info=info, format=format)
        key = clip_stamp(path) if path.is_file() else None  # a missing file: read_clip's typed error
        with self._lock:
            loop = self._loops.get(key) if key is not None else None
            if loop is None:
                self.misses += 1
            else:
                self.hits += 1
                self._loops.move_to_end(key)
        if loop is None:
            loop = read_clip(path, None, expected_n_frames=expected_n_frames, info=info, format=format)
            if key is not None:
                with self._lock:
                    self._store(key, loop)
        elif expected_n_frames is not None and int(expected_n_frames) != loop.info.n_frames:
            raise FrameCountMismatchError(
                f"expected {int(expected_n_frames)} frames, the file holds {loop.info.n_frames}", str(path)
            )
        indices = check_frame_indices(frame_indices, loop.info.n_frames, path)
        return Clip(frames=loop.frames[indices], frame_indices=indices, timestamps_s=loop.timestamps_s[indices],
                    info=loop.info)

    def clear(self) -> None:
        """Drop every loop (the counts of hits and misses too)."""
        with self._lock:
            self._loops.clear()
            self.bytes = self.hits = self.misses = 0

    def _store(self, key: tuple[str, int, int], loop: Clip) -> None:
        size = int(loop.frames.nbytes)
        if size > self.max_bytes or key in self._loops:
            return
        self._loops[key] = loop
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self._loops.popitem(last=False)
            self.bytes -= int(dropped.frames.nbytes)


_shared: LoopCache | None = None
_shared_lock = threading.Lock()


def shared_loop_cache(max_bytes: int) -> LoopCache:
    """This process's loop cache, its budget raised to ``max_bytes`` if that is more.

    Every loader of a process reads through the one cache, bounded by the largest budget any
    of them asked for. A worker process forked from this one starts with a copy of what it
    holds (its pages are shared until written); a spawned one starts empty.
    """
    global _shared
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
    with _shared_lock:
        if _shared is None:
            _shared = LoopCache(int(max_bytes))
        elif max_bytes > _shared.max_bytes:
            _shared.max_bytes = int(max_bytes)
        return _shared
