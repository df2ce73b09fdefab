"""Whole decoded loops kept in memory: :class:`LoopCache`.

A pretext task or a frame classifier reads a few frames of a loop per sample, many times per
epoch. Decoding those frames costs most of a step on a CPU (an mp4 decodes from the last key
frame, a JPEG DICOM frame by frame), while a small data set's decoded loops fit in memory.
The cache decodes a loop once per process and serves later reads from memory. It lives in
memory only (no file is written, so no pixel of a patient leaves the process), holds at most
``max_bytes`` of frames and drops the least recently used loop first. A data set larger than
the cache pays a whole-loop decode on every miss: leave the cache off for archives.

Written here because MONAI's ``CacheDataset`` caches the output of the deterministic
transforms per item, and our items draw their frames at random from the loop.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ultrassl.errors import FrameCountMismatchError
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
        self._loops: OrderedDict[tuple[str, int, int], Clip] = OrderedDict()
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
        stat = path.stat() if path.is_file() else None
        key = None if stat is None else (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        loop = self._loops.get(key) if key is not None else None
        if loop is None:
            self.misses += 1
            loop = read_clip(path, None, expected_n_frames=expected_n_frames, info=info, format=format)
            if key is not None:
                self._store(key, loop)
        else:
            self.hits += 1
            self._loops.move_to_end(key)
            if expected_n_frames is not None and int(expected_n_frames) != loop.info.n_frames:
                raise FrameCountMismatchError(
                    f"expected {int(expected_n_frames)} frames, the file holds {loop.info.n_frames}", str(path)
                )
        indices = check_frame_indices(frame_indices, loop.info.n_frames, path)
        return Clip(frames=loop.frames[indices], frame_indices=indices, timestamps_s=loop.timestamps_s[indices],
                    info=loop.info)

    def _store(self, key: tuple[str, int, int], loop: Clip) -> None:
        size = int(loop.frames.nbytes)
        if size > self.max_bytes:
            return
        self._loops[key] = loop
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, dropped = self._loops.popitem(last=False)
            self.bytes -= int(dropped.frames.nbytes)
