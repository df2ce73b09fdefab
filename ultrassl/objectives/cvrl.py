"""CVRL (Qian et al., CVPR 2021): METHODS.md section 2.

Two clips of one video, a start gap drawn by :class:`ultrassl.transforms.temporal.PairSampler`
(decreasing density by default) and strong clip-consistent augmentation (or per-frame, as
the ablation; chosen in the data pipeline, :class:`ultrassl.pipelines.cvrl.CVRLPipeline`),
are pulled together by NT-Xent against every other view of the batch.

Logged: ``loss``; ``contrastive_acc``, the top-1 retrieval of the positive among the
``2N - 1`` candidates of NT-Xent (chance ``1 / (2N - 1)`` for N pairs in the batch, or in the
global batch with ``gather_distributed``). Several clips of one video in a batch are negatives
of each other, which lowers the ceiling of both.

Batch layout: ``batch[view_keys[0]]`` and ``batch[view_keys[1]]``, clips ``(B, C, T, H, W)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ultrassl.engine.base import PretrainModule
from ultrassl.losses.ntxent import NTXentLoss
from ultrassl.models.heads import MLPHead


class CVRL(PretrainModule):
    """Contrastive video representation learning with an MLP projection head.

    Head: ``head_layers - 1`` x (Linear, BatchNorm, ReLU), then Linear to ``projection_dim``
    (the paper's 3 x (Linear, BN, ReLU) + Linear to 128 is ``head_layers=4``).

    Args:
        view_keys: batch keys of the two views.
        projection_dim: output width of the head (128).
        head_hidden: width of the hidden head layers (paper: 2048).
        head_layers: Linear layers of the head.
        temperature: NT-Xent tau (0.1).
        gather_distributed: negatives from every process in multi-GPU runs.
        **kwargs: backbone, optimiser and schedule options of :class:`PretrainModule`.
    """

    def __init__(
        self,
        view_keys: Sequence[str] = ("view1", "view2"),
        projection_dim: int = 128,
        head_hidden: int = 2048,
        head_layers: int = 4,
        temperature: float = 0.1,
        gather_distributed: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if len(view_keys) != 2:
            raise ValueError(f"CVRL takes two view keys, got {list(view_keys)}")
        self.view_keys = tuple(view_keys)
        self.projector = MLPHead(self.backbone.num_features, head_hidden, projection_dim, num_layers=head_layers)
        self.criterion = NTXentLoss(temperature, gather_distributed)

    def project(self, clips: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, projection_dim)`` (not normalised) of clips ``(B, C, T, H, W)``."""
        return self.projector(self.encode(clips))

    def objective_step(self, batch: Mapping[str, Any], stage: str) -> dict[str, torch.Tensor]:
        first, second = (batch[key] for key in self.view_keys)
        # One pass over both views: BatchNorm sees the whole 2B batch, as in SimCLR/CVRL.
        z0, z1 = self.project(torch.cat([first, second])).chunk(2)
        logits, labels = self.criterion.logits_and_labels(z0, z1)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "contrastive_acc": accuracy}
