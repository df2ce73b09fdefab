"""Linear probes solved to convergence on the frozen encoder's features.

A linear probe measures what the frozen features hold, so it should not depend on how long an
optimiser was given: a probe trained for a few hundred SGD steps reports the budget as much as
the features (and two encoders may converge at different speeds). As in the linear
evaluations of SimCLR, CLIP and DINO, the features of the training clips are computed once
(``passes`` sweeps of the training loader, so its random clip choices and augmentation are
seen several times), standardised, and an L2-regularised multinomial logistic regression is
solved on them with L-BFGS. Both arms of a comparison get the same solver, data and
regularisation, so the comparison is between features alone.

The solver is written here on ``torch.optim.LBFGS`` rather than taken from scikit-learn, to
avoid a large dependency for twenty lines and to keep the result a PyTorch head that the
task's scoring, class-activation maps and checkpoints already understand.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ultrassl.threads import one_thread


@dataclass
class ProbeFit:
    """What a probe fit used and reached.

    Attributes:
        samples: training samples (clips or frames) the features were computed from.
        features: feature width F.
        iterations: L-BFGS iterations run (each may evaluate the objective several times).
        converged: whether L-BFGS stopped on its tolerances before ``max_iter``.
        loss: final training objective (weighted cross-entropy + L2 term).
        losses: the objective at every evaluation (the probe's training curve).
        l2: the L2 coefficient on the weights (standardised features).
        seconds: wall time of feature extraction and solving.
    """

    samples: int
    features: int
    iterations: int
    converged: bool
    loss: float
    losses: list[float]
    l2: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LogisticRegression:
    """A solved probe: the logits of a feature ``f`` are ``weight @ z + bias`` with
    ``z = (f - mean) / sqrt(var + eps)``; float32 tensors ``(K, F)``, ``(K,)``, ``(F,)``, ``(F,)``
    and the absolute variance floor ``eps`` the fit used."""

    weight: torch.Tensor
    bias: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor
    iterations: int
    losses: list[float]
    eps: float = 1e-5

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K)`` of features ``(N, F)``, standardised as in the fit."""
        z = (features.float() - self.mean) / torch.sqrt(self.var + self.eps)
        return z @ self.weight.T + self.bias


@torch.no_grad()
def collect_features(
    batches: Iterable[Mapping[str, Any]],
    features_and_targets: Callable[[Mapping[str, Any]], tuple[torch.Tensor, torch.Tensor]],
    passes: int = 1,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(N, F)`` float64 and integer targets ``(N,)`` over ``passes`` sweeps of
    ``batches`` (targets < 0, the unlabelled, are dropped)."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes}")
    features, targets = [], []
    for _ in range(int(passes)):
        for batch in batches:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            f, t = features_and_targets(batch)
            keep = t >= 0
            features.append(f[keep].detach().to("cpu", torch.float64))
            targets.append(t[keep].detach().to("cpu", torch.long))
    if not features or sum(len(t) for t in targets) == 0:
        raise ValueError("the training data gave no labelled samples to fit a linear probe on")
    return torch.cat(features), torch.cat(targets)


def fit_logistic_regression(
    features: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    class_weight: torch.Tensor | None = None,
    l2: float = 1e-3,
    max_iter: int = 500,
    eps: float = 1e-5,
) -> LogisticRegression:
    """Multinomial logistic regression on standardised features, solved with L-BFGS.

    Minimises ``CE_w(W z + b, y) + l2 * ||W||^2`` with ``z = (f - mean) / sqrt(var + eps)``
    (the weighted mean cross-entropy of ``F.cross_entropy``; biases are not penalised).

    Args:
        features: ``(N, F)`` features.
        targets: ``(N,)`` labels in ``[0, num_classes)``.
        num_classes: K.
        class_weight: ``(K,)`` cross-entropy weights, or None.
        l2: coefficient of the squared L2 norm of the weights.
        max_iter: L-BFGS iterations at most.
        eps: the variance floor of the standardisation, relative to the features' mean
            variance: the probe does not depend on the scale of the features (a randomly
            initialised encoder's may be small), and a feature that is constant over the
            training set stays at zero.

    Returns:
        the solved :class:`LogisticRegression`.
    """
    if features.ndim != 2 or targets.shape != features.shape[:1]:
        raise ValueError(f"features (N, F) and targets (N,) expected, got {tuple(features.shape)}, {tuple(targets.shape)}")
    if targets.min() < 0 or targets.max() >= num_classes:
        raise ValueError(f"targets must lie in [0, {num_classes}), got [{int(targets.min())}, {int(targets.max())}]")
    x = features.to(torch.float64)
    mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
    floor = float(eps) * max(float(var.mean()), torch.finfo(torch.float32).tiny)
    z = (x - mean) / torch.sqrt(var + floor)
    weight_ce = None if class_weight is None else class_weight.to(torch.float64)
    linear = nn.Linear(z.shape[1], num_classes, dtype=torch.float64)
    nn.init.zeros_(linear.weight)
    nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=int(max_iter), history_size=20,
                                  tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")
    losses: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(linear(z), targets, weight=weight_ce) + l2 * linear.weight.pow(2).sum()
        loss.backward()
        losses.append(float(loss.detach()))
        return loss

    with _threads_for(z.shape[0] * z.shape[1] * num_classes):
        optimizer.step(closure)
    iterations = int(optimizer.state[linear.weight].get("n_iter", 0))
    return LogisticRegression(linear.weight.detach().float(), linear.bias.detach().float(), mean.float(), var.float(),
                              iterations, losses, floor)


#: below this many multiply-adds per objective evaluation, L-BFGS runs on one thread
SINGLE_THREAD_WORK = 50_000_000


def _threads_for(work: int) -> contextlib.AbstractContextManager[None]:
    """One intra-op thread while solving a small problem. L-BFGS spends its time in many tiny
    vector operations (dot products of the K x F parameters), where synchronising threads costs
    far more than the arithmetic: on a busy 2-core machine 50 times more."""
    return one_thread(when=work < SINGLE_THREAD_WORK)


def load_into_head(head: nn.Sequential, probe: LogisticRegression) -> None:
    """Write a solved probe into a :class:`~ultrassl.models.heads.LinearHead`.

    A probe's head (first layer the non-affine BatchNorm1d of ``input_norm=True``) takes the
    features' mean and ``var + probe.eps`` as its running statistics, and the solved weights
    rescaled per feature by ``sqrt((var + probe.eps + bn.eps) / (var + probe.eps))`` for the
    BatchNorm's own ``eps``, so it computes the solved logits in evaluation mode. A plain linear
    head (a fine-tune's) gets the standardisation folded into its weights:
    ``W / sqrt(var + eps)`` and ``b - W @ (mean / sqrt(var + eps))``, the same logits."""
    linear = head[-1]
    var = probe.var.double() + probe.eps
    with torch.no_grad():
        if len(head) > 1:
            norm = head[0]
            if not isinstance(norm, nn.BatchNorm1d) or norm.affine:
                raise ValueError(f"cannot load a probe into a head starting with {type(norm).__name__}")
            norm.running_mean.copy_(probe.mean)
            norm.running_var.copy_(var.float())
            linear.weight.copy_((probe.weight.double() * torch.sqrt((var + norm.eps) / var)[None, :]).float())
            linear.bias.copy_(probe.bias)
        else:
            weight = probe.weight.double() * torch.rsqrt(var)[None, :]
            linear.weight.copy_(weight.float())
            linear.bias.copy_((probe.bias.double() - weight @ probe.mean.double()).float())


def fit_linear_probe(
    model: nn.Module,
    batches: Iterable[Mapping[str, Any]],
    passes: int = 4,
    l2: float = 1e-3,
    max_iter: int = 500,
) -> ProbeFit:
    """Solve the linear head of a downstream task model on its encoder's features (in
    evaluation mode) and load it into the head.

    ``model`` is a :class:`~ultrassl.downstream.base.DownstreamModule` whose task defines
    ``probe_features(batch) -> (features, targets)``, ``probe_class_weight()`` and a
    ``head`` (:class:`~ultrassl.models.heads.LinearHead`); ``batches`` are its training
    batches (e.g. the data module's training loader). For a frozen encoder this is the linear
    probe; for a fine-tune it is the head's starting point (LP-FT: Kumar et al., ICLR 2022)."""
    started = time.perf_counter()
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        features, targets = collect_features(batches, model.probe_features, passes, device)
        class_weight = model.probe_class_weight()
        probe = fit_logistic_regression(
            features, targets, model.head[-1].out_features,
            None if class_weight is None else class_weight.detach().cpu(), l2, max_iter)
        load_into_head(model.head, probe)
    finally:
        model.train(was_training)
    return ProbeFit(samples=len(targets), features=features.shape[1], iterations=probe.iterations,
                    converged=probe.iterations < max_iter, loss=probe.losses[-1], losses=probe.losses, l2=float(l2), seconds=time.perf_counter() - started)
