"""Index a data folder into a manifest: find every clip, read its header, check it decodes.

Clinical folders are messy; nothing here stops on one bad file. Every candidate becomes a
manifest row with status ``ok`` or ``refused`` and, when refused, the typed error and its
cause. What was skipped and why is summarised at the end (see :func:`summary`).
"""

from __future__ import annotations

import multiprocessing
import os
import re
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ultrassl.atomic import atomic_write
from ultrassl.data.manifest import PATH_COLUMNS, REQUIRED_COLUMNS, portable_path, resolve_path, write_manifest
from ultrassl.data.splits import clip_key
from ultrassl.errors import (
    ClipReadError,
    FileAccessError,
    FrameCountMismatchError,
    ManifestError,
    UnsupportedFormatError,
)
from ultrassl.io import get_reader, probe_clip

#: files that accompany data (tables, notes, configs) and are skipped without a word
SIDECAR_SUFFIXES = frozenset(
    {".csv", ".tsv", ".txt", ".json", ".md", ".rst", ".yaml", ".yml", ".xml", ".log", ".ini", ".pdf", ".html"}
)
#: operating-system and DICOM-media index files, skipped without a word
IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini", "dicomdir"})
#: raw pixel files of MetaImage headers: skipped when an .mhd in the same folder points at them
RAW_DATA_SUFFIXES = frozenset({".raw", ".zraw"})
#: longest error text kept in the manifest
MAX_ERROR_CHARS = 400

_ELEMENT_DATA_FILE = re.compile(r"^\s*ElementDataFile\s*=\s*(.+?)\s*$", re.MULTILINE)


def _error_text(exc: BaseException) -> str:
    """``<ErrorClass>: <cause>`` on one line, without the path (the row has it)."""
    cause = exc.cause if isinstance(exc, ClipReadError) else str(exc)
    text = f"{type(exc).__name__}: {' '.join(str(cause).split())}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _blank_row(path: str) -> dict:
    row = {column: None for column in REQUIRED_COLUMNS}
    row.update(path=path, format="", error="")
    return row


def _refused_row(path: str, error: str, fmt: str = "") -> dict:
    row = _blank_row(path)
    row.update(format=fmt, status="refused", error=error)
    return row


#: frames decoded at once by a full verification (memory stays that of one chunk)
VERIFY_CHUNK_FRAMES = 32
#: how much of each clip indexing decodes: headers only, a few frames, or every frame
VERIFY_LEVELS = ("none", "sample", "full")


def verify_level(validate: bool | str) -> str:
    """``"none"``, ``"sample"`` or ``"full"`` from a level or the older True / False."""
    if validate is True:
        return "sample"
    if validate is False:
        return "none"
    if validate not in VERIFY_LEVELS:
        raise ValueError(f"validate must be one of {VERIFY_LEVELS} (or True/False), got {validate!r}")
    return str(validate)


def verify_every_frame(reader, path: Path, info) -> None:
    """Decode every frame of a clip, :data:`VERIFY_CHUNK_FRAMES` at a time, so that damage
    anywhere in the loop is found; the error is the reader's, with the frames it was reading.
    Then the reader's own integrity check (a packed clip's checksum: raw pixels have no
    redundancy for a decoder to notice damage in)."""
    for start in range(0, int(info.n_frames), VERIFY_CHUNK_FRAMES):
        indices = np.arange(start, min(start + VERIFY_CHUNK_FRAMES, int(info.n_frames)), dtype=np.int64)
        try:
            clip = reader.read(path, indices, info)
        except ClipReadError as exc:  # say where in the loop
            raise type(exc)(f"frames {start}-{indices[-1]} of {info.n_frames}: {exc.cause}", exc.path) from None
        if len(clip.frames) != len(indices):
            raise FrameCountMismatchError(f"frames {start}-{indices[-1]}: {len(clip.frames)} decoded of "
                                          f"{len(indices)}", str(path))
    reader.check_integrity(path, info)


def index_file(path: str, validate: bool | str = True) -> dict:
    """The manifest row of one candidate clip; never raises for a bad file.

    Probes the header, then decodes as ``validate`` says (:func:`verify_level`): ``"sample"``
    (or True) lets the reader decode a few frames (``reader.validate``: first, middle and
    last by default), which catches truncation; ``"full"`` decodes every frame
    (:func:`verify_every_frame`), which also catches damage in the middle of a loop;
    ``"none"`` (or False) reads the header only.
    """
    level = verify_level(validate)
    row = _blank_row(path)
    try:
        reader = get_reader(path)
        row["format"] = reader.name
        info = probe_clip(path, format=reader.name)
        spacing = info.spacing_mm or (None, None)
        row.update(
            n_frames=int(info.n_frames),
            fps=None if info.fps is None else float(info.fps),
            height=int(info.height),
            width=int(info.width),
            channels=int(info.channels),
            spacing_row_mm=spacing[0],
            spacing_col_mm=spacing[1],
            has_audio=bool(info.has_audio),
        )
        if level == "sample":
            reader.validate(Path(path), info)
        elif level == "full":
            verify_every_frame(reader, Path(path), info)
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop an index run
        row.update(status="refused", error=_error_text(exc))
        return row
    row["status"] = "ok"
    return row


def _mhd_data_files(folder: Path, names: list[str]) -> set[str]:
    """Names of the raw files that the MetaImage headers in ``folder`` point at."""
    referenced = set()
    for name in names:
        if not name.lower().endswith(".mhd"):
            continue
        referenced.add(Path(name).stem + ".raw")
        referenced.add(Path(name).stem + ".zraw")
        if not os.path.isfile(folder / name):  # never open a FIFO or a device named *.mhd
            continue
        try:
            # A MetaImage header is a short text file; reading its ElementDataFile line by
            # hand avoids decoding the image just to learn the raw file's name.
            with open(folder / name, "r", encoding="latin-1") as handle:
                match = _ELEMENT_DATA_FILE.search(handle.read(65536))
        except OSError:
            continue
        if match:
            referenced.add(Path(match.group(1)).name)
    return referenced


def _accepts(path: Path) -> tuple[bool, str]:
    """Whether a reader claims ``path``; else the reason it is unsupported."""
    try:
        get_reader(path)
    except UnsupportedFormatError as exc:
        return False, exc.cause
    except FileAccessError:
        return True, ""  # claimed; probing will record the access error
    return True, ""


def find_clips(root: str | os.PathLike) -> tuple[list[str], list[tuple[str, str]]]:
    """Walk ``root`` in sorted order.

    Returns:
        ``(candidates, unsupported)``: absolute paths a reader claims (a folder of frames is one
        clip and is not entered), and ``(path, reason)`` of files no reader claims. Hidden
        entries, sidecar files (tables, notes, configs, raw data of .mhd headers) are skipped.
    """
    root = Path(os.path.abspath(root))
    if not root.exists():
        raise FileAccessError("no such file or folder", str(root))
    if root.is_file() or _accepts(root)[0]:
        accepted, reason = _accepts(root)
        return ([str(root)], []) if accepted else ([], [(str(root), reason)])
    candidates: list[str] = []
    unsupported: list[tuple[str, str]] = []
    for kind, path, reason in _walk(root, {os.path.realpath(root)}):
        if kind == "clip":
            candidates.append(path)
        else:
            unsupported.append((path, reason))
    return candidates, unsupported


def _walk(folder: Path, seen: set[str]) -> Iterator[tuple[str, str, str]]:
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        yield "unsupported", str(folder), f"folder cannot be listed ({type(exc).__name__})"
        return
    raw_files = _mhd_data_files(folder, names)
    for name in names:
        if name.startswith("."):
            continue
        path = folder / name
        if path.is_dir():
            real = os.path.realpath(path)
            if real in seen:  # a link back up the tree
                continue
            if _accepts(path)[0]:
                yield "clip", str(path), ""
            else:
                yield from _walk(path, seen | {real})
            continue
        suffix = path.suffix.lower()
        if suffix in SIDECAR_SUFFIXES or name.lower() in IGNORED_NAMES:
            continue
        if suffix in RAW_DATA_SUFFIXES and name in raw_files:
            continue
        accepted, reason = _accepts(path)
        if accepted:
            yield "clip", str(path), ""
        else:
            yield "unsupported", str(path), reason


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="indexing", unit="clip", file=sys.stderr, disable=not enabled, leave=False)


def _index_parallel(paths: list[str], validate: bool | str, workers: int, bar, function=index_file) -> list[dict]:
    """Index in a process pool with ``function(path, validate)``; results in the order of ``paths``.

    A decoder that kills its process (a segmentation fault on a corrupt file) breaks the
    pool: the files that were in flight are then retried one per process, so that the file
    that crashes is refused and the others are indexed.
    """
    # Not fork: forking a process whose decoders run thread pools can deadlock. The fork server
    # starts once per Python process with this module loaded, so later pools start fast.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    results: list[dict | None] = [None] * len(paths)
    pending = list(range(len(paths)))
    suspects: list[int] = []
    while pending or suspects:
        if suspects:
            index = suspects.pop(0)
            with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
                try:
                    results[index] = pool.submit(function, paths[index], validate).result()
                except BrokenProcessPool:
                    results[index] = _refused_row(
                        paths[index], "CorruptFileError: the decoder crashed the reading process"
                    )
            bar.update()
            continue
        broken: list[int] = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {pool.submit(function, paths[i], validate): i for i in pending}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                    bar.update()
                except BrokenProcessPool:
                    broken.append(i)
        broken.sort()
        # The files in flight when the pool broke are among the first unfinished ones.
        suspects, pending = broken[: workers + 1], broken[workers + 1 :]
    return results  # type: ignore[return-value]


def _read_annotations(annotations: str | os.PathLike | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if isinstance(annotations, pd.DataFrame):
        table, source = annotations.copy(), "annotations"
    else:
        source = str(annotations)
        if not Path(source).is_file():
            raise ManifestError("no such annotations file", source)
        try:
            table = pd.read_csv(source, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ManifestError(f"not a readable CSV ({type(exc).__name__}: {exc})", source) from exc
    if "path" not in table.columns:
        raise ManifestError("annotations need a 'path' column", source)
    clashes = [c for c in table.columns if c in REQUIRED_COLUMNS and c != "path"]
    if clashes:
        raise ManifestError(f"annotation column(s) {clashes} would overwrite what the indexer measures", source)
    if "label" in table.columns:
        text = table["label"].astype(str).str.strip().replace({"<NA>": "", "nan": ""})
        labels = pd.to_numeric(text.where(text != ""), errors="coerce")
        bad = ((text != "") & (labels.isna() | (labels.fillna(0) % 1 != 0))).to_numpy()
        if bad.any():
            raise ManifestError(f"column 'label' is not an integer for {table['path'][bad].iloc[0]!r}", source)
        table["label"] = labels.astype("Int64")
    return table, source


def _merge_annotations(manifest: pd.DataFrame, table: pd.DataFrame, source: str, root: Path, match: str) -> pd.DataFrame:
    """Annotation columns on the matching rows; annotated clips not found become refused rows."""

    def key(value: str):
        absolute = resolve_path(str(value), root)
        return clip_key(absolute) if match == "stem" else absolute

    keys = [key(p) for p in table["path"]]
    duplicated = pd.Series(keys).duplicated().to_numpy()
    if duplicated.any():
        raise ManifestError(f"{table['path'][duplicated].iloc[0]!r} is annotated twice", source)
    row_of = {k: i for i, k in enumerate(keys)}

    clip_rows: dict = {}
    for position, path in enumerate(manifest["path"]):
        k = key(path)
        if k in row_of and k in clip_rows:
            other = manifest["path"].iloc[clip_rows[k]]
            raise ManifestError(
                f"{path} and {other} both match the annotation {table['path'].iloc[row_of[k]]!r}; "
                "index a folder that holds one copy of each clip",
                source,
            )
        clip_rows[k] = position

    columns = [c for c in table.columns if c != "path"]
    merged = manifest.copy()
    for column in columns:
        merged[column] = pd.Series([pd.NA] * len(merged), dtype=table[column].dtype if column == "label" else object)
    missing_rows = []
    for k, i in row_of.items():
        annotation = table.iloc[i]
        if k in clip_rows:
            position = clip_rows[k]
            for column in columns:
                merged.at[position, column] = annotation[column]
        else:
            row = _refused_row(
                resolve_path(str(annotation["path"]), root),
                "FileAccessError: listed in the annotations, no such clip under the indexed folder",
            )
            row.update({column: annotation[column] for column in columns})
            missing_rows.append(row)
    if missing_rows:
        merged = _retype(pd.concat([merged, pd.DataFrame(missing_rows)], ignore_index=True))

    for column in ("frame_labels", "fixations"):
        if column not in merged.columns:
            continue
        resolved = []
        for position, value in enumerate(merged[column]):
            if not isinstance(value, str) or not value.strip():
                resolved.append("")
                continue
            sidecar = resolve_path(value.strip(), root)
            resolved.append(sidecar)
            if merged.at[position, "status"] == "ok" and not Path(sidecar).is_file():
                merged.at[position, "status"] = "refused"
                merged.at[position, "error"] = f"FileAccessError: {column} sidecar not found: {sidecar}"
        merged[column] = resolved
    for column in columns:
        if column != "label" and column not in PATH_COLUMNS:
            merged[column] = merged[column].map(lambda v: "" if v is None or v is pd.NA else str(v))
    return merged


def _typed_frame(rows: list[dict]) -> pd.DataFrame:
    return _retype(pd.DataFrame(rows, columns=list(REQUIRED_COLUMNS)))


def _retype(df: pd.DataFrame) -> pd.DataFrame:
    """Manifest dtypes: nullable ints and bools (refused rows leave them empty), floats, text."""
    if "label" in df.columns:
        df["label"] = pd.array(df["label"].tolist(), dtype="Int64")
    for column in ("n_frames", "height", "width", "channels"):
        df[column] = pd.array(df[column].tolist(), dtype="Int64")
    for column in ("fps", "spacing_row_mm", "spacing_col_mm"):
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    df["has_audio"] = pd.array(df["has_audio"].tolist(), dtype="boolean")
    for column in ("path", "format", "status", "error"):
        df[column] = df[column].fillna("").astype(str)
    return df


def index_folder(
    root: str | os.PathLike,
    *,
    annotations: str | os.PathLike | pd.DataFrame | None = None,
    match: str = "path",
    workers: int = 1,
    validate: bool | str = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Index every clip under ``root`` into a manifest DataFrame (see :mod:`ultrassl.data.manifest`).

    Args:
        root: folder walked recursively in sorted order (or a single clip). Candidates are the
            files and frame folders an :mod:`ultrassl.io` reader claims (DICOM by suffix or
            magic bytes, SimpleITK images, videos, folders of frames - one clip each). Tables,
            notes, configs and the raw files of .mhd headers are skipped; other files are
            refused as unsupported.
        annotations: a CSV file (or DataFrame) with a ``path`` column plus any columns to merge
            (``label``, ``split``, ``subject``, ``frame_labels``, ``fixations``...). Its paths,
            including the sidecars, are relative to ``root`` (or absolute). Annotated clips
            that are not found become refused rows; a sidecar that is missing refuses its clip.
        match: ``"path"`` matches annotation paths exactly; ``"stem"`` matches on
            ``(class folder, video stem)`` (:func:`~ultrassl.data.splits.clip_key`), so that
            split files naming ``Class/v_x.avi`` match ``Class/v_x.mp4`` or a frame folder
            ``Class/v_x/``.
        workers: processes reading files in parallel (1 = in this process). The result does
            not depend on it. Scripts that call this with ``workers > 1`` need the usual
            ``if __name__ == "__main__":`` guard (the processes are started, not forked).
        validate: how much of each clip to decode (:func:`verify_level`): ``"sample"`` (True,
            the default) a few frames (catches truncated files), ``"full"`` every frame
            (catches damage anywhere in a loop; as slow as reading the archive once),
            ``"none"`` (False) headers only.
        progress: show a progress bar on stderr.

    Returns:
        the manifest: absolute paths, one row per candidate in walk order (then the annotated
        clips that were not found), status ``ok`` or ``refused`` with ``"<ErrorClass>: cause"``.

    Raises:
        FileAccessError: ``root`` does not exist.
        ManifestError: the annotations are malformed (no path column, duplicates, a column that
            clashes with the measured ones, a non-integer label, two clips matching one entry).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    validate = verify_level(validate)
    if match not in ("path", "stem"):
        raise ValueError(f"match must be 'path' or 'stem', got {match!r}")
    # Annotations are checked before any file is read: a typo should not cost a full index run.
    table = None if annotations is None else _read_annotations(annotations)
    root_path = Path(os.path.abspath(root))
    candidates, unsupported = find_clips(root_path)
    with _progress_bar(len(candidates), progress) as bar:
        if workers == 1 or len(candidates) < 2:
            results = []
            for path in candidates:
                results.append(index_file(path, validate))
                bar.update()
        else:
            results = _index_parallel(candidates, validate, workers, bar)
    rows = results + [_refused_row(p, f"UnsupportedFormatError: {reason}") for p, reason in unsupported]
    # Walk order for every row, unsupported files included: the manifest reads like the folder.
    order = {p: i for i, p in enumerate(sorted(candidates + [p for p, _ in unsupported], key=_walk_sort_key))}
    rows.sort(key=lambda r: order[r["path"]])
    manifest = _typed_frame(rows)
    if table is not None:
        base = root_path if root_path.is_dir() else root_path.parent
        manifest = _merge_annotations(manifest, *table, base, match)
    return manifest


def _walk_sort_key(path: str) -> tuple[str, ...]:
    # Component-wise, as the walk visits them (a plain string sort would put "a b/x" before "a/x").
    return Path(path).parts


def refused_path(manifest_path: str | os.PathLike) -> Path:
    """Where the refused list goes: ``<manifest stem>.refused.csv`` beside the manifest."""
    manifest_path = Path(manifest_path)
    return manifest_path.with_name(f"{manifest_path.stem}.refused.csv")


def write_index(manifest: pd.DataFrame, manifest_path: str | os.PathLike) -> tuple[Path, Path]:
    """Write the manifest and, beside it, the refused list (path, error); returns both paths."""
    manifest_path = write_manifest(manifest, manifest_path)
    refused = manifest.loc[manifest["status"] == "refused", ["path", "error"]].copy()
    base = manifest_path.resolve().parent
    refused["path"] = [portable_path(p, base) for p in refused["path"]]
    target = refused_path(manifest_path)
    with atomic_write(target, "w", newline="") as stream:
        refused.to_csv(stream, index=False, lineterminator="\n")
    return manifest_path, target


def summary(manifest: pd.DataFrame, top: int = 5) -> str:
    """A few lines: clips ok and refused, and the most common reasons with an example each."""
    ok = manifest["status"] == "ok"
    lines = [f"{int(ok.sum())} clips ok, {int((~ok).sum())} refused"]
    if ok.any() and "n_frames" in manifest.columns:
        lines[0] += f" ({int(manifest.loc[ok, 'n_frames'].sum())} frames)"
    refused = manifest.loc[~ok]
    if len(refused):
        classes = Counter(error.split(":", 1)[0] for error in refused["error"])
        for name, count in classes.most_common(top):
            example = refused.loc[refused["error"].str.startswith(name + ":")].iloc[0]
            lines.append(f"  {count:5d} x {name}, e.g. {Path(example['path']).name}: {example['error'][len(name) + 2:]}")
    if "label" in manifest.columns:
        unlabelled = int((ok & manifest["label"].isna()).sum())
        if unlabelled:
            lines.append(f"  {unlabelled} ok clips have no label")
    return "\n".join(lines)
