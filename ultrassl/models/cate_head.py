"""CATE's projection head: a small transformer over a visual token and augmentation tokens.

Sun, Nagrani, Tian, Schmid, ICCV 2021 (METHODS.md section 4). Only inference code of the
paper is public, so this head is written from the paper's description.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ultrassl.models.cate_tokens import TOKEN_DIMS, check_token_kinds


class AugmentationAwareHead(nn.Module):
    """Project pooled features, conditioned on augmentation encodings, to an L2-normalised vector.

    Tokens: the visual token ``Linear(BatchNorm(features)) + e_visual``, then one token per encoding kind
    ``Linear_kind(value) + e_kind`` (``e_*`` learned type embeddings), in the order of
    ``token_kinds``. A transformer encoder runs over them; its output at the visual token goes
    through ``Linear(dim, out_features)`` and is L2-normalised. With no kinds the head sees
    the visual token alone (CATE's no-encoding ablation, CVRL with a transformer head).

    The pooled features are standardised over the batch first (``feature_norm="batch"``), as
    CVRL's MLP head does with its BatchNorm: pooled CNN features share a large component
    common to all clips, which the transformer's per-token LayerNorm keeps, so without it
    every clip starts with nearly the same embedding and the contrastive loss sits at chance.

    Args:
        in_features: F, width of the backbone's pooled features.
        token_kinds: encodings used, a subset of
            :data:`~ultrassl.models.cate_tokens.TOKEN_DIMS` (``"time"``, ``"crop"``,
            ``"flip"``, ``"speed"``).
        dim: token width d (CATE small: 256).
        depth: transformer layers (small: 2).
        num_heads: attention heads (small: 4).
        mlp_ratio: width of each layer's feed-forward part, in multiples of ``dim``.
        dropout: dropout inside the transformer layers.
        out_features: width of the output embedding (128).
        feature_norm: ``"batch"`` (BatchNorm1d on the pooled features) or ``"none"``.
    """

    def __init__(
        self,
        in_features: int,
        token_kinds: Sequence[str] = ("time", "crop", "flip"),
        dim: int = 256,
        depth: int = 2,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        out_features: int = 128,
        feature_norm: Literal["batch", "none"] = "batch",
    ):
        super().__init__()
        if feature_norm not in ("batch", "none"):
            raise ValueError(f"feature_norm must be 'batch' or 'none', got {feature_norm!r}")
        self.token_kinds = check_token_kinds(token_kinds)
        self.feature_norm = nn.BatchNorm1d(in_features) if feature_norm == "batch" else nn.Identity()
        self.visual = nn.Linear(in_features, dim)
        self.value_embeddings = nn.ModuleDict({kind: nn.Linear(TOKEN_DIMS[kind], dim) for kind in self.token_kinds})
        # row 0: the visual token; row i + 1: token_kinds[i]
        self.type_embedding = nn.Parameter(torch.zeros(1 + len(self.token_kinds), dim))
        nn.init.trunc_normal_(self.type_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=dim, nhead=num_heads, dim_feedforward=int(dim * mlp_ratio), dropout=dropout,
            activation="gelu", batch_first=True, norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers=depth, norm=nn.LayerNorm(dim),
                                                 enable_nested_tensor=False)
        self.out = nn.Linear(dim, out_features)
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, features: torch.Tensor, tokens: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``features`` ``(B, F)`` and ``tokens`` ``{kind: (B, dim_kind)}`` -> ``(B, out_features)``, unit norm."""
        missing = [kind for kind in self.token_kinds if kind not in tokens]
        if missing:
            raise KeyError(f"AugmentationAwareHead needs the encodings {self.token_kinds}; missing {missing}")
        sequence = [self.visual(self.feature_norm(features))]
        for kind in self.token_kinds:
            value = tokens[kind].to(features.dtype)
            sequence.append(self.value_embeddings[kind](value))
        x = torch.stack(sequence, dim=1) + self.type_embedding  # (B, 1 + kinds, dim)
        visual_out = self.transformer(x)[:, 0]
        return F.normalize(self.out(visual_out), dim=-1)
