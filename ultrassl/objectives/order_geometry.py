"""Anatomy-aware order + geometry (Jiao et al., ISBI 2020): METHODS.md section 1.

One shared encoder learns two pretext tasks on N frames taken k apart from a cine loop:

* order: the frames were shuffled by :class:`ultrassl.transforms.pretext.RandPermuteFramesd`;
  predict which of the N!/2 order classes (a permutation and its reverse are one class);
* geometry: one random affine transform was applied to every frame by ``RandAffineClipd``;
  regress its normalised parameters (default) or classify its discrete rotation.

Loss = CE(order) + ``geometry_weight`` x L(geometry).

Batch layout (``B`` clips of ``C`` channels, ``N`` frames, ``H x W`` pixels):

* ``mode="parallel"``: two views of each sample, ``batch["order_clip"]`` (shuffled only) and
  ``batch["geometry_clip"]`` (transformed only), both ``(B, C, N, H, W)``;
* ``mode="sequential"``: one view ``batch["clip"]`` (shuffled and transformed);

and the parameters the transforms recorded, collated:

* ``batch[f"{order_key}_params"]["permutation"]["index"]``: ``(B,)`` order class;
* regression: ``batch[f"{geometry_key}_params"]["affine"]["normalised"]``: ``(B, P)`` floats
  in [-1, 1] (or P tensors ``(B,)``, as collation leaves a list), P = ``num_geometry_params``;
  ``RandAffineClipd`` records P = 6: rotation, scale, shear, translate_x, translate_y, flip
  (components whose range is empty stay constant and cost nothing to learn);
* classification: ``batch[f"{geometry_key}_params"]["affine"]["class_index"]``: ``(B,)``, the
  index into ``RandAffineClipd(discrete_rotations=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torchmetrics.functional import mean_absolute_error
from torchmetrics.functional.classification import multiclass_accuracy

from ultrassl.engine.base import PretrainModule
from ultrassl.losses.geometry import GeometryRegressionLoss
from ultrassl.models.heads import MLPHead, PairwiseOrderHead
from ultrassl.transforms.base import batch_param
from ultrassl.transforms.pretext import RandPermuteFrames, permutation_classes

#: name under which ``RandAffineClipd`` records its draw in ``"{key}_params"``
AFFINE_PARAMS = "affine"


class OrderGeometry(PretrainModule):
    """Frame-order correction + geometric-transform prediction on one shared encoder.

    With a frame backbone (``sononet*``, ``tiny2d``) the order head sees the N frame features in
    their shuffled order, ``(B, N x F)``, and the geometry head their mean ``(B, F)``. With a
    clip backbone (``r3d_*``, ``tiny3d``) both heads see the pooled clip feature ``(B, F)``.

    Args:
        num_frames: N, frames per clip; the order task has N!/2 classes (12 for N = 4).
        mode: ``"parallel"`` (one shuffled view and one transformed view per sample) or
            ``"sequential"`` (one view, shuffled and transformed, both predicted).
        geometry: ``"regression"`` of the normalised affine parameters (smooth L1) or
            ``"classification"`` of the discrete rotation class (cross-entropy).
        num_geometry_params: P, the length of the recorded ``normalised`` vector (regression;
            6 for ``RandAffineClipd``).
        num_rotation_classes: number of discrete rotations (classification), e.g. 4 for
            ``RandAffineClipd(discrete_rotations=(0, 90, 180, 270))``.
        geometry_weight: lambda, the weight of the geometry loss.
        head_hidden: width of the hidden layer of both heads.
        head_layers: Linear layers per head (hidden ones with BatchNorm and ReLU).
        order_head: how a frame backbone's N features reach the order classes:
            ``"pairwise"`` (default), :class:`~ultrassl.models.heads.PairwiseOrderHead` over
            the distances of every pair of frames, invariant to a time reversal as the merged
            classes are; ``"concat"``, an MLP over the concatenated features (the paper's
            layout). Clip backbones always use an MLP over the pooled clip feature.
        order_projection: width of a per-frame projection (``Linear -> BatchNorm -> ReLU ->
            Linear``) between a frame backbone's features and the pairwise order head's
            distances; 0 (default) takes the distances on the features themselves. With it the
            features that transfer are one nonlinear layer away from the order code, as
            SimCLR's projection head keeps them from its loss (Chen et al., ICML 2020).
        order_key: batch key of the shuffled clip; default ``"order_clip"`` (parallel) or
            ``"clip"`` (sequential).
        geometry_key: batch key of the transformed clip; default ``"geometry_clip"`` (parallel)
            or ``"clip"`` (sequential).
        **kwargs: backbone, optimiser and schedule options of :class:`PretrainModule`.
    """

    def __init__(
        self,
        num_frames: int = 4,
        mode: Literal["parallel", "sequential"] = "parallel",
        geometry: Literal["regression", "classification"] = "regression",
        num_geometry_params: int = 6,
        num_rotation_classes: int = 4,
        geometry_weight: float = 1.0,
        head_hidden: int = 256,
        head_layers: int = 2,
        order_head: Literal["pairwise", "concat"] = "pairwise",
        order_key: str | None = None,
        geometry_key: str | None = None,
        order_projection: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if mode not in ("parallel", "sequential"):
            raise ValueError(f"mode must be 'parallel' or 'sequential', got {mode!r}")
        if geometry not in ("regression", "classification"):
            raise ValueError(f"geometry must be 'regression' or 'classification', got {geometry!r}")
        if order_head not in ("pairwise", "concat"):
            raise ValueError(f"order_head must be 'pairwise' or 'concat', got {order_head!r}")
        if num_frames < 3:
            raise ValueError(f"order prediction needs num_frames >= 3, got {num_frames}")
        self.mode = mode
        self.geometry = geometry
        self.num_frames = num_frames
        self.num_order_classes = len(permutation_classes(num_frames))
        self.order_key = order_key or ("order_clip" if mode == "parallel" else "clip")
        self.geometry_key = geometry_key or ("geometry_clip" if mode == "parallel" else "clip")
        if mode == "sequential" and self.order_key != self.geometry_key:
            raise ValueError(
                f"sequential mode predicts both tasks from one view, but order_key={self.order_key!r} "
                f"and geometry_key={self.geometry_key!r} differ"
            )

        if order_projection and not (self.frame_wise and order_head == "pairwise"):
            raise ValueError("order_projection applies to a frame backbone's pairwise order head, got "
                             f"backbone={self.hparams.backbone!r}, order_head={order_head!r}")
        features = self.backbone.num_features
        geometry_out = num_geometry_params if geometry == "regression" else num_rotation_classes
        if self.frame_wise and order_head == "pairwise":
            self.order_head = PairwiseOrderHead(features, num_frames, head_hidden, self.num_order_classes,
                                                projection_features=order_projection)
        else:
            order_in = num_frames * features if self.frame_wise else features
            self.order_head = MLPHead(order_in, head_hidden, self.num_order_classes, num_layers=head_layers)
        self.geometry_head = MLPHead(features, head_hidden, geometry_out, num_layers=head_layers)
        self.geometry_loss = GeometryRegressionLoss()

    # ----------------------------------------------------------------- features
    def _features(self, clip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Order-head and geometry-head inputs of ``clip`` (B, C, N, H, W), one encoder pass."""
        if clip.ndim != 5 or clip.shape[2] != self.num_frames:
            raise ValueError(
                f"OrderGeometry(num_frames={self.num_frames}) expects clips (B, C, {self.num_frames}, H, W), "
                f"got {tuple(clip.shape)}"
            )
        if self.frame_wise:
            frames = self.encode_frames(clip)  # (B, N, F), in the shuffled order
            return frames.flatten(1), frames.mean(dim=1)
        pooled = self.encode(clip)
        return pooled, pooled

    def predict_order(self, clip: torch.Tensor) -> torch.Tensor:
        """Order-class logits ``(B, N!/2)`` of shuffled clips."""
        return self.order_head(self._features(clip)[0])

    def predict_geometry(self, clip: torch.Tensor) -> torch.Tensor:
        """Geometry outputs of transformed clips: ``(B, P)`` parameters or ``(B, classes)`` logits."""
        return self.geometry_head(self._features(clip)[1])

    # ----------------------------------------------------------------- objective
    def objective_step(self, batch: Mapping[str, Any], stage: str) -> dict[str, torch.Tensor]:
        if self.mode == "parallel":
            order_logits = self.predict_order(batch[self.order_key])
            geometry_out = self.predict_geometry(batch[self.geometry_key])
        else:
            order_in, geometry_in = self._features(batch[self.order_key])
            order_logits, geometry_out = self.order_head(order_in), self.geometry_head(geometry_in)

        order_target = batch_param(batch, self.order_key, RandPermuteFrames.name, "index").long()
        order_loss = F.cross_entropy(order_logits, order_target)
        outputs = {
            "order_loss": order_loss,
            "order_acc": multiclass_accuracy(
                order_logits.detach(), order_target, num_classes=self.num_order_classes, average="micro"
            ),
        }
        outputs.update(self._geometry_terms(geometry_out, batch))
        outputs["loss"] = order_loss + self.hparams.geometry_weight * outputs["geometry_loss"]
        return outputs

    def _geometry_terms(self, prediction: torch.Tensor, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        if self.geometry == "classification":
            target = batch_param(batch, self.geometry_key, AFFINE_PARAMS, "class_index").long()
            if target.min() < 0 or target.max() >= prediction.shape[1]:
                raise ValueError(
                    f"rotation class ids must lie in [0, num_rotation_classes={prediction.shape[1]}), got "
                    f"{sorted(set(target.tolist()))}; geometry='classification' needs "
                    "RandAffineClipd(discrete_rotations=...) with that many angles"
                )
            return {
                "geometry_loss": F.cross_entropy(prediction, target),
                "geometry_acc": multiclass_accuracy(
                    prediction.detach(), target, num_classes=prediction.shape[1], average="micro"
                ),
            }
        target = batch_param(batch, self.geometry_key, AFFINE_PARAMS, "normalised").to(prediction.dtype)
        if target.ndim == 1:
            target = target[:, None]
        if target.shape[1] != prediction.shape[1]:
            raise ValueError(
                f"the batch carries {target.shape[1]} normalised affine parameters but "
                f"num_geometry_params={prediction.shape[1]}; set num_geometry_params to {target.shape[1]}"
            )
        return {
            "geometry_loss": self.geometry_loss(prediction, target),
            "geometry_mae": mean_absolute_error(prediction.detach(), target),
        }
