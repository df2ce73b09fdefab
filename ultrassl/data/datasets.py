"""Datasets over manifests, whose errors keep their type through MONAI and the DataLoader."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from monai.data import Dataset

from ultrassl.data.manifest import FLOAT_COLUMNS, INT_COLUMNS, PATH_COLUMNS, read_manifest
from ultrassl.errors import ManifestError, UltrasslError
from ultrassl.io import ClipInfo, probe_clip
from ultrassl.io.packed import clip_stamp

#: manifest columns that describe indexing, not the clip; left out of items
_INDEXING_COLUMNS = ("status", "error")
#: the sample entry where a cached probe travels to :class:`~ultrassl.transforms.io.LoadClipd`
INFO_KEY = "clip_info"


def typed_cause(exc: BaseException) -> UltrasslError | None:
    """The first :class:`~ultrassl.errors.UltrasslError` in ``exc``'s chain (itself included).

    MONAI's ``apply_transform`` wraps every failure as ``RuntimeError("applying transform
    ...")``, once per nesting level of ``Compose``; the reader's typed error sits at the end
    of the ``__cause__`` / ``__context__`` chain.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UltrasslError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class ManifestDataset(Dataset):
    """One item per ``ok`` row of a manifest, passed through a MONAI transform chain.

    The item before transforms is a dict of the row's fields: ``path`` (absolute), the
    header facts (``format``, ``n_frames`` int, ``fps`` float (NaN when unknown), ``height``,
    ``width``, ``channels``, ``spacing_row_mm``/``spacing_col_mm`` float (NaN when unknown),
    ``has_audio`` bool), ``label`` int when the manifest has a label column (-1 for an
    unlabelled row), the sidecars ``frame_labels``/``fixations`` as absolute paths ("" when
    absent) and any other column as text.

    With ``cache_info``, each process probes a file once (:func:`ultrassl.io.probe_clip`; for
    a video that means demuxing every packet) and hands the :class:`~ultrassl.io.ClipInfo` to
    the chain under ``"clip_info"``, where :class:`~ultrassl.transforms.io.LoadClipd` uses it
    to skip the probe; the entry is removed from the output so that batches collate. A file
    whose size or modification time changed is probed again.

    Errors: a :class:`~ultrassl.errors.ClipReadError` (or :class:`~ultrassl.errors.ManifestError`)
    raised anywhere in the chain is re-raised as itself, not as MONAI's ``RuntimeError``
    wrapper, so callers can catch the type. In a ``DataLoader`` with workers, PyTorch rebuilds
    it in the main process as the same class from its message, which names the file.

    Args:
        manifest: a manifest CSV path or a DataFrame from :func:`~ultrassl.data.manifest.read_manifest`
            (a DataFrame is used as given: only its ``ok`` rows when it has a status column).
        transform: a MONAI transform (or sequence of them) applied to each item dict.
        split: keep only rows whose ``split`` column equals this value (or one of these values).
        label_column: column holding the integer class label, exposed as ``label``
            (None: no label).
        cache_info: probe each file once per process and pass the result to the chain under
            ``"clip_info"`` (see above).

    Raises:
        ManifestError: the manifest is malformed, has no ``split``/label column that was asked
            for, or no row remains.
    """

    def __init__(
        self,
        manifest: str | os.PathLike | pd.DataFrame,
        transform: Callable | Sequence[Callable] | None = None,
        split: str | Sequence[str] | None = None,
        label_column: str | None = "label",
        cache_info: bool = True,
    ):
        source = None if isinstance(manifest, pd.DataFrame) else str(manifest)
        if isinstance(manifest, pd.DataFrame):
            table = manifest
            if "status" in table.columns:
                table = table[table["status"] == "ok"]
        else:
            table = read_manifest(manifest, status="ok")
        if split is not None:
            if "split" not in table.columns:
                raise ManifestError(f"split {split!r} was asked for but the manifest has no 'split' column", source)
            wanted = [split] if isinstance(split, str) else list(split)
            table = table[table["split"].isin(wanted)]
        if label_column is not None and label_column != "label" and label_column not in table.columns:
            raise ManifestError(f"label column {label_column!r} is not in the manifest", source)
        if len(table) == 0:
            where = f" with split {split!r}" if split is not None else ""
            raise ManifestError(f"no clips with status ok{where}", source)
        self.manifest = table.reset_index(drop=True)
        self.source = source
        self.split = split
        self.label_column = label_column
        self.cache_info = cache_info
        self._infos: dict[str, tuple[tuple[int, int], ClipInfo]] = {}
        super().__init__(data=[self._item(row) for row in self.manifest.to_dict("records")], transform=transform)

    def _item(self, row: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {}
        for column, value in row.items():
            if column in _INDEXING_COLUMNS:
                continue
            if column == self.label_column:
                continue
            item[column] = _cell_value(column, value)
        if self.label_column is not None and self.label_column in row:
            label = row[self.label_column]
            item["label"] = -1 if _missing(label) else int(label)
        return item

    def clip_info(self, path: str, format: str | None = None) -> ClipInfo:
        """The probe of ``path``, from this process's cache while the file is unchanged."""
        try:
            stamp = clip_stamp(path)[1:]
        except OSError:
            stamp = (-1, -1)
        cached = self._infos.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        info = probe_clip(path, format=format or None)
        self._infos[path] = (stamp, info)
        return info

    def _transform(self, index: int):
        try:
            item = self.data[index]
            if self.cache_info:
                item = {**item, INFO_KEY: self.clip_info(item["path"], item.get("format"))}
            out = self.transform(item)
            return _without_info(out) if self.cache_info else out
        except Exception as exc:  # noqa: BLE001 - re-raised below, as its typed cause when there is one
            typed = typed_cause(exc)
            if typed is None or typed is exc:
                raise
        # Raised outside the except block, so the wrapper does not become its context.
        raise typed


def _without_info(out: Any) -> Any:
    if isinstance(out, dict):
        return {k: v for k, v in out.items() if k != INFO_KEY}
    if isinstance(out, list):
        return [_without_info(o) for o in out]
    return out


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _cell_value(column: str, value: Any) -> Any:
    """Python scalars that collate: ints, floats (NaN for unknown), bools, text."""
    if column in INT_COLUMNS:
        return -1 if _missing(value) else int(value)
    if column in FLOAT_COLUMNS:
        return math.nan if _missing(value) else float(value)
    if column == "has_audio":
        return False if _missing(value) else bool(value)
    if column in PATH_COLUMNS:
        return "" if _missing(value) else str(value)
    if _missing(value):
        return ""
    return value.item() if hasattr(value, "item") else value
