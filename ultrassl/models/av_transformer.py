"""Pieces of the parameter-efficient audio-visual transformer (Lee et al., ICLR 2021).

* :class:`AudioCNN`: a small 2D CNN over log-mel spectrograms ``(B, 1, mels, frames)`` that
  keeps coarse frequency bands (pitch).
* :class:`FactorisedLinear`: ``W x = U R normalise(V x) + b`` with ``V`` (in -> O) and the
  orthogonal core ``R`` (O x O, kept orthogonal by ``torch.nn.utils.parametrizations.orthogonal``)
  private to one transformer, and ``U`` (O -> out) shared by all of them.
* :class:`TransformerStack`: pre-norm transformer layers over a layer-normalised sequence with a
  learned summary (BOS) token and positions; ``sharing`` picks ``"none"`` (a layer per depth, plain Linear
  weights), ``"layer"`` (one layer reused at every depth, ALBERT-style) or ``"full"`` (one layer
  reused, its weights factorised over :class:`SharedFactors`).
* :func:`transformer_parameters`: the parameter counts of the three transformers at one width
  and depth under each sharing scheme (the paper reports up to 97 % fewer with full sharing).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

Sharing = Literal["none", "layer", "full"]
SHARINGS: tuple[str, ...] = ("none", "layer", "full")
#: the weights of one transformer layer: attention projections and the feed-forward pair
ROLES = ("query", "key", "value", "output", "ffn_in", "ffn_out")


class AudioCNN(nn.Module):
    """Conv(3x3, stride 2) -> BatchNorm -> ReLU per stage, then the mean over time and an average
    over ``frequency_bins`` bands of the mel axis, flattened.

    Pitch is where the energy sits on the mel axis: pooling over frequency too, as image CNNs
    pool over space, would keep the texture of the sound and lose which tone it is.

    Input ``(B, 1, mels, frames)``; output ``(B, channels[-1] * frequency_bins)`` (``num_features``).
    """

    def __init__(self, channels: tuple[int, ...] | list[int] = (16, 32, 64), frequency_bins: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        width = 1
        for out in channels:
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out),
                       nn.ReLU(inplace=True)]
            width = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((frequency_bins, 1))
        self.num_features = width * frequency_bins
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(spectrogram)).flatten(1)


class SharedFactors(nn.Module):
    """The ``U`` of every role, shared by the transformers: ``(out_features, rank)`` each."""

    def __init__(self, width: int, ffn_width: int, rank: int):
        super().__init__()
        outs = {"query": width, "key": width, "value": width, "output": width, "ffn_in": ffn_width, "ffn_out": width}
        self.factors = nn.ParameterDict({
            role: nn.Parameter(torch.randn(out, rank) / rank**0.5) for role, out in outs.items()
        })

    def __getitem__(self, role: str) -> nn.Parameter:
        return self.factors[role]


class FactorisedLinear(nn.Module):
    """``y = U R normalise(V x) + b``: ``V`` ``(rank, in)`` and ``R`` ``(rank, rank)`` orthogonal are
    this layer's own, ``U`` ``(out, rank)`` is shared (:class:`SharedFactors`). The normalisation
    (L2 over the rank dimension, times sqrt(rank)) keeps the scale of the code fixed, so the
    shared ``U`` sees inputs of one scale from every transformer."""

    def __init__(self, in_features: int, shared: nn.Parameter, bias: bool = True):
        super().__init__()
        out_features, rank = shared.shape
        self.shared = shared  # registered by its owner; here a reference
        self.private = nn.Linear(in_features, rank, bias=False)
        self.core = parametrizations.orthogonal(nn.Linear(rank, rank, bias=False))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.rank = rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = F.normalize(self.private(x), dim=-1) * self.rank**0.5
        return F.linear(self.core(code), self.shared, self.bias)


def _linear(in_features: int, role: str, shared: SharedFactors | None, out_features: int) -> nn.Module:
    if shared is None:
        return nn.Linear(in_features, out_features)
    return FactorisedLinear(in_features, shared[role])


class TransformerLayer(nn.Module):
    """Pre-norm multi-head self-attention and feed-forward, each with a residual connection."""

    def __init__(self, width: int, heads: int, ffn_width: int, dropout: float = 0.0,
                 shared: SharedFactors | None = None):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.query = _linear(width, "query", shared, width)
        self.key = _linear(width, "key", shared, width)
        self.value = _linear(width, "value", shared, width)
        self.output = _linear(width, "output", shared, width)
        self.ffn_in = _linear(width, "ffn_in", shared, ffn_width)
        self.ffn_out = _linear(ffn_width, "ffn_out", shared, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        h = self.norm1(x)
        split = lambda t: t.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        attended = F.scaled_dot_product_attention(split(self.query(h)), split(self.key(h)), split(self.value(h)))
        x = x + self.dropout(self.output(attended.transpose(1, 2).reshape(b, n, d)))
        return x + self.dropout(self.ffn_out(F.gelu(self.ffn_in(self.norm2(x)))))


class TransformerStack(nn.Module):
    """A summary (BOS) token, learned positions and ``depth`` transformer layers.

    Input ``(B, N, width)`` (N <= ``max_tokens``); output ``(B, 1 + N, width)``, the summary token
    first.

    Args:
        sharing: ``"none"``, ``"layer"`` or ``"full"`` (see the module doc); ``"full"`` needs
            ``shared``.
    """

    def __init__(self, width: int, depth: int, heads: int, ffn_width: int, max_tokens: int,
                 sharing: Sharing = "full", shared: SharedFactors | None = None, dropout: float = 0.0):
        super().__init__()
        if sharing not in SHARINGS:
            raise ValueError(f"sharing must be one of {SHARINGS}, got {sharing!r}")
        if (sharing == "full") != (shared is not None):
            raise ValueError("factorised weights (sharing 'full') and shared factors go together")
        self.depth = depth
        self.summary = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        # Tokens are layer-normalised and positions drawn at the same unit scale, not BERT's 0.02:
        # at 0.02 beside the raw CNN embeddings the order of a handful of segments stayed
        # invisible for hundreds of steps, and correct pair prediction must see order to tell
        # audio shifted by a segment from aligned audio.
        self.input_norm = nn.LayerNorm(width)
        self.positions = nn.Parameter(torch.randn(1, 1 + max_tokens, width))
        count = depth if sharing == "none" else 1
        self.layers = nn.ModuleList(TransformerLayer(width, heads, ffn_width, dropout, shared) for _ in range(count))
        self.norm = nn.LayerNorm(width)

    def forward(self, tokens: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``positions`` ``(1 + N, width)``, when given, replaces the learned ones (the multimodal
        transformer gives both modalities' tokens of one segment the same position)."""
        x = torch.cat([self.summary.expand(tokens.shape[0], -1, -1), self.input_norm(tokens)], dim=1)
        x = x + (self.positions[:, : x.shape[1]] if positions is None else positions)
        for depth in range(self.depth):
            x = self.layers[depth % len(self.layers)](x)
        return self.norm(x)


class AudioVisualTransformers(nn.Module):
    """Visual, audio and multimodal transformers (mid fusion): the modality transformers see their
    segment embeddings, the multimodal one the concatenation of both outputs (each with its
    summary token) plus a modality embedding.

    ``forward(visual (B, S, width), audio (B, S, width))`` returns the three outputs
    ``(B, 1 + S, width)``, ``(B, 1 + S, width)`` and ``(B, 1 + 2 (1 + S), width)``; the last is
    laid out as [multimodal summary, visual summary, S visual, audio summary, S audio].
    """

    def __init__(self, width: int = 64, depth: int = 2, heads: int = 4, ffn_width: int | None = None,
                 rank: int = 16, num_segments: int = 4, sharing: Sharing = "full", dropout: float = 0.0):
        super().__init__()
        ffn_width = ffn_width or 4 * width
        self.shared = SharedFactors(width, ffn_width, rank) if sharing == "full" else None
        options = dict(width=width, depth=depth, heads=heads, ffn_width=ffn_width, sharing=sharing,
                       shared=self.shared, dropout=dropout)
        self.visual = TransformerStack(max_tokens=num_segments, **options)
        self.audio = TransformerStack(max_tokens=num_segments, **options)
        self.multimodal = TransformerStack(max_tokens=1 + num_segments, **options)  # positions: see forward
        self.modality = nn.Parameter(torch.randn(2, width))

    def forward(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        visual_out, audio_out = self.visual(visual), self.audio(audio)
        fused = torch.cat([visual_out, audio_out], dim=1)
        # A segment's picture and sound share one learned position and differ by a modality
        # embedding: aligned pairs then sit at matching positions from the first step, instead of
        # the transformer having to learn that token i and token i + S + 1 belong together.
        segment = self.multimodal.positions[0, 1 : 2 + fused.shape[1] // 2]  # (1 + S, width)
        positions = torch.cat([self.multimodal.positions[0, :1],
                               segment + self.modality[0], segment + self.modality[1]], dim=0)
        return visual_out, audio_out, self.multimodal(fused, positions)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of ``module`` (a parameter reached twice is counted once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters() if p.requires_grad}.values())


def transformer_parameters(width: int = 64, depth: int = 2, heads: int = 4, rank: int = 16,
                           num_segments: int = 4) -> dict[str, int]:
    """Parameters of the three transformers at one width and depth, per sharing scheme."""
    return {sharing: count_parameters(AudioVisualTransformers(width, depth, heads, rank=rank,
                                                              num_segments=num_segments, sharing=sharing))
            for sharing in SHARINGS}
