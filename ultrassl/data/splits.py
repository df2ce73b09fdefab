"""The official train/test split files of UCF101 and HMDB51, as manifest annotations.

Both parsers return a DataFrame with columns ``path`` (``<class folder>/<video file>``, as the
split files name it), ``label`` (int, **0-based**), ``class_name`` and ``split``; UCF101's also
has ``group`` (the ``gXX`` of ``v_<Class>_gXX_cYY``: clips of one group share actors and
background, so they must not be split between training and evaluation). Datasets are
often stored as the original videos or as folders of extracted frames named after the video's
stem; :func:`clip_key` gives the key under which both match a split entry.

Formats (as distributed with the datasets):

* UCF101 (``ucfTrainTestlist/``): ``classInd.txt`` lines ``"1 ApplyEyeMakeup"`` (1-based ids);
  ``trainlist0N.txt`` lines ``"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"``;
  ``testlist0N.txt`` lines ``"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"`` (the class comes
  from the folder, through classInd). Our label = classInd id - 1.
* HMDB51 (``testTrainMulti_7030_splits/``): one file per class and fold,
  ``<class>_test_split<N>.txt``, lines ``"<video>.avi <id>"`` with id 1 = train, 2 = test,
  0 = not used in this fold (kept here with split ``"unused"``: still usable for
  self-supervised pretraining). Videos lie under ``<class>/<video>.avi``. Our label = index of
  the class in the sorted list of class names.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from ultrassl.errors import ManifestError

#: suffixes stripped from a video name to get the stem its frame folder is named after
VIDEO_SUFFIXES: tuple[str, ...] = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v")
#: HMDB51's split ids
HMDB51_SPLIT_IDS: dict[int, str] = {0: "unused", 1: "train", 2: "test"}

_UCF101_GROUP = re.compile(r"_g(\d+)_c\d+$")


def clip_key(path: str | os.PathLike) -> tuple[str, str]:
    """``(class folder, video stem)``, lower-cased, under which a video file and its frame folder match.

    Lower case because UCF101's own lists and files disagree on case (``HandstandPushups/``
    holds ``v_HandStandPushups_...``) and archives extracted on case-insensitive disks vary.
    """
    p = Path(path)
    name = p.name
    for suffix in VIDEO_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return p.parent.name.lower(), name.lower()


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; tolerates CRLF endings and a BOM."""
    if not path.is_file():
        raise ManifestError("no such split file", str(path))
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _check_fold(fold: int) -> int:
    if int(fold) not in (1, 2, 3):
        raise ManifestError(f"fold must be 1, 2 or 3 (the official splits), got {fold!r}")
    return int(fold)


def ucf101_classes(split_dir: str | os.PathLike) -> dict[str, int]:
    """Class name -> 0-based label, from ``classInd.txt`` (whose ids are 1-based)."""
    path = Path(split_dir) / "classInd.txt"
    classes: dict[str, int] = {}
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ManifestError(f"line {number}: expected '<id> <ClassName>', got {line!r}", str(path))
        class_id, name = int(parts[0]), parts[1]
        if name in classes or class_id - 1 in classes.values():
            raise ManifestError(f"line {number}: class {name!r} or id {class_id} appears twice", str(path))
        classes[name] = class_id - 1
    if sorted(classes.values()) != list(range(len(classes))):
        raise ManifestError("class ids are not 1..N without gaps", str(path))
    if not classes:
        raise ManifestError("no classes listed", str(path))
    return classes


def ucf101_annotations(split_dir: str | os.PathLike, fold: int = 1) -> pd.DataFrame:
    """UCF101's official split ``fold`` (1-3) as annotations.

    Args:
        split_dir: the folder holding ``classInd.txt``, ``trainlist0N.txt`` and ``testlist0N.txt``.
        fold: which of the three official splits.

    Returns:
        DataFrame(path, label, class_name, split, group) sorted by path; ``label`` is
        classInd's id - 1; ``group`` (nullable int) is parsed from the video name.

    Raises:
        ManifestError: a file is missing or a line is malformed or inconsistent (a class not in
            classInd, a train label that disagrees with the class folder, a video in both lists).
    """
    fold = _check_fold(fold)
    split_dir = Path(split_dir)
    classes = ucf101_classes(split_dir)
    lower = {name.lower(): name for name in classes}
    rows: dict[str, dict] = {}
    for split, filename in (("train", f"trainlist{fold:02d}.txt"), ("test", f"testlist{fold:02d}.txt")):
        list_path = split_dir / filename
        for number, line in _lines(list_path):
            parts = line.split()
            expected = 2 if split == "train" else 1
            if len(parts) != expected:
                form = "'<Class>/<video>.avi <id>'" if split == "train" else "'<Class>/<video>.avi'"
                raise ManifestError(f"line {number}: expected {form}, got {line!r}", str(list_path))
            video = parts[0].replace("\\", "/")
            folder = video.split("/")[0] if "/" in video else ""
            class_name = lower.get(folder.lower())
            if class_name is None:
                raise ManifestError(
                    f"line {number}: class folder {folder!r} of {video!r} is not in classInd.txt", str(list_path)
                )
            label = classes[class_name]
            if split == "train" and (not parts[1].isdigit() or int(parts[1]) - 1 != label):
                raise ManifestError(
                    f"line {number}: label {parts[1]} disagrees with classInd's id {label + 1} for {class_name}",
                    str(list_path),
                )
            if video in rows:
                raise ManifestError(f"line {number}: {video!r} is listed twice in fold {fold}", str(list_path))
            group = _UCF101_GROUP.search(clip_key(video)[1])
            rows[video] = {
                "path": video, "label": label, "class_name": class_name, "split": split,
                "group": int(group.group(1)) if group else None,
            }
    table = _frame(rows, ["path", "label", "class_name", "split", "group"])
    table["group"] = table["group"].astype("Int64")
    return table


def hmdb51_annotations(split_dir: str | os.PathLike, fold: int = 1) -> pd.DataFrame:
    """HMDB51's official split ``fold`` (1-3) as annotations.

    Args:
        split_dir: the folder holding ``<class>_test_split<N>.txt`` for every class.
        fold: which of the three official splits.

    Returns:
        DataFrame(path, label, class_name, split) sorted by path, ``path`` = ``<class>/<video>``;
        ``label`` = position of the class in the sorted class names; ``split`` is ``train``,
        ``test`` or ``unused``.

    Raises:
        ManifestError: no split file for the fold, a malformed line, an unknown id or a video
            listed twice.
    """
    fold = _check_fold(fold)
    split_dir = Path(split_dir)
    suffix = f"_test_split{fold}.txt"
    files = sorted(p for p in split_dir.glob(f"*{suffix}") if p.is_file()) if split_dir.is_dir() else []
    if not files:
        raise ManifestError(f"no '<class>{suffix}' files (HMDB51 split files for fold {fold})", str(split_dir))
    class_names = sorted(p.name[: -len(suffix)] for p in files)
    labels = {name: i for i, name in enumerate(class_names)}
    rows: dict[str, dict] = {}
    for list_path in files:
        class_name = list_path.name[: -len(suffix)]
        for number, line in _lines(list_path):
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ManifestError(f"line {number}: expected '<video>.avi <0|1|2>', got {line!r}", str(list_path))
            video = f"{class_name}/{parts[0]}"
            if video in rows:
                raise ManifestError(f"line {number}: {parts[0]!r} is listed twice", str(list_path))
            rows[video] = {
                "path": video,
                "label": labels[class_name],
                "class_name": class_name,
                "split": HMDB51_SPLIT_IDS[int(parts[1])],
            }
    return _frame(rows, ["path", "label", "class_name", "split"])


def _frame(rows: dict[str, dict], columns: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(list(rows.values()), columns=columns)
    df["label"] = df["label"].astype("int64")
    return df.sort_values("path", kind="stable").reset_index(drop=True)
