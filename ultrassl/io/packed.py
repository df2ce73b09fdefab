"""Clips packed into WebDataset tar shards by ``ultrassl data pack``, read by random access.

A packed clip is addressed as ``<shard>.tar::<key>`` (the manifest's ``path`` column, format
``packed``), so every reader of the project (data module, downstream scoring, the app)
opens it like any other file. A shard is a plain POSIX tar in WebDataset's layout: the
members of one clip share its key,

==================== =========================================================
member               content
==================== =========================================================
``<key>.frames.npy`` uint8 ``(T, H, W, C)``, the decoded clip (resized when packing
                     was asked to), stored uncompressed
``<key>.info.json``  ``n_frames``, ``height``, ``width``, ``channels``, ``fps``,
                     ``spacing_mm`` (after resizing), ``timestamps_s``, the SHA-256 of
                     the frames member (``frames_sha256``), the source's
                     non-identifying ``metadata`` and, with audio, ``audio_sample_rate``
                     and ``audio_start_s``
``<key>.audio.npy``  float32 ``(channels, samples)`` in [-1, 1] from ``audio_start_s``
``<key>.row.json``   the source row's annotations (label, split, subject, ...)
==================== =========================================================

so the same shards stream through ``webdataset.WebDataset`` from local disk, HTTP or object
storage. Reading one clip here needs no decoder: the frames member is mapped from the tar
file and only the frames asked for are copied (the point of packing: DICOM JPEG and H.264
decode every epoch, a packed clip is a memory copy).

The member table of a shard is read once per process (tar headers only) and kept while the
shard's size and modification time are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from ultrassl.errors import CorruptFileError, FileAccessError
from ultrassl.io.base import ClipReader
from ultrassl.io.types import Clip, ClipInfo

#: separates the shard from the clip's key in a packed clip's path
PACKED_SEPARATOR = "::"
#: member name suffixes of a packed clip
FRAMES, INFO, AUDIO, ROW = "frames.npy", "info.json", "audio.npy", "row.json"
#: shards whose member tables one process keeps
_TABLES_KEPT = 64


def split_packed(path: str | os.PathLike) -> tuple[Path, str] | None:
    """``(shard, key)`` of a packed clip's path, or None for any other path."""
    text = os.fspath(path)
    shard, separator, key = text.rpartition(PACKED_SEPARATOR)
    if not separator or not key or not shard.endswith(".tar") or "/" in key:
        return None
    return Path(shard), key


def clip_file(path: str | os.PathLike) -> Path:
    """The file on disk holding the clip at ``path``: the shard of a packed clip, else ``path``."""
    packed = split_packed(path)
    return Path(path) if packed is None else packed[0]


def clip_stamp(path: str | os.PathLike) -> tuple[str, int, int]:
    """``(identity, size, modification time in ns)`` of a clip, for caches that must notice a
    changed file: the path as given with its file's device and inode (and a packed clip's
    key), and the file's size and modification time.

    One ``stat`` gives it all (resolving the path took an ``lstat`` per path component, three
    times per training item). The inode tells a file moved into the path's place from the one
    that was there, even with the same size and modification time, which file systems record
    only to the millisecond or so; the path keeps a new file that reuses a deleted file's inode
    from matching it. Two paths to one file (a symlink) are two identities.

    Raises:
        OSError: the file does not exist or cannot be examined.
    """
    packed = split_packed(path)
    stat = os.stat(path if packed is None else packed[0])
    identity = f"{os.fspath(path)}|{stat.st_dev}:{stat.st_ino}"  # a packed clip's path holds its key
    return identity, stat.st_size, stat.st_mtime_ns


def packed_path(shard: str | os.PathLike, key: str) -> str:
    """The path naming clip ``key`` of ``shard``."""
    if not key or "/" in key or "." in key or PACKED_SEPARATOR in key:
        raise ValueError(f"a packed clip's key must be non-empty without '/', '.' or '::', got {key!r}")
    return f"{os.fspath(shard)}{PACKED_SEPARATOR}{key}"


class _MemberTables:
    """Per-process cache: shard -> {member name: (data offset, size)}."""

    def __init__(self):
        self._tables: OrderedDict[str, tuple[tuple[int, int], dict[str, tuple[int, int]]]] = OrderedDict()

    def members(self, shard: Path, clip: Path) -> dict[str, tuple[int, int]]:
        stat = shard.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        name = str(shard.resolve())
        cached = self._tables.get(name)
        if cached is not None and cached[0] == stamp:
            self._tables.move_to_end(name)
            return cached[1]
        try:
            with tarfile.open(shard, mode="r:") as archive:
                table = {m.name: (m.offset_data, m.size) for m in archive.getmembers() if m.isfile()}
        except (tarfile.TarError, EOFError) as exc:
            raise CorruptFileError(f"its shard {shard.name} is not a readable tar (truncated copy?) "
                                   f"({type(exc).__name__}: {exc})", str(clip)) from exc
        self._tables[name] = (stamp, table)
        while len(self._tables) > _TABLES_KEPT:
            self._tables.popitem(last=False)
        return table


_TABLES = _MemberTables()


class PackedReader(ClipReader):
    """Reads clips from the tar shards ``ultrassl data pack`` writes (see the module doc)."""

    name = "packed"
    suffixes = ()
    decodes = False

    def can_read(self, path: Path) -> bool:
        return split_packed(path) is not None

    def _member(self, path: Path, suffix: str, required: bool = True) -> tuple[Path, int, int] | None:
        parts = split_packed(path)
        if parts is None:
            raise FileAccessError("not a packed clip's path ('<shard>.tar::<key>')", str(path))
        shard, key = parts
        entry = _TABLES.members(shard, path).get(f"{key}.{suffix}")
        if entry is None:
            if not required:
                return None
            raise CorruptFileError(f"the shard holds no member {key}.{suffix} (a truncated shard, or not "
                                   "the manifest's shard)", str(path))
        offset, size = entry
        return shard, offset, size

    def _bytes(self, path: Path, suffix: str) -> bytes:
        shard, offset, size = self._member(path, suffix)
        with open(shard, "rb") as handle:
            handle.seek(offset)
            data = handle.read(size)
        if len(data) != size:
            raise CorruptFileError(f"the shard ends inside member {suffix} (truncated copy?)", str(path))
        return data

    def _array(self, path: Path, suffix: str) -> np.ndarray:
        """The ``.npy`` member mapped read-only from the shard (no copy)."""
        shard, offset, size = self._member(path, suffix)
        with open(shard, "rb") as handle:
            handle.seek(offset)
            version = npy_format.read_magic(handle)
            read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, fortran, dtype = read_header(handle)
            header = handle.tell() - offset
        expected = int(np.prod(shape)) * dtype.itemsize
        if fortran or dtype.hasobject or header + expected != size:
            raise CorruptFileError(f"member {suffix} does not hold the array its header declares", str(path))
        if shard.stat().st_size < offset + size:
            raise CorruptFileError(f"the shard ends inside member {suffix} (truncated copy?)", str(path))
        if expected == 0:
            return np.zeros(shape, dtype=dtype)
        return np.memmap(shard, dtype=dtype, mode="r", offset=offset + header, shape=tuple(shape))

    def probe(self, path: Path) -> ClipInfo:
        try:
            facts = json.loads(self._bytes(path, INFO).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptFileError(f"member {INFO} is not JSON ({exc})", str(path)) from exc
        spacing = facts.get("spacing_mm")
        return ClipInfo(
            path=str(path), format=self.name, n_frames=int(facts["n_frames"]), height=int(facts["height"]),
            width=int(facts["width"]), channels=int(facts["channels"]),
            fps=float(facts["fps"]) if facts.get("fps") else None,
            spacing_mm=None if spacing is None else (float(spacing[0]), float(spacing[1])),
            has_audio=self._member(path, AUDIO, required=False) is not None,
            metadata={**facts.get("metadata", {}), "packed_timestamps_s": facts.get("timestamps_s"),
                      "frames_sha256": facts.get("frames_sha256"),
                      "audio_sample_rate": facts.get("audio_sample_rate"),
                      "audio_start_s": facts.get("audio_start_s")},
        )

    def read(self, path: Path, frame_indices: np.ndarray, info: ClipInfo, with_audio: bool = False) -> Clip:
        frames = self._array(path, FRAMES)
        if frames.ndim != 4 or frames.shape != (info.n_frames, info.height, info.width, info.channels):
            raise CorruptFileError(f"frames member has shape {frames.shape}, its info says "
                                   f"{(info.n_frames, info.height, info.width, info.channels)}", str(path))
        chosen = np.ascontiguousarray(frames[frame_indices])
        times = info.metadata.get("packed_timestamps_s")
        if times is None or len(times) != info.n_frames:
            raise CorruptFileError("info member lacks one timestamp per frame", str(path))
        timestamps = np.asarray(times, dtype=np.float64)[frame_indices]
        clip = Clip(frames=chosen, frame_indices=frame_indices, timestamps_s=timestamps, info=info)
        if with_audio and info.has_audio:
            clip.audio, clip.audio_sample_rate = self._audio_span(path, info, timestamps)
        return clip

    def check_integrity(self, path: Path, info: ClipInfo) -> None:
        """The frames member's SHA-256 against the one recorded when packing."""
        expected = info.metadata.get("frames_sha256")
        if not expected:
            return
        shard, offset, size = self._member(path, FRAMES)
        digest = hashlib.sha256()
        with open(shard, "rb") as handle:
            handle.seek(offset)
            remaining = size
            while remaining > 0:
                block = handle.read(min(remaining, 1 << 22))
                if not block:
                    break
                digest.update(block)
                remaining -= len(block)
        if remaining or digest.hexdigest() != expected:
            raise CorruptFileError("the frames differ from those packed (SHA-256 mismatch: the shard was damaged)",
                                   str(path))

    def _audio_span(self, path: Path, info: ClipInfo, timestamps: np.ndarray) -> tuple[np.ndarray, int]:
        """The stored audio from the earliest frame asked for to one frame past the last, as the
        video reader returns it."""
        audio = self._array(path, AUDIO)
        rate = int(info.metadata["audio_sample_rate"])
        start_s = float(info.metadata.get("audio_start_s") or 0.0)
        period = 1.0 / info.fps if info.fps else 0.0
        first = int(round((float(np.min(timestamps)) - start_s) * rate))
        last = int(round((float(np.max(timestamps)) + period - start_s) * rate))
        return np.array(audio[:, max(first, 0) : max(last, 0)], dtype=np.float32), rate
