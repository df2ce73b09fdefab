"""CATE, composable augmentation encoding (Sun, Nagrani, Tian, Schmid, ICCV 2021): METHODS.md section 4.

Two views of one video, sampled and augmented as for CVRL
(:class:`ultrassl.pipelines.cate.CATEPipeline`). The query view's projection head is told
how that view was made relative to the other one: its augmentation encodings (time shift,
crop box, flip, speed; see :mod:`ultrassl.models.cate_tokens`) are built from the parameters
the transforms recorded, and a small transformer
(:class:`~ultrassl.models.cate_head.AugmentationAwareHead`) reads them beside the visual
token. The other view goes through the same head with identity encodings. NT-Xent (tau 0.1)
pulls the two outputs together. Which encodings are used is a config choice
(``tokens: [time, crop, flip]``); ``tokens: []`` is the no-encoding ablation (CVRL with a
transformer head).

Logged: ``loss``; ``contrastive_acc``, the top-1 retrieval of the positive among the
``2N - 1`` candidates of NT-Xent (chance ``1 / (2N - 1)`` for N pairs in the batch, or in the
global batch with ``gather_distributed``); ``{kind}_token_std``, each encoding's spread over the
batch (0 for an encoding that never varies).

Batch layout: clips ``(B, C, T, H, W)`` under ``view_keys`` and their records
``"{key}_params"["temporal" | "resized_crop" | "flip"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ultrassl.engine.base import PretrainModule
from ultrassl.losses.ntxent import NTXentLoss
from ultrassl.models.cate_head import AugmentationAwareHead
from ultrassl.models.cate_tokens import augmentation_tokens, check_token_kinds, identity_tokens


class CATE(PretrainModule):
    """Augmentation-aware contrastive learning with a transformer projection head.

    Args:
        tokens: augmentation encodings given to the head, any subset of ``"time"``,
            ``"crop"``, ``"flip"``, ``"speed"``; ``[]`` for the no-encoding ablation.
        view_keys: batch keys of the two views; the first is the query (with encodings).
        symmetric: also encode the second view relative to the first against the first with
            identity encodings, and average the two losses.
        time_scale_s: seconds that map to 1 in the time encoding.
        default_fps: frame rate assumed for the time and speed encodings where the video's is
            unknown.
        head_dim, head_depth, head_heads, head_mlp_ratio, head_dropout: the head's transformer
            (CATE small: d 256, 2 layers, 4 heads).
        head_feature_norm: standardise the pooled features over the batch before the visual
            token (``"batch"``, see :class:`~ultrassl.models.cate_head.AugmentationAwareHead`)
            or not (``"none"``).
        projection_dim: output width of the head (128).
        temperature: NT-Xent tau (0.1).
        gather_distributed: negatives from every process in multi-GPU runs.
        **kwargs: backbone, optimiser and schedule options of :class:`PretrainModule`.
    """

    def __init__(
        self,
        tokens: Sequence[str] = ("time", "crop", "flip"),
        view_keys: Sequence[str] = ("view1", "view2"),
        symmetric: bool = False,
        time_scale_s: float = 1.0,
        default_fps: float = 30.0,
        head_dim: int = 256,
        head_depth: int = 2,
        head_heads: int = 4,
        head_mlp_ratio: float = 4.0,
        head_dropout: float = 0.0,
        head_feature_norm: Literal["batch", "none"] = "batch",
        projection_dim: int = 128,
        temperature: float = 0.1,
        gather_distributed: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if len(view_keys) != 2:
            raise ValueError(f"CATE takes two view keys, got {list(view_keys)}")
        if not time_scale_s > 0 or not default_fps > 0:
            raise ValueError(f"time_scale_s and default_fps must be positive, got {time_scale_s}, {default_fps}")
        self.token_kinds = check_token_kinds(tokens)
        self.view_keys = tuple(view_keys)
        self.symmetric = symmetric
        self.head = AugmentationAwareHead(
            self.backbone.num_features, self.token_kinds, dim=head_dim, depth=head_depth, num_heads=head_heads,
            mlp_ratio=head_mlp_ratio, dropout=head_dropout, out_features=projection_dim,
            feature_norm=head_feature_norm,
        )
        self.criterion = NTXentLoss(temperature, gather_distributed)

    def tokens(self, batch: Mapping[str, Any], query_key: str, other_key: str) -> dict[str, torch.Tensor]:
        """Encodings ``{kind: (B, dim)}`` of ``query_key`` relative to ``other_key``."""
        hp = self.hparams
        return augmentation_tokens(batch, query_key, other_key, self.token_kinds, hp.time_scale_s, hp.default_fps)

    def objective_step(self, batch: Mapping[str, Any], stage: str) -> dict[str, torch.Tensor]:
        first_key, second_key = self.view_keys
        first, second = batch[first_key], batch[second_key]
        f0, f1 = self.encode(torch.cat([first, second])).chunk(2)
        device = f0.device
        identity = identity_tokens(self.token_kinds, f0.shape[0], device)

        def move(tokens: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {kind: value.to(device) for kind, value in tokens.items()}

        query_tokens = move(self.tokens(batch, first_key, second_key))
        pairs = [(self.head(f0, query_tokens), self.head(f1, identity))]
        if self.symmetric:
            pairs.append((self.head(f1, move(self.tokens(batch, second_key, first_key))), self.head(f0, identity)))
        losses, accuracies = [], []
        for query, target in pairs:
            logits, labels = self.criterion.logits_and_labels(query, target)
            losses.append(F.cross_entropy(logits, labels))
            accuracies.append((logits.detach().argmax(dim=1) == labels).float().mean())
        outputs = {"loss": torch.stack(losses).mean(), "contrastive_acc": torch.stack(accuracies).mean()}
        # An encoding that is the same for every pair tells the head nothing (e.g. speed when
        # both views share one stride); its spread over the batch shows that in the logs.
        for kind, value in query_tokens.items():
            outputs[f"{kind}_token_std"] = value.std(dim=0, unbiased=False).mean()
        return outputs
