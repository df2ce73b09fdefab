"""What the viewer may open: the data folder and the run folders it was started with, nothing else.

A page served to a browser turns every path it accepts into a question about the server's
files. The viewer therefore takes no free path from a visitor: it offers the manifests and
clips found under the data folder, the checkpoints found under the run folders, and loops
the visitor uploads. :class:`ServedFolders` is the one check every path goes through,
including the paths a manifest names (clips, frame labels, fixations): a path that resolves
(symbolic links followed) outside the served folders is refused with the same message
whether or not it exists, so the refusal tells nothing about the server's files.

Plain functions over :mod:`ultrassl`, kept apart from the Streamlit page so that they can be
tested without it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ultrassl.errors import UltrasslError
from ultrassl.io.packed import clip_file

#: most checkpoints listed from the run folders (newest first), so a huge tree stays quick
MAX_CHECKPOINTS = 400
#: most files listed from the data folder
MAX_CLIPS = 5000
#: the start of a manifest's header line (:data:`ultrassl.data.manifest.REQUIRED_COLUMNS`)
_MANIFEST_HEADER = "path,format,n_frames"


class NotServedError(UltrasslError):
    """A path outside the folders the app was started with."""


@dataclass(frozen=True)
class ServedFolders:
    """The folders a viewer serves: ``data`` (clips and manifests), ``runs`` (checkpoints)
    and ``extra`` (e.g. the session's upload folder), all resolved."""

    data: Path
    runs: tuple[Path, ...] = ()
    extra: tuple[Path, ...] = ()

    @classmethod
    def of(cls, data: str | os.PathLike, runs: Iterable[str | os.PathLike] = (),
           extra: Iterable[str | os.PathLike] = ()) -> ServedFolders:
        return cls(Path(data).resolve(), tuple(Path(r).resolve() for r in runs),
                   tuple(Path(e).resolve() for e in extra))

    def with_extra(self, folder: str | os.PathLike) -> ServedFolders:
        return ServedFolders(self.data, self.runs, (*self.extra, Path(folder).resolve()))

    @property
    def roots(self) -> tuple[Path, ...]:
        return (self.data, *self.runs, *self.extra)

    def contains(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` resolves (links followed) inside a served folder; for a packed clip
        (``<shard>.tar::<key>``), whether its shard does."""
        resolved = Path(os.path.realpath(clip_file(path)))
        return any(resolved == root or root in resolved.parents for root in self.roots)

    def check(self, path: str | os.PathLike, what: str = "file") -> str:
        """``path`` as given when it lies inside a served folder.

        Raises:
            NotServedError: it does not; the message does not say whether it exists.
        """
        if not str(path).strip() or not self.contains(path):
            raise NotServedError(f"this {what} is outside the folders this app serves; start the app with its "
                                 "folder (ultrassl app FOLDER --runs RUNS)")
        return str(path)


def looks_like_manifest(path: Path) -> bool:
    """Whether ``path`` is a CSV whose header starts like a manifest's."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline().lstrip("\ufeff").startswith(_MANIFEST_HEADER)
    except OSError:
        return False


def find_manifests(folder: Path, depth: int = 3) -> list[Path]:
    """Manifest CSVs under ``folder`` (at most ``depth`` folders down, hidden ones skipped), sorted."""
    found = []
    for current, folders, files in os.walk(folder):
        level = len(Path(current).relative_to(folder).parts)
        folders[:] = sorted(f for f in folders if not f.startswith(".")) if level < depth else []
        for name in sorted(files):
            path = Path(current) / name
            if name.lower().endswith(".csv") and not name.startswith(".") and looks_like_manifest(path):
                found.append(path)
    return found


def find_loops(folder: Path) -> list[str]:
    """The clips a reader claims under ``folder`` (the indexer's walk), at most :data:`MAX_CLIPS`."""
    from ultrassl.data.indexing import find_clips

    candidates, _ = find_clips(folder)
    return candidates[:MAX_CLIPS]


@dataclass(frozen=True)
class CheckpointEntry:
    """A checkpoint found under the run folders, described for a picker.

    Attributes:
        path: the file.
        kind: ``"task"`` (a downstream model: ``task`` names it) or ``"pretraining"``.
        task: the downstream task's registry name, or "".
        objective: the pretraining objective of the encoder, or "".
        trained: modification time, ``YYYY-MM-DD HH:MM``.
        label: one line: ``plane detection (linear) · order_geometry · runs/.../model.ckpt · 2026-12-06 10:31``.
    """

    path: str
    kind: str
    task: str
    objective: str
    trained: str
    label: str


def describe_checkpoint(path: str | os.PathLike, served: ServedFolders | None = None) -> CheckpointEntry | None:
    """What a checkpoint holds (read with ``weights_only=True``), or None when it is not one
    of this package's task or pretraining checkpoints. A task model's encoder is named by the
    objective of the pretraining checkpoint it started from when that file is served too,
    else "pretrained", or "random init"."""
    from ultrassl.downstream.tasks import TASKS

    checkpoint = _read(path)
    if checkpoint is None:
        return None
    hparams = checkpoint.get("hyper_parameters") or {}
    task_class = str(checkpoint.get("task_class") or "")
    task = next((name for name, t in TASKS.items()
                 if f"{t.model_class.__module__}.{t.model_class.__qualname__}" == task_class), "")
    if task:
        objective = _encoder_objective(hparams.get("encoder"), served)
        what = f"{task.replace('_', ' ')} ({hparams.get('protocol') or 'trained'})"
    else:
        objective = _objective_name(hparams.get("_class_path"))
        if not objective:
            return None
        what = f"pretraining, step {checkpoint.get('global_step', '?')}"
    trained = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.stat(path).st_mtime))
    shown = _shown_path(Path(path), served.roots if served else ())
    label = " · ".join((what, objective, shown, trained))
    return CheckpointEntry(str(path), "task" if task else "pretraining", task, objective, trained, label)


def _read(path: str | os.PathLike) -> dict[str, Any] | None:
    from ultrassl.models.checkpoint import read_checkpoint

    try:
        checkpoint = read_checkpoint(path)
    except (UltrasslError, OSError, RuntimeError, ValueError):
        return None
    return checkpoint if isinstance(checkpoint, dict) else None


def _objective_name(class_path: Any) -> str:
    """``"order_geometry"`` for ``ultrassl.objectives.order_geometry.OrderGeometry``, else ""."""
    parts = str(class_path or "").split(".")
    return parts[2] if len(parts) == 4 and parts[:2] == ["ultrassl", "objectives"] else ""


def _encoder_objective(encoder: Any, served: ServedFolders | None) -> str:
    if not isinstance(encoder, dict):
        return "pretrained"
    if str(encoder.get("class_path", "")).endswith("RandomEncoder"):
        return "random init"
    source = (encoder.get("init_args") or {}).get("checkpoint")
    if source and served is not None and served.contains(source):
        pretraining = _read(source)
        name = _objective_name(((pretraining or {}).get("hyper_parameters") or {}).get("_class_path"))
        if name:
            return name
    return "pretrained"


def _shown_path(path: Path, roots: Sequence[Path]) -> str:
    """``path`` relative to the served folder holding it (its parent's name first)."""
    for root in roots:
        try:
            return (Path(root.name) / path.resolve().relative_to(root)).as_posix()
        except ValueError:
            continue
    return path.name


def find_checkpoints(runs: Sequence[Path]) -> list[Path]:
    """``*.ckpt`` files under the run folders, newest first, at most :data:`MAX_CHECKPOINTS`."""
    found = []
    for folder in runs:
        if folder.is_dir():
            found += [p for p in folder.rglob("*.ckpt") if p.is_file() and not p.name.startswith(".")]
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return found[:MAX_CHECKPOINTS]
