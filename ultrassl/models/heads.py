"""Heads shared by the objectives: MLP projectors/predictors/classifiers and linear probes.

Heads take pooled features ``(B, in_features)`` and return ``(B, out_features)``.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

Norm = Literal["batch", "layer", "none"]


def _norm(kind: Norm, features: int) -> nn.Module | None:
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    if kind == "none":
        return None
    raise ValueError(f"norm must be 'batch', 'layer' or 'none', got {kind!r}")


class MLPHead(nn.Sequential):
    """``num_layers`` Linear layers; every hidden one is followed by a norm and ReLU.

    Examples: CVRL's projection head, 3 x (Linear, BN, ReLU) then Linear to 128, is
    ``MLPHead(F, 2048, 128, num_layers=4)``; a BYOL-style predictor is
    ``MLPHead(128, 512, 128, num_layers=2)``; CEP's heads use ``norm="layer"``.

    Args:
        in_features: input width.
        hidden_features: width of every hidden layer.
        out_features: output width.
        num_layers: number of Linear layers, >= 1 (1 is a plain Linear layer).
        norm: normalisation after each hidden Linear layer: ``"batch"``, ``"layer"`` or ``"none"``.
        last_norm: also normalise the output (same kind as ``norm``, no ReLU after it).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int,
        num_layers: int = 2,
        norm: Norm = "batch",
        last_norm: bool = False,
    ):
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(num_layers - 1):
            normaliser = _norm(norm, hidden_features)
            # A bias right before a normalisation is cancelled by it.
            layers.append(nn.Linear(width, hidden_features, bias=normaliser is None))
            if normaliser is not None:
                layers.append(normaliser)
            layers.append(nn.ReLU(inplace=True))
            width = hidden_features
        out_norm = _norm(norm, out_features) if last_norm else None
        layers.append(nn.Linear(width, out_features, bias=out_norm is None))
        if out_norm is not None:
            layers.append(out_norm)
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = out_features


class LinearHead(nn.Sequential):
    """A linear classifier or probe ``(B, in_features) -> (B, out_features)``.

    Args:
        in_features: input width.
        out_features: output width (classes).
        input_norm: standardise the input with a BatchNorm1d without affine parameters first,
            so that a probe on frozen features does not depend on their scale (as in the
            linear probes of MAE and MoCo v3).
    """

    def __init__(self, in_features: int, out_features: int, input_norm: bool = False):
        layers: list[nn.Module] = [nn.BatchNorm1d(in_features, affine=False)] if input_norm else []
        super().__init__(*layers, nn.Linear(in_features, out_features))
        self.in_features = in_features
        self.out_features = out_features
