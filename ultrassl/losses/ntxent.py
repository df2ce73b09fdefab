"""NT-Xent (SimCLR / CVRL / CATE): two views per sample, all other views as negatives.

Modelled on lightly's ``lightly/loss/ntx_ent_loss.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ultrassl import distributed


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross-entropy over the two views of N samples.

    For each of the 2N embeddings (both views, both directions) the positive is the other
    view of the same sample and the negatives are the 2N - 2 other embeddings; the logits are
    cosine similarities divided by ``temperature``. The loss is the mean cross-entropy over
    the 2N embeddings.

    With ``gather_distributed`` and several processes, N is the global batch: each process
    scores its own embeddings against everyone's (the gather has a correct backward, see
    :mod:`ultrassl.distributed`), so 2 processes with N / 2 samples each train exactly like 1
    process with N.

    Args:
        temperature: tau (CVRL and CATE: 0.1).
        gather_distributed: take the negatives from all processes.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed

    def logits_and_labels(self, out0: torch.Tensor, out1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(2n, 2N - 1)`` of this process's 2n embeddings and the positives' columns ``(2n,)``.

        Rows: view 0 of the local samples, then view 1. Columns: the other view of all N
        samples (the positive among them), then the same view of all N samples without the
        row's own embedding.
        """
        if out0.shape != out1.shape or out0.ndim != 2:
            raise ValueError(
                f"NTXentLoss expects two (N, D) embeddings of the same shape, got "
                f"{tuple(out0.shape)} and {tuple(out1.shape)}"
            )
        n = out0.shape[0]
        out0, out1 = F.normalize(out0, dim=1), F.normalize(out1, dim=1)
        if self.gather_distributed and distributed.is_distributed():
            all0, all1 = distributed.gather(out0), distributed.gather(out1)
            offset = distributed.rank() * n
        else:
            all0, all1, offset = out0, out1, 0
        rows = torch.arange(n, device=out0.device)
        # the row's own embedding among the same view of all N samples
        own = torch.zeros(n, all0.shape[0], dtype=torch.bool, device=out0.device)
        own[rows, rows + offset] = True

        def block(query: torch.Tensor, other_view: torch.Tensor, same_view: torch.Tensor) -> torch.Tensor:
            cross = query @ other_view.T
            same = (query @ same_view.T)[~own].view(n, -1)
            return torch.cat([cross, same], dim=1) / self.temperature

        logits = torch.cat([block(out0, all1, all0), block(out1, all0, all1)], dim=0)
        labels = (rows + offset).repeat(2)
        return logits, labels

    def forward(self, out0: torch.Tensor, out1: torch.Tensor) -> torch.Tensor:
        """Loss of the embeddings ``out0`` and ``out1`` ``(n, D)`` of the two views (unnormalised)."""
        logits, labels = self.logits_and_labels(out0, out1)
        return F.cross_entropy(logits, labels)
