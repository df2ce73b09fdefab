"""Heads shared by the objectives: MLP projectors/predictors/classifiers and linear probes.

Heads take pooled features ``(B, in_features)`` and return ``(B, out_features)``.
"""

from __future__ import annotations

from typing import Literal

import torch
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


class PairwiseOrderHead(nn.Module):
    """Order classifier over the pairwise feature distances of N frames.

    Input: the N frame features in their shuffled order, concatenated, ``(B, N x F)``.
    For every pair of positions ``i < j`` the element-wise distance ``|f_i - f_j|`` goes
    through one shared ``Linear -> BatchNorm -> ReLU`` layer; the ``N (N - 1) / 2`` pair codes,
    concatenated in a fixed pair order, go through a Linear layer to the order classes:
    ``(B, num_classes)``.

    Pairwise frame features are the layout of the Order Prediction Network (Lee et al.,
    ICCV 2017). The absolute difference is this project's choice: it is symmetric in each
    pair, so when frame distances grow with the time between the frames, a permutation and
    its time reversal give the same input, exactly the merged classes of
    :func:`ultrassl.transforms.pretext.permutation_classes`. A plain MLP over the
    concatenated features must find that structure itself; on the simulated sweeps it
    stayed at chance for hundreds of steps where this head learns the order.

    Args:
        in_features: F, the width of one frame's feature.
        num_frames: N.
        hidden_features: width of each pair's code.
        out_features: number of order classes.
        projection_features: width of a per-frame projection (``Linear -> BatchNorm -> ReLU ->
            Linear``, shared by the frames) that the distances are taken on; 0 takes them on
            the encoder's features themselves.
    """

    def __init__(self, in_features: int, num_frames: int, hidden_features: int, out_features: int,
                 projection_features: int = 0):
        super().__init__()
        if num_frames < 2:
            raise ValueError(f"pairs need num_frames >= 2, got {num_frames}")
        self.in_features = num_frames * in_features
        self.out_features = out_features
        self.num_frames = num_frames
        pairs = torch.combinations(torch.arange(num_frames), r=2)
        self.register_buffer("pairs", pairs, persistent=False)
        if projection_features < 0:
            raise ValueError(f"projection_features must be >= 0, got {projection_features}")
        self.project: nn.Module = nn.Identity()
        if projection_features:
            self.project = nn.Sequential(
                nn.Linear(in_features, projection_features, bias=False), nn.BatchNorm1d(projection_features),
                nn.ReLU(inplace=True), nn.Linear(projection_features, projection_features),
            )
        pair_in = projection_features or in_features
        self.pair = nn.Sequential(
            nn.Linear(pair_in, hidden_features, bias=False), nn.BatchNorm1d(hidden_features), nn.ReLU(inplace=True)
        )
        self.classifier = nn.Linear(len(pairs) * hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"PairwiseOrderHead expects (B, {self.num_frames} x F = {self.in_features}), got {tuple(x.shape)}"
            )
        frames = self.project(x.reshape(x.shape[0] * self.num_frames, -1)).reshape(x.shape[0], self.num_frames, -1)
        distances = (frames[:, self.pairs[:, 0]] - frames[:, self.pairs[:, 1]]).abs()  # (B, P, F)
        codes = self.pair(distances.flatten(0, 1)).reshape(x.shape[0], -1)
        return self.classifier(codes)
