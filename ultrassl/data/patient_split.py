"""Train / validation / test splits by patient (or study): no patient in two splits.

Clips of one patient are alike (same anatomy, same machine, same day): a split that puts
them on both sides measures memory, not generalisation. :func:`split_by_group` assigns whole
groups (the values of a ``subject`` or ``study`` column) to the splits with scikit-learn's
group splitters, stratified by label where labels exist (``StratifiedGroupKFold``, so each
split holds the labels in about the proportions of the whole), else by group count
(``GroupShuffleSplit``); the same seed gives the same split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ultrassl.errors import ManifestError

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class SplitReport:
    """What a split did: per split, its groups, clips and (with labels) label counts."""

    groups: dict[str, int]
    clips: dict[str, int]
    labels: dict[str, dict[str, int]]

    def lines(self) -> list[str]:
        out = []
        for name in SPLIT_NAMES:
            text = f"{name:<5} {self.groups[name]:>5} groups {self.clips[name]:>6} clips"
            if self.labels:
                text += "  labels " + ", ".join(f"{k}: {v}" for k, v in sorted(self.labels[name].items()))
            out.append(text)
        return out


def split_by_group(table: pd.DataFrame, group_column: str = "subject", fractions: Sequence[float] = (0.7, 0.15, 0.15),
                   seed: int = 0, label_column: str | None = "label",
                   source: str | None = None) -> tuple[pd.Series, SplitReport]:
    """A split name (``train``, ``val``, ``test``) for every row of ``table``.

    Args:
        table: manifest rows (only the ``ok`` ones are usually split).
        group_column: the column naming each row's patient or study; every row needs a value.
        fractions: shares of the groups for train, val and test (summing to 1; val or test
            may be 0). With labels the shares are met as nearly as folds allow.
        seed: the draw; the same seed gives the same split.
        label_column: stratify by this column when the table has it with values (None: never).
        source: the manifest's path, for messages.

    Raises:
        ManifestError: the group column is missing or empty on some rows, or there are fewer
            groups than non-empty splits.
    """
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    fractions = [float(f) for f in fractions]
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6 or fractions[0] <= 0:
        raise ValueError(f"fractions are train, val, test shares summing to 1 with train > 0, got {fractions}")
    if group_column not in table.columns:
        raise ManifestError(f"no {group_column!r} column to split by (--by names the patient or study column)", source)
    groups = table[group_column].astype(str).str.strip()
    empty = groups.isin(["", "nan", "<NA>", "None"])
    if empty.any():
        raise ManifestError(f"{int(empty.sum())} rows have no {group_column!r}; every clip needs its patient or "
                            "study so that none ends up in two splits", source)
    labels = None
    if label_column and label_column in table.columns:
        values = table[label_column].astype(str).str.strip()
        if not values.isin(["", "nan", "<NA>", "None"]).any():
            labels = values.to_numpy()
    wanted = sum(f > 0 for f in fractions)
    if groups.nunique() < wanted:
        raise ManifestError(f"{groups.nunique()} {group_column} value(s) cannot fill {wanted} splits", source)

    assignment = np.array(["train"] * len(table), dtype=object)
    remaining = np.arange(len(table))
    share_left = 1.0
    for name, fraction in (("test", fractions[2]), ("val", fractions[1])):
        if fraction <= 0:
            continue
        share = fraction / share_left
        part_groups = groups.to_numpy()[remaining]
        if labels is not None:
            folds = max(2, round(1 / share))
            splitter = StratifiedGroupKFold(n_splits=min(folds, len(set(part_groups))), shuffle=True,
                                            random_state=seed)
            _, held = next(splitter.split(remaining, labels[remaining], part_groups))
        else:
            splitter = GroupShuffleSplit(n_splits=1, test_size=share, random_state=seed)
            _, held = next(splitter.split(remaining, groups=part_groups))
        assignment[remaining[held]] = name
        remaining = np.setdiff1d(remaining, remaining[held])
        share_left -= fraction
    split = pd.Series(assignment, index=table.index, name="split")
    report = SplitReport(
        groups={n: int(groups[split == n].nunique()) for n in SPLIT_NAMES},
        clips={n: int((split == n).sum()) for n in SPLIT_NAMES},
        labels={n: pd.Series(labels[(split == n).to_numpy()]).value_counts().to_dict() for n in SPLIT_NAMES}
        if labels is not None else {},
    )
    return split, report
