"""Momentum (EMA) encoders and the MoCo key queue (VTDL; CEP reuses both).

Both keep their whole state in parameters and buffers, so a checkpoint restores them and
``Module.to(device)`` moves them with the rest of the model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ultrassl import distributed


class MomentumEncoder(nn.Module):
    """A frozen copy of ``online`` that follows it by exponential moving average.

    ``update(online, m)`` sets every parameter to ``m * self + (1 - m) * online``. Buffers
    (BatchNorm statistics) are not averaged: the copy runs in training mode like the online
    module, so its statistics follow the batches it sees, as in MoCo. Its forward never
    builds a graph.

    Args:
        online: the module to copy (e.g. ``nn.Sequential(backbone, head)``); it is not
            stored here, only copied, so the copy's parameters are not shared with it.
    """

    def __init__(self, online: nn.Module):
        super().__init__()
        self.module = copy.deepcopy(online)
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    @torch.no_grad()
    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    @torch.no_grad()
    def update(self, online: nn.Module, momentum: float) -> None:
        """EMA step towards ``online`` (same architecture); ``momentum`` in [0, 1]."""
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
        ema = list(self.module.parameters())
        current = list(online.parameters())
        if len(ema) != len(current):
            raise ValueError(
                f"MomentumEncoder holds {len(ema)} parameter tensors but the online module has {len(current)}"
            )
        torch._foreach_lerp_(ema, [p.detach() for p in current], 1.0 - momentum)


class KeyQueue(nn.Module):
    """A first-in-first-out queue of ``size`` key vectors of ``dim`` values (MoCo).

    :meth:`enqueue` writes the newest keys over the oldest, gathered from every process
    first (so all processes hold the same queue).

    Before the first ``size`` keys arrive, MoCo's choice (``random_init=True``) fills the
    queue with random unit vectors: their similarity to any query is about 0, and the number
    of logits, hence the scale of the loss, is the same from the first step (so loss curves
    can be compared across a run). With ``random_init=False``, :meth:`keys` returns only the
    keys written so far.

    Buffers: ``queue`` ``(size, dim)``, ``pointer`` (next row to write), ``filled`` (rows
    that :meth:`keys` returns).

    Args:
        dim: key dimension D.
        size: number of keys K kept (VTDL: 5000 for UCF101; a small default for CPU runs).
        random_init: start from random unit vectors (MoCo) instead of an empty queue.
    """

    def __init__(self, dim: int, size: int = 4096, random_init: bool = True):
        super().__init__()
        if dim < 1 or size < 1:
            raise ValueError(f"KeyQueue needs dim >= 1 and size >= 1, got dim={dim}, size={size}")
        initial = F.normalize(torch.randn(size, dim), dim=1) if random_init else torch.zeros(size, dim)
        self.register_buffer("queue", initial)
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.tensor(size if random_init else 0, dtype=torch.long))

    @property
    def size(self) -> int:
        return self.queue.shape[0]

    def keys(self) -> torch.Tensor:
        """The keys held, ``(filled, D)``, detached."""
        return self.queue[: int(self.filled)].detach()

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Append ``keys`` ``(N, D)`` from this process (gathered from all processes first)."""
        if keys.ndim != 2 or keys.shape[1] != self.queue.shape[1]:
            raise ValueError(f"KeyQueue expects keys (N, {self.queue.shape[1]}), got {tuple(keys.shape)}")
        keys = distributed.gather_no_grad(keys).to(self.queue.dtype)
        if keys.shape[0] > self.size:
            keys = keys[-self.size :]  # only the newest fit
        n = keys.shape[0]
        start = int(self.pointer)
        rows = (torch.arange(n, device=self.queue.device) + start) % self.size
        self.queue[rows] = keys
        self.pointer.fill_((start + n) % self.size)
        self.filled.fill_(min(self.size, int(self.filled) + n))
