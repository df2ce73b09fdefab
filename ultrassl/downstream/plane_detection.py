"""Standard plane detection: frame-level classification in the SonoNet style.

Each training item is a clip whose centre frame carries the label (frame backbones: one
frame; clip backbones: a few frames around it, see :mod:`ultrassl.downstream.base`). The
classifier is a linear layer on the pooled feature map (after a standardisation without
learned parameters), so its weights turn the feature map into class-activation maps (Zhou et
al., CVPR 2016; SonoNet's weakly supervised localisation): the map of class k is the linear layer applied at every position, whose
spatial mean is exactly the logit of k.

Background dominates real sweeps (about 73 % of the simulated frames), so the cross-entropy
is class-weighted by default: ``class_weights="auto"`` takes the "balanced" weights
``n / (K * n_k)`` from the training frames' labels raised to ``class_weight_power`` (default
0.5, their square root: full balancing weighs a plane seen in 1 % of the frames ~70 times a
Background frame, which makes short runs predict rare planes everywhere; 1.0 gives the full
balance, 0 plain cross-entropy). Absent classes weigh 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ultrassl.data.planes import PLANE_CLASSES
from ultrassl.downstream.base import DownstreamModule
from ultrassl.metrics.classification import ClassificationMetrics
from ultrassl.models.heads import LinearHead
from ultrassl.transforms.annotations import read_frame_labels


class PlaneDetection(DownstreamModule):
    """Frame classifier over standard planes + Background, with class-activation maps.

    Batch: ``batch[image_key]`` clips ``(B, C, T, H, W)`` and ``batch[labels_key]`` the frame
    labels ``(B, T)`` of :class:`~ultrassl.transforms.annotations.LoadFrameAnnotationsd`; the
    target is the centre frame's label (position ``T // 2``).

    Args:
        class_names: class names in label order; default Background + SonoNet's 13 planes
            (:data:`ultrassl.data.planes.PLANE_CLASSES`).
        class_weights: ``"auto"`` (balanced weights from the training manifest's frame
            labels, computed when fitting starts), a list of K weights, or None (plain CE).
        class_weight_power: exponent applied to the balanced weights of ``"auto"``.
        dropout: dropout before the classifier (fine-tune only; a probe has none).
        image_key, labels_key: batch entries of the clips and their frame labels.
        **kwargs: encoder, protocol and optimiser options of :class:`DownstreamModule`.
    """

    has_linear_probe = True

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        class_weights: Literal["auto"] | Sequence[float] | None = "auto",
        class_weight_power: float = 0.5,
        dropout: float = 0.0,
        image_key: str = "clip",
        labels_key: str = "clip_frame_labels",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.class_names = [str(c) for c in (class_names if class_names is not None else PLANE_CLASSES)]
        self.num_classes = len(self.class_names)
        if self.num_classes < 2:
            raise ValueError(f"plane detection needs at least two classes, got {self.class_names}")
        if isinstance(class_weights, str) and class_weights != "auto":
            raise ValueError(f"class_weights must be 'auto', a list or None, got {class_weights!r}")
        if class_weights is not None and not isinstance(class_weights, str) and len(class_weights) != self.num_classes:
            raise ValueError(f"{len(class_weights)} class weights for {self.num_classes} classes")
        self.image_key = image_key
        self.labels_key = labels_key
        self.dropout = nn.Dropout(dropout) if dropout > 0 and not self.frozen else nn.Identity()
        # standardised input for both protocols: pooled features of small CNNs can vary over a
        # tiny range, which a plain linear layer (and a probe folded into one) turns into huge weights
        self.head = LinearHead(self.num_features, self.num_classes, input_norm=True)
        weights = torch.ones(self.num_classes) if class_weights in (None, "auto") else torch.tensor(
            [float(w) for w in class_weights])
        self.register_buffer("class_weight", weights)
        self.val_metrics = ClassificationMetrics(self.num_classes, self.class_names)
        self.last_report: dict[str, Any] | None = None

    # ----------------------------------------------------------------- prediction
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of the centre frames of clips ``(B, C, T, H, W)`` (or frames)."""
        pooled = self.frame_feature_map(x).flatten(2).mean(dim=-1)
        return self.head(self.dropout(pooled))

    def class_activation_maps(self, x: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        """Class-activation maps ``(B, K, H, W)`` (``upsample``: bilinear to the input size;
        else at the feature map's ``(h, w)``). The spatial mean of map k over the feature
        map equals the logit of class k (the probe's input standardisation folded in)."""
        feature_map = self.frame_feature_map(x)
        weight, bias = self.classifier_weights()
        maps = torch.einsum("kf,bfhw->bkhw", weight, feature_map) + bias[None, :, None, None]
        if upsample:
            maps = F.interpolate(maps, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
        return maps

    def classifier_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W (K, F), b (K,))`` with ``logits = W @ pooled + b`` in evaluation mode."""
        linear = self.head[-1]
        weight, bias = linear.weight, linear.bias
        if len(self.head) > 1:  # the head's BatchNorm1d without affine: (f - mean) / std
            norm = self.head[0]
            scale = torch.rsqrt(norm.running_var + norm.eps)
            bias = bias - weight @ (norm.running_mean * scale)
            weight = weight * scale[None, :]
        return weight, bias

    def probe_features(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled centre-frame features ``(B, F)`` and their labels ``(B,)``."""
        return self.frame_feature_map(batch[self.image_key]).flatten(2).mean(dim=-1), self._targets(batch)

    def probe_class_weight(self) -> torch.Tensor:
        return self.class_weight

    # ----------------------------------------------------------------- steps
    def _targets(self, batch: Mapping[str, Any]) -> torch.Tensor:
        labels = batch[self.labels_key]
        return labels[:, labels.shape[1] // 2].long() if labels.ndim == 2 else labels.long()

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.class_weight.to(logits.dtype), ignore_index=-1)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        target = self._targets(batch)
        logits = self(batch[self.image_key])
        loss = self._loss(logits, target)
        accuracy = (logits.argmax(dim=1) == target).float().mean()
        self.log_scalars({"loss": loss, "accuracy": accuracy}, "train", len(target))
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        target = self._targets(batch)
        logits = self(batch[self.image_key])
        loss = self._loss(logits, target)
        self.val_metrics.update(logits, target)
        self.log_scalars({"loss": loss}, "val", len(target))
        return loss

    def on_validation_epoch_end(self) -> None:
        report = self.val_metrics.report()
        self.val_metrics.reset()
        self.last_report = report
        self.log("val/macro_f1", report["macro_f1"], sync_dist=False)
        self.log("val/accuracy", report["accuracy"], sync_dist=False)

    # ----------------------------------------------------------------- class weights
    def on_fit_start(self) -> None:
        if self.hparams.class_weights != "auto":
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        split_tables = getattr(datamodule, "split_tables", None)
        if split_tables is None:
            raise ValueError(
                "class_weights='auto' counts the training frames' labels in the data module's manifest; "
                "this data module has no split_tables(): give class_weights as a list (or None)"
            )
        counts = frame_label_counts(split_tables()[0], self.class_names)
        weights = balanced_class_weights(counts) ** float(self.hparams.class_weight_power)
        self.class_weight.copy_(weights.to(self.class_weight))


def frame_label_counts(manifest: pd.DataFrame, class_names: Sequence[str]) -> torch.Tensor:
    """Frames per class over the clips of a manifest table (its ``frame_labels`` sidecars
    and ``n_frames``), int64 ``(K,)``."""
    if "frame_labels" not in manifest.columns:
        raise ValueError("the manifest has no 'frame_labels' column (per-frame plane labels)")
    counts = np.zeros(len(class_names), dtype=np.int64)
    for path, n_frames in zip(manifest["frame_labels"], manifest["n_frames"]):
        if isinstance(path, str) and path.strip():
            counts += np.bincount(read_frame_labels(path, int(n_frames), class_names), minlength=len(class_names))
    return torch.from_numpy(counts)


def balanced_class_weights(counts: torch.Tensor) -> torch.Tensor:
    """``n / (K_present * n_k)`` for the classes present; 1 for absent ones."""
    counts = counts.to(torch.float64)
    present = counts > 0
    weights = torch.ones_like(counts)
    if present.any():
        weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.to(torch.float32)
