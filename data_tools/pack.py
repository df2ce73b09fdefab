"""``ultrassl data pack``: decode a manifest's clips once into WebDataset tar shards.

Training decodes its clips again every epoch: a JPEG DICOM frame by frame, an mp4 from its last
key frame. Packing decodes each ok clip of a manifest once and writes its uint8 frames (at the
source's size, or resized to ``size``), timing, spacing, audio and annotations into tar shards
in WebDataset's layout (:mod:`ultrassl.io.packed`), and writes ``OUT/manifest.csv`` whose rows
name the packed clips (``<shard>.tar::<key>``, format ``packed``) with the source's labels,
splits and sidecars. That manifest goes wherever a manifest goes: every objective, downstream
task and the app read it unchanged, with the same samplers, so a run with the same seed sees
the same batches as from the source files when the pack keeps the source's size.

Why WebDataset's format: a shard is a plain tar, written with ``webdataset.TarWriter`` and
readable by ``webdataset.WebDataset`` from local disk, HTTP or object storage (``pipe:`` URLs)
on any number of nodes, with no server or database; LitData and MosaicML Streaming, the other
engines that fit, both depend on PyTorch's image package, which cannot be installed beside
this project's pinned CPU torch (see pyproject.toml). Within this project the shards are read by random access (frames mapped from
the tar), so the data module's per-rank seeded sampler shards and shuffles them across
processes and nodes exactly as it does files.

Many machines: ``part=(i, n)`` packs only the i-th of n contiguous slices of the manifest's ok
rows (``--part i/N``, one task of a cluster's job array each). Each part writes its shards
(``shards/part-IIII-of-NNNN-SSSSSS.tar``) and then its table (``parts/part-IIII-of-NNNN.csv``)
atomically; a part whose table exists is done and is skipped when run again, one killed
before that is packed again from the start (its partial shards are replaced). The part that
finds all n tables written assembles ``manifest.csv`` and ``shards.json`` (the shard list with
sample counts, WebDataset's index form); :func:`assemble` does it on demand.

Nothing identifying is carried: the source paths (hospital exports are often named after
the patient) are not written; a packed row records its position among the source manifest's
ok rows (``source_row``) and ``pack.json`` the source manifest's SHA-256. Clips that fail to
decode are written as ``refused`` rows with the reader's typed error, as the indexer does.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ultrassl.atomic import write_text_atomically
from ultrassl.data.manifest import (
    FLOAT_COLUMNS,
    INT_COLUMNS,
    REQUIRED_COLUMNS,
    manifest_hash,
    read_manifest,
    write_manifest,
)
from ultrassl.errors import ClipReadError, ManifestError
from ultrassl.io import read_clip
from ultrassl.io.packed import AUDIO, FRAMES, INFO, ROW, packed_path

#: default largest shard (bytes) and most clips per shard
SHARD_BYTES = 1 << 30
SHARD_CLIPS = 10_000
#: annotation sidecars copied beside the shards (and into them)
SIDECARS = ("frame_labels", "fixations")
#: columns of the source row that describe the file, rewritten for the packed clip
_FILE_COLUMNS = set(REQUIRED_COLUMNS) | {"source_row"}


@dataclass(frozen=True)
class PackResult:
    """What one part did: clips packed, refused, the shards written and whether the part was
    already done (``skipped``); ``manifest`` when this part assembled ``manifest.csv``."""

    part: tuple[int, int]
    packed: int
    refused: int
    shards: tuple[str, ...]
    skipped: bool
    manifest: Path | None


def parse_part(text: str) -> tuple[int, int]:
    """``"i/N"`` (0-based i) as ``(i, N)``; ValueError when malformed."""
    try:
        index, total = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--part takes i/N with whole numbers, e.g. 0/8, got {text!r}") from None
    if total < 1 or not 0 <= index < total:
        raise ValueError(f"--part i/N needs 0 <= i < N, got {text!r}")
    return index, total


def _part_name(part: tuple[int, int]) -> str:
    return f"part-{part[0]:04d}-of-{part[1]:04d}"


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(T, H, W, C)`` frames resized to ``size`` (bilinear with antialiasing, as the
    pipelines' :class:`~ultrassl.transforms.spatial.ResizeClipd` resizes); unchanged when equal."""
    if tuple(frames.shape[1:3]) == tuple(size):
        return frames
    resized = []
    for start in range(0, frames.shape[0], 64):  # bounded float copies for long loops
        chunk = torch.from_numpy(np.ascontiguousarray(frames[start : start + 64])).permute(0, 3, 1, 2).float()
        chunk = torch.nn.functional.interpolate(chunk, size=tuple(size), mode="bilinear", antialias=True,
                                                align_corners=False)
        resized.append(chunk.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(resized)


def _sample(key: str, row: dict, size: tuple[int, int] | None, out: Path) -> tuple[dict, dict]:
    """The shard sample of one manifest row and the packed row's file facts."""
    clip = read_clip(row["path"], None, with_audio=bool(row.get("has_audio")),
                     expected_n_frames=int(row["n_frames"]), format=row.get("format") or None)
    frames = clip.frames
    height, width = frames.shape[1:3]
    if size is not None:
        frames = resize_frames(frames, size)
    spacing = clip.spacing_mm
    if spacing is not None:
        spacing = (spacing[0] * height / frames.shape[1], spacing[1] * width / frames.shape[2])
    info = {
        "n_frames": int(frames.shape[0]), "height": int(frames.shape[1]), "width": int(frames.shape[2]),
        "channels": int(frames.shape[3]), "fps": clip.fps, "spacing_mm": None if spacing is None else list(spacing),
        "timestamps_s": [float(t) for t in clip.timestamps_s],
        "metadata": {**_json_metadata(clip.info.metadata, (height, width), frames.shape[1:3]),
                     "source_format": clip.info.format, "source_size": [int(height), int(width)]},
    }
    sample = {"__key__": key, FRAMES: _npy_bytes(frames)}
    info["frames_sha256"] = hashlib.sha256(sample[FRAMES]).hexdigest()
    if clip.audio is not None:
        info["audio_sample_rate"] = int(clip.audio_sample_rate)
        info["audio_start_s"] = float(np.min(clip.timestamps_s))
        sample[AUDIO] = _npy_bytes(clip.audio.astype(np.float32))
    annotations = {k: _json_value(v) for k, v in row.items() if k not in _FILE_COLUMNS and k not in SIDECARS}
    sample[INFO] = json.dumps(info).encode()
    sample[ROW] = json.dumps(annotations).encode()
    facts = {"format": "packed", "n_frames": info["n_frames"], "height": info["height"], "width": info["width"],
             "channels": info["channels"], "fps": clip.fps if clip.fps else math.nan,
             "spacing_row_mm": spacing[0] if spacing else math.nan,
             "spacing_col_mm": spacing[1] if spacing else math.nan,
             "has_audio": clip.audio is not None}
    for column in SIDECARS:
        source = row.get(column) or ""
        if source:
            copied = out / "sidecars" / f"{key}.{column}{Path(source).suffix}"
            data = Path(source).read_bytes()
            _write_bytes(copied, data)
            sample[f"{column}{Path(source).suffix}"] = data
            facts[column] = str(copied)
    return sample, facts


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _json_metadata(metadata: dict, source_size: tuple[int, int], size: tuple[int, int]) -> dict:
    """The reader's (non-identifying) metadata that JSON holds, with the DICOM ultrasound
    regions' pixel bounds and pixel sizes moved to the packed frame size (sector detection
    is restricted to them)."""
    kept = {}
    for key, value in metadata.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    scale_y, scale_x = size[0] / source_size[0], size[1] / source_size[1]
    if kept.get("us_regions") and (scale_y, scale_x) != (1.0, 1.0):
        kept["us_regions"] = [_scaled_region(region, scale_y, scale_x) for region in kept["us_regions"]]
    return kept


def _scaled_region(region: dict, scale_y: float, scale_x: float) -> dict:
    scaled = dict(region)
    for key, scale in (("RegionLocationMinX0", scale_x), ("RegionLocationMaxX1", scale_x),
                       ("RegionLocationMinY0", scale_y), ("RegionLocationMaxY1", scale_y)):
        if scaled.get(key) is not None:
            scaled[key] = int(round(scaled[key] * scale))
    for key, scale in (("PhysicalDeltaX", scale_x), ("PhysicalDeltaY", scale_y)):
        if scaled.get(key) is not None:
            scaled[key] = scaled[key] / scale
    return scaled


def _json_value(value):
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def pack_part(manifest: str | os.PathLike, out: str | os.PathLike, *, size: tuple[int, int] | None = None,
              part: tuple[int, int] = (0, 1), shard_bytes: int = SHARD_BYTES, shard_clips: int = SHARD_CLIPS,
              progress: Callable[[int, int], None] | None = None) -> PackResult:
    """Pack the ``part`` slice of ``manifest``'s ok rows into ``out`` (see the module doc).

    Args:
        manifest: the source manifest (``ultrassl data index``; ``split``, labels and sidecars kept).
        out: the pack folder (``shards/``, ``parts/``, ``sidecars/``, then ``manifest.csv``).
        size: ``(height, width)`` to resize frames to; None keeps each clip's size.
        part: ``(i, n)``: this call packs the i-th of n contiguous slices.
        shard_bytes, shard_clips: a new shard starts past either.
        progress: called with ``(clips done, clips in this part)``.

    Raises:
        ManifestError: the manifest cannot be read, or ``out`` holds a pack of another manifest
            or size.
    """
    from webdataset import ShardWriter

    out = Path(out)
    table = read_manifest(manifest, status="ok")
    settings = {"source_manifest_sha256": manifest_hash(manifest), "size": None if size is None else list(size),
                "parts": part[1], "source_rows": len(table)}
    _check_settings(out, settings)
    name = _part_name(part)
    table_path = out / "parts" / f"{name}.csv"
    if table_path.is_file():
        return PackResult(part, 0, 0, (), skipped=True, manifest=_assemble_if_complete(out, part[1]))
    rows = np.array_split(np.arange(len(table)), part[1])[part[0]]
    shard_dir = out / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    for stale in shard_dir.glob(f"{name}-*.tar"):  # a killed earlier attempt of this part
        stale.unlink()
    packed_rows: list[dict] = []
    shard_counts: dict[str, int] = {}
    refused = 0
    writer = ShardWriter(str(shard_dir / f"{name}-%06d.tar"), maxcount=shard_clips, maxsize=shard_bytes,
                         verbose=0, encoder=False, mtime=0.0)
    try:
        for done, position in enumerate(rows, start=1):
            row = table.iloc[int(position)].to_dict()
            key = f"clip-{int(position):08d}"
            packed = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS}
            packed["source_row"] = int(position)
            try:
                sample, facts = _sample(key, row, size, out)
            except ClipReadError as exc:
                refused += 1
                packed.update({c: row[c] for c in REQUIRED_COLUMNS if c not in ("status", "error")})
                packed.update(path=str(out.resolve() / "refused" / key), status="refused", error=f"{type(exc).__name__}: {exc.cause}")
                packed_rows.append(packed)
            else:
                writer.write(sample)
                shard = Path(writer.fname)
                shard_counts[shard.name] = shard_counts.get(shard.name, 0) + 1
                packed.update(facts, path=packed_path(shard, key), status="ok", error="")
                packed_rows.append(packed)
            if progress is not None:
                progress(done, len(rows))
    finally:
        writer.close()
    for empty in shard_dir.glob(f"{name}-*.tar"):
        if empty.name not in shard_counts:
            empty.unlink()  # the writer opens its first shard before the first sample
    columns = list(REQUIRED_COLUMNS) + [c for c in table.columns if c not in REQUIRED_COLUMNS] + ["source_row"]
    frame = pd.DataFrame(packed_rows, columns=columns) if packed_rows else pd.DataFrame(columns=columns)
    for column in INT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    for column in FLOAT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    write_text_atomically(out / "parts" / f"{name}.shards.json",
                          json.dumps({"shards": [{"url": f"shards/{k}", "nsamples": v}
                                                 for k, v in sorted(shard_counts.items())]}, indent=1))
    write_manifest(frame, table_path)  # last: its presence marks the part done
    return PackResult(part, len(rows) - refused, refused, tuple(sorted(shard_counts)), skipped=False,
                      manifest=_assemble_if_complete(out, part[1]))


def _check_settings(out: Path, settings: dict) -> None:
    """Record the pack's settings in ``pack.json``; refuse to mix parts of another pack."""
    record = out / "pack.json"
    if record.is_file():
        existing = json.loads(record.read_text())
        if existing != settings:
            differing = sorted(k for k in settings if existing.get(k) != settings[k])
            raise ManifestError(f"the folder holds a pack made with other settings ({', '.join(differing)}); "
                                "pack into a new folder or remove it", str(out))
        return
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomically(record, json.dumps(settings, indent=1))


def _assemble_if_complete(out: Path, parts: int) -> Path | None:
    names = [_part_name((i, parts)) for i in range(parts)]
    if not all((out / "parts" / f"{n}.csv").is_file() for n in names):
        return None
    return assemble(out)


def assemble(out: str | os.PathLike) -> Path:
    """Write ``OUT/manifest.csv`` and ``OUT/shards.json`` from every part's table.

    Raises:
        ManifestError: a part is missing (names it) or the folder is not a pack.
    """
    out = Path(out)
    record = out / "pack.json"
    if not record.is_file():
        raise ManifestError("not a pack folder (no pack.json)", str(out))
    parts = int(json.loads(record.read_text())["parts"])
    names = [_part_name((i, parts)) for i in range(parts)]
    missing = [n for n in names if not (out / "parts" / f"{n}.csv").is_file()]
    if missing:
        raise ManifestError(f"{len(missing)} of {parts} parts are not packed yet (first: {missing[0]})", str(out))
    tables = [read_manifest(out / "parts" / f"{n}.csv", status=None) for n in names]
    merged = pd.concat(tables, ignore_index=True)
    shards = [s for n in names for s in json.loads((out / "parts" / f"{n}.shards.json").read_text())["shards"]]
    write_text_atomically(out / "shards.json", json.dumps({"shards": shards}, indent=1))
    return write_manifest(merged, out / "manifest.csv")
