"""Content-aware negative sampling (CANS; Lee et al., ICLR 2021, the audio-visual transformer).

Random negatives for a contrastive term are mostly trivially different from the positive; the
nearest ones may be the same content (a repeated segment, a still scene) and so false
negatives. CANS measures every candidate's distance to the positive in the CNN embedding
space, normalises the distances per query, drops the extremes (the nearest ``drop_near`` and
the farthest ``drop_far`` shares of the candidates) and samples among the rest with
probability ``softmax(-distance / temperature)``: similar, hence informative, candidates are
favoured.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def content_aware_negatives(
    positives: torch.Tensor,
    candidates: torch.Tensor,
    num_negatives: int,
    invalid: torch.Tensor | None = None,
    drop_near: float = 0.05,
    drop_far: float = 0.05,
    temperature: float = 0.5,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Indices ``(Q, num_negatives)`` into ``candidates`` of each positive's negatives.

    Args:
        positives: ``(Q, D)`` embeddings the negatives must differ from.
        candidates: ``(N, D)`` embeddings to draw from.
        num_negatives: K per positive (with replacement when fewer than K candidates remain).
        invalid: ``(Q, N)`` bool, True where a candidate may never be a negative of that
            positive (the positive itself, its own sample).
        drop_near, drop_far: shares of each row's valid candidates removed at the near and far
            ends (at least one candidate is always kept).
        temperature: of the softmax over normalised distances (lower favours the near more).
        generator: random source of the draw.
    """
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
    if not (0.0 <= drop_near < 1.0 and 0.0 <= drop_far < 1.0 and drop_near + drop_far < 1.0):
        raise ValueError(f"drop_near and drop_far must be in [0, 1) with a sum below 1, got {drop_near}, {drop_far}")
    with torch.no_grad():
        distance = 1.0 - F.normalize(positives.float(), dim=-1) @ F.normalize(candidates.float(), dim=-1).T
        valid = torch.ones_like(distance, dtype=torch.bool) if invalid is None else ~invalid.to(torch.bool)
        if not bool(valid.any(dim=1).all()):
            raise ValueError("a positive has no valid candidate negative")
        # normalise each row's distances to [0, 1] over its valid candidates
        big = torch.finfo(distance.dtype).max
        low = torch.where(valid, distance, big).min(dim=1, keepdim=True).values
        high = torch.where(valid, distance, -big).max(dim=1, keepdim=True).values
        normalised = (distance - low) / (high - low).clamp(min=1e-12)
        # drop the extremes by rank among the valid candidates (ties keep their order)
        order = torch.where(valid, normalised, 2.0).argsort(dim=1)
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
        counts = valid.sum(dim=1, keepdim=True)
        near = torch.floor(counts * drop_near).long()
        far = torch.floor(counts * drop_far).long()
        keep_to = torch.maximum(counts - far, near + 1)  # at least one kept
        kept = valid & (ranks >= near) & (ranks < keep_to)
        weights = torch.where(kept, torch.exp(-normalised / temperature), torch.zeros_like(normalised))
        replacement = bool((kept.sum(dim=1) < num_negatives).any())
        return torch.multinomial(weights, num_negatives, replacement=replacement, generator=generator)
