"""The kNN protocol: retrieval by the encoder's features as it starts (no training).

Each held-out video (multi-clip: the pipeline's evaluation chain, evenly spaced clips) is a
query; the training videos, through the same chain, are the bank. Features are the
model's pooled clip features (:meth:`~ultrassl.downstream.base.DownstreamModule.clip_features`,
averaged over the clips), compared by cosine similarity; recall@k is the share of queries
with a training video of their class among the k nearest
(:func:`~ultrassl.metrics.classification.retrieval_recall_at_k`). A k at which no query can miss
(k past the training videos outside the largest class, e.g. recall@10 with one video of each
of 8 classes) is left out and listed under ``uninformative_ks``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ultrassl.downstream.scoring import evaluation_items, features_and_labels
from ultrassl.metrics.classification import RETRIEVAL_KS, informative_retrieval_ks, retrieval_recall_at_k


class KNNRetrieval:
    """Recall@k of held-out clips retrieving training clips of their class.

    Args:
        ks: the k of the recalls.
        batch_size: clips per forward pass (None: the data module's validation batch size).
    """

    name = "knn"

    def __init__(self, ks: Sequence[int] = RETRIEVAL_KS, batch_size: int | None = None):
        self.ks = tuple(ks)
        self.batch_size = batch_size

    @torch.no_grad()
    def evaluate(self, model: Any, datamodule: Any) -> dict[str, Any]:
        """``{"metrics": {"recall@k": ...}, "examples": []}`` of ``model``'s encoder (in
        evaluation mode) on ``datamodule``'s training and held-out videos."""
        model.eval()
        batch_size = self.batch_size or datamodule.val_batch_size
        device = next(model.parameters()).device
        train_table, _ = datamodule.split_tables()
        bank_videos, query_videos = evaluation_items(datamodule, train_table), evaluation_items(datamodule)
        bank, bank_labels = features_and_labels(model.clip_features, bank_videos, batch_size, device)
        queries, query_labels = features_and_labels(model.clip_features, query_videos, batch_size, device)
        ks = informative_retrieval_ks(bank_labels, self.ks)
        if not ks:
            raise ValueError(f"kNN retrieval: no k of {list(self.ks)} can miss with {len(bank_labels)} training "
                             f"clips (every k reaches past the clips of the other classes); use a smaller k")
        recall = retrieval_recall_at_k(queries, query_labels, bank, bank_labels, ks=ks)
        return {"metrics": {f"recall@{k}": v for k, v in recall.items()}, "examples": [],
                "uninformative_ks": [k for k in self.ks if k not in ks],
                **bank_videos.report("left_out_training"), **query_videos.report()}
