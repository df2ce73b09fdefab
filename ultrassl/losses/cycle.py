"""CEP's prediction and cycle-closure terms (Yang, Mirmehdi, Burghardt, BMVC 2021).

Embeddings of the past, current and future snippets of one window (``c_p``, ``c_c``, ``c_f``,
online) are mapped forward in time by a predictor ``F`` and backward by ``B`` and compared with
the momentum encoder's embeddings of the snippets (``k_p``, ``k_c``, ``k_f``) by
``d(u, v) = 2 - 2 cos(u, v)`` (0 for the same direction, 4 for opposite ones).

* prediction, one step: ``F(c_p) ~ k_c``, ``F(c_c) ~ k_f``, ``B(c_f) ~ k_c``, ``B(c_c) ~ k_p``;
  two steps: ``F(F(c_p)) ~ k_f``, ``B(B(c_f)) ~ k_p``;
* cycle closure, forward then back: ``B(F(c_p)) ~ k_p``, ``B(F(c_c)) ~ k_c``,
  ``B(B(F(F(c_p)))) ~ k_p``; back then forward: ``F(B(c_f)) ~ k_f``, ``F(B(c_c)) ~ k_c``,
  ``F(F(B(B(c_f)))) ~ k_f``.

Each term is the mean of its comparisons. Without ``B`` only the forward prediction terms
remain and there is no cycle.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Predictor = Callable[[torch.Tensor], torch.Tensor]


def cosine_distance(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(u, v)`` per row, ``(B, D), (B, D) -> (B,)``; in [0, 4]."""
    return 2.0 - 2.0 * F.cosine_similarity(u, v, dim=-1)


def prediction_pairs(
    c: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    k: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    forward: Predictor,
    backward: Predictor | None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(prediction, target) pairs of the one- and two-step terms."""
    (c_p, c_c, c_f), (k_p, k_c, k_f) = c, k
    pairs = [(forward(c_p), k_c), (forward(c_c), k_f), (forward(forward(c_p)), k_f)]
    if backward is not None:
        pairs += [(backward(c_f), k_c), (backward(c_c), k_p), (backward(backward(c_f)), k_p)]
    return pairs


def cycle_pairs(
    c: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    k: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    forward: Predictor,
    backward: Predictor,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(prediction, target) pairs of both cycle-closure directions."""
    (c_p, c_c, c_f), (k_p, k_c, k_f) = c, k
    return [
        (backward(forward(c_p)), k_p),
        (backward(forward(c_c)), k_c),
        (backward(backward(forward(forward(c_p)))), k_p),
        (forward(backward(c_f)), k_f),
        (forward(backward(c_c)), k_c),
        (forward(forward(backward(backward(c_f)))), k_f),
    ]


def mean_distance(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Mean of ``d(prediction, target)`` over the pairs and the batch."""
    return torch.stack([cosine_distance(prediction, target).mean() for prediction, target in pairs]).mean()
