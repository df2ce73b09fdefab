"""The optimiser and learning-rate schedule every module of this package trains with.

Parameters fall in two groups per learning rate (:func:`decay_groups`): weights with weight
decay, biases and normalisation scales (1-D) without. The optimiser is AdamW or SGD
(:func:`make_optimizer`); the learning rate warms up linearly, then follows half a cosine
to ``min_lr`` at the end of the run, or stays constant (:func:`warmup_cosine_schedule`),
updated every optimiser step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial
from typing import Any, Literal

import torch
from torch import nn

Scheduler = Literal["cosine", "constant"]
SCHEDULERS = ("cosine", "constant")


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_factor: float = 0.0) -> float:
    """Learning-rate multiplier at optimiser ``step``: linear warm-up then half a cosine.

    Rises linearly from ``1 / (warmup_steps + 1)`` to 1 over ``warmup_steps`` steps, then falls
    along a cosine from 1 to ``min_factor`` at ``total_steps`` (and stays there).
    """
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def decay_groups(parameters: Iterable[nn.Parameter], weight_decay: float, lr: float | None = None) -> list[dict[str, Any]]:
    """Two parameter groups of the trainable ``parameters``: weights with ``weight_decay``;
    biases and norm scales (1-D) without; both at ``lr`` when given (else the optimiser's)."""
    decay, no_decay = [], []
    for parameter in parameters:
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if lr is not None:
        for group in groups:
            group["lr"] = lr
    return groups


def make_optimizer(name: str, groups: list[dict[str, Any]], lr: float, momentum: float = 0.9) -> torch.optim.Optimizer:
    """``"adamw"`` or ``"sgd"`` (with ``momentum``) over the non-empty ``groups``."""
    groups = [g for g in groups if g["params"]]
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {name!r}")


def check_scheduler(scheduler: str) -> None:
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be 'cosine' or 'constant', got {scheduler!r}")


def warmup_cosine_schedule(optimizer: torch.optim.Optimizer, scheduler: Scheduler, warmup_steps: int,
                           total_steps: float, lr: float, min_lr: float = 0.0) -> dict[str, Any]:
    """Lightning's ``lr_scheduler`` entry: :func:`warmup_cosine_factor` per optimiser step.

    ``total_steps`` is the run's length (``Trainer.estimated_stepping_batches``); the cosine
    needs it finite. ``"constant"`` warms up, then keeps ``lr``.
    """
    check_scheduler(scheduler)
    if scheduler == "cosine":
        if not math.isfinite(total_steps):
            raise ValueError("the cosine schedule needs a finite run: set trainer max_steps or max_epochs")
        factor = partial(warmup_cosine_factor, warmup_steps=int(warmup_steps), total_steps=int(total_steps),
                         min_factor=min_lr / lr if lr > 0 else 0.0)
    else:
        # A cosine that ends at factor 1 is constant after the warm-up.
        factor = partial(warmup_cosine_factor, warmup_steps=int(warmup_steps), total_steps=int(warmup_steps) + 1,
                         min_factor=1.0)
    return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "interval": "step"}
