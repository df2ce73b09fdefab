"""Classification and retrieval metrics: per-class and macro precision, recall and F1 with
the confusion matrix (torchmetrics), and kNN retrieval recall@k on cosine similarity.

Conventions
    * Macro averages (torchmetrics ``average="macro"``) are unweighted means over the classes
      that occur in the targets or the predictions; a class absent from both is left out
      rather than counted as 0. Its per-class values are reported as NaN, with support 0.
    * ``confusion[i, j]`` counts samples of true class i predicted as class j.
    * Retrieval recall@k (the video-retrieval protocol of Xu et al. 2019 and later SSL work):
      a query counts as a hit when at least one of its k nearest bank items, by cosine
      similarity of the features, has the query's label; recall@k is the share of hits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

#: the k of the retrieval protocol
RETRIEVAL_KS = (1, 5, 10, 20, 50)


class ClassificationMetrics(MetricCollection):
    """Accumulates predictions over batches (synchronised across processes by torchmetrics)
    and reports per-class and macro precision, recall, F1, accuracy and the confusion matrix.

    ``update(preds, target)`` takes logits/probabilities ``(N, num_classes)`` or class indices
    ``(N,)``, and targets ``(N,)``; targets equal to ``ignore_index`` are skipped.

    Args:
        num_classes: number of classes.
        class_names: names in class order (default ``"0"``, ``"1"``, ...).
        ignore_index: target value to skip (e.g. -1 for unlabelled frames).
    """

    def __init__(self, num_classes: int, class_names: Sequence[str] | None = None, ignore_index: int | None = -1):
        options = {"num_classes": num_classes, "ignore_index": ignore_index, "validate_args": False}
        super().__init__({
            "precision": MulticlassPrecision(average=None, **options),
            "recall": MulticlassRecall(average=None, **options),
            "f1": MulticlassF1Score(average=None, **options),
            "macro_precision": MulticlassPrecision(average="macro", **options),
            "macro_recall": MulticlassRecall(average="macro", **options),
            "macro_f1": MulticlassF1Score(average="macro", **options),
            "accuracy": MulticlassAccuracy(average="micro", **options),
            "confusion": MulticlassConfusionMatrix(**options),
        }, compute_groups=False)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names = [str(n) for n in class_names] if class_names is not None else [str(i) for i in range(num_classes)]

    def report(self) -> dict[str, Any]:
        """The accumulated scores as plain Python values:

        ``{"accuracy", "macro_precision", "macro_recall", "macro_f1": float,
        "per_class": {name: {"precision", "recall", "f1": float (NaN when absent), "support": int}},
        "confusion": list of lists (true x predicted), "class_names": list}``.
        """
        values = self.compute()
        return classification_report_from(values, self.class_names)


def classification_report_from(values: dict[str, torch.Tensor], class_names: Sequence[str]) -> dict[str, Any]:
    """Turn the computed :class:`ClassificationMetrics` tensors into plain values (see
    :meth:`ClassificationMetrics.report`)."""
    confusion = values["confusion"].long().cpu()
    support = confusion.sum(dim=1)
    predicted = confusion.sum(dim=0)
    present = (support + predicted) > 0
    per_class = {}
    for index, name in enumerate(class_names):
        per_class[name] = {
            metric: float(values[metric][index]) if present[index] else float("nan")
            for metric in ("precision", "recall", "f1")
        }
        per_class[name]["support"] = int(support[index])
    return {
        "accuracy": float(values["accuracy"]),
        "macro_precision": float(values["macro_precision"]),
        "macro_recall": float(values["macro_recall"]),
        "macro_f1": float(values["macro_f1"]),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
    }


def classification_report(
    preds: torch.Tensor, target: torch.Tensor, num_classes: int, class_names: Sequence[str] | None = None,
    ignore_index: int | None = -1,
) -> dict[str, Any]:
    """One-shot :class:`ClassificationMetrics` report of ``preds`` (logits ``(N, C)`` or
    indices ``(N,)``) against ``target`` ``(N,)``."""
    metrics = ClassificationMetrics(num_classes, class_names, ignore_index)
    metrics.update(preds, target)
    return metrics.report()


def informative_retrieval_ks(bank_labels: torch.Tensor, ks: Sequence[int]) -> tuple[int, ...]:
    """The k of ``ks`` at which recall@k can still miss for a query of any class.

    A query of class c misses at k only if its k nearest bank items are all of other classes,
    so once k exceeds the ``N - n_c`` bank items outside c it is a hit whatever the features.
    This keeps ``k <= N - max_c n_c``: with 8 training clips of 8 classes, recall@10 is 1 for any
    encoder and says nothing, and is left out rather than reported.
    """
    labels = bank_labels.detach().long().reshape(-1)
    if len(labels) == 0:
        return ()
    largest_class = int(torch.bincount(labels).max())
    return tuple(k for k in ks if k <= len(labels) - largest_class)


def retrieval_recall_at_k(
    query_features: torch.Tensor,
    query_labels: torch.Tensor,
    bank_features: torch.Tensor | None = None,
    bank_labels: torch.Tensor | None = None,
    ks: Sequence[int] = RETRIEVAL_KS,
    chunk_size: int = 1024,
) -> dict[int, float]:
    """kNN retrieval recall@k with cosine similarity.

    Args:
        query_features: ``(Q, F)``, e.g. test-split clip features.
        query_labels: ``(Q,)`` int.
        bank_features: ``(N, F)``, e.g. train-split features; None: the queries themselves,
            each query leaving itself out (leave-one-out).
        bank_labels: ``(N,)`` int (with ``bank_features``).
        ks: the k to report; a k larger than the bank is clamped to the bank size.
        chunk_size: queries per similarity block (bounds memory at ``chunk_size x N``).

    Returns:
        ``{k: recall}`` with recall in [0, 1].
    """
    leave_one_out = bank_features is None
    if leave_one_out:
        bank_features, bank_labels = query_features, query_labels
    elif bank_labels is None:
        raise ValueError("bank_labels are needed with bank_features")
    query = F.normalize(query_features.detach().float(), dim=1)
    bank = F.normalize(bank_features.detach().float(), dim=1)
    query_labels = query_labels.detach().long().reshape(-1)
    bank_labels = bank_labels.detach().long().reshape(-1)
    if len(query) != len(query_labels) or len(bank) != len(bank_labels):
        raise ValueError("features and labels differ in length")
    available = len(bank) - (1 if leave_one_out else 0)
    if available < 1 or len(query) == 0:
        raise ValueError("retrieval needs at least one query and one bank item besides the query")
    largest = min(max(ks), available)
    hits = {k: 0 for k in ks}
    for start in range(0, len(query), chunk_size):
        similarity = query[start : start + chunk_size] @ bank.T
        if leave_one_out:
            rows = torch.arange(similarity.shape[0])
            similarity[rows, rows + start] = -float("inf")
        neighbours = similarity.topk(largest, dim=1).indices
        match = bank_labels[neighbours] == query_labels[start : start + chunk_size, None]
        for k in ks:
            hits[k] += int(match[:, : min(k, largest)].any(dim=1).sum())
    return {k: hits[k] / len(query) for k in ks}
