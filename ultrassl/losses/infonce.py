"""MoCo-style InfoNCE: one positive key per query, negatives from a queue and per-sample extras.

Used by VTDL (queue + the online-encoded temporal negative) and, with several positives per
sample, by CEP's instance term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InfoNCELoss(nn.Module):
    """Cross-entropy of ``[q.k+, q.queue, q.extra] / tau`` with the positive at column 0.

    All vectors are L2-normalised here, so the dot products are cosine similarities.

    Shapes (B samples, D dimensions, K queued keys, M extra negatives per sample, P positives):

    * ``query``: ``(B, D)`` or ``(B, P, D)``;
    * ``positive``: ``(B, D)`` or ``(B, P, D)``;
    * ``queue``: ``(K, D)``, shared negatives (momentum keys, no gradient), or None;
    * ``extra_negatives``: ``(B, D)`` or ``(B, M, D)``, negatives of each sample alone (VTDL's
      temporal negative, encoded online so its gradient flows), or None;
    * ``extra_mask``: ``(B,)`` or ``(B, M)`` bool, False where an extra negative must be
      ignored (e.g. a temporal negative too close to the anchor), or None.

    Several positives (multi-positive variant, CEP): when ``query`` or ``positive`` has a P
    dimension, the other is broadcast to it and the loss is the mean of the P InfoNCE terms,
    each positive scored against the same negatives.

    Args:
        temperature: tau (MoCo, VTDL, CEP: 0.07).
    """

    def __init__(self, temperature: float = 0.07):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def logits(
        self,
        query: torch.Tensor,
        positive: torch.Tensor,
        queue: torch.Tensor | None = None,
        extra_negatives: torch.Tensor | None = None,
        extra_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(B * P, 1 + K + M)``; the positive is column 0 (P = 1 without a P dimension)."""
        query, positive = _broadcast_positives(query, positive)  # (B, P, D) each
        b, p, d = query.shape
        query, positive = F.normalize(query, dim=-1), F.normalize(positive, dim=-1)
        columns = [(query * positive).sum(-1, keepdim=True)]  # (B, P, 1)
        if queue is not None:
            if queue.ndim != 2 or queue.shape[1] != d:
                raise ValueError(f"queue must be (K, {d}), got {tuple(queue.shape)}")
            columns.append(query @ F.normalize(queue, dim=-1).T)  # (B, P, K)
        if extra_negatives is not None:
            extra = extra_negatives[:, None] if extra_negatives.ndim == 2 else extra_negatives
            if extra.ndim != 3 or extra.shape[0] != b or extra.shape[2] != d:
                raise ValueError(f"extra_negatives must be ({b}, {d}) or ({b}, M, {d}), got {tuple(extra_negatives.shape)}")
            extra_logits = query @ F.normalize(extra, dim=-1).transpose(1, 2)  # (B, P, M)
            if extra_mask is not None:
                mask = extra_mask.reshape(b, 1, -1).to(torch.bool)
                extra_logits = extra_logits.masked_fill(~mask, float("-inf"))
            columns.append(extra_logits)
        return torch.cat(columns, dim=-1).reshape(b * p, -1) / self.temperature

    def forward(
        self,
        query: torch.Tensor,
        positive: torch.Tensor,
        queue: torch.Tensor | None = None,
        extra_negatives: torch.Tensor | None = None,
        extra_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean InfoNCE loss (see the class docstring for shapes)."""
        logits = self.logits(query, positive, queue, extra_negatives, extra_mask)
        labels = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, labels)


def _broadcast_positives(query: torch.Tensor, positive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if query.ndim not in (2, 3) or positive.ndim not in (2, 3):
        raise ValueError(
            f"query and positive must be (B, D) or (B, P, D), got {tuple(query.shape)} and {tuple(positive.shape)}"
        )
    query = query[:, None] if query.ndim == 2 else query
    positive = positive[:, None] if positive.ndim == 2 else positive
    try:
        shape = torch.broadcast_shapes(query.shape, positive.shape)
    except RuntimeError:
        raise ValueError(
            f"query {tuple(query.shape)} and positive {tuple(positive.shape)} do not match "
            "(same B and D; P equal or one of them without it)"
        ) from None
    return query.expand(shape), positive.expand(shape)
