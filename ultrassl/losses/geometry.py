"""Regression loss of the geometry pretext task (anatomy-aware order + geometry)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GeometryRegressionLoss(nn.Module):
    """Smooth L1 between predicted and drawn normalised transform parameters.

    The affine parameters are normalised to [-1, 1] by the transform that drew them, so one
    ``beta`` suits rotation, scale, shear and translation alike.

    Args:
        beta: half-width of the quadratic zone (errors below it are squared, above it linear).

    Shapes: ``prediction`` and ``target`` ``(B, P)``; returns the mean over B and P (a scalar).
    """

    def __init__(self, beta: float = 1.0):
        super().__init__()
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = beta

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must have "
                "the same shape (B, P)"
            )
        return F.smooth_l1_loss(prediction, target.to(prediction.dtype), beta=self.beta)
