"""The linear protocol: a frozen encoder and a head that learns on its features.

The encoder gets no gradients and stays in evaluation mode (its BatchNorm statistics fixed).
For tasks whose head is a linear classifier (``has_linear_probe``) the probe is by default
solved to convergence when fitting starts (``solver="lbfgs"``,
:func:`~ultrassl.downstream.linear_probe.fit_linear_probe`) and the fit ends there, instead
of being trained for ``max_steps`` SGD steps (``solver="sgd"``); other heads (the saliency
decoder) train by SGD.
"""

from __future__ import annotations

from typing import Any

import torch

from ultrassl.data.datamodule import sweep_loader
from ultrassl.downstream.linear_probe import ProbeFit, fit_linear_probe
from ultrassl.engine.bad_clips import monitored_batches
from ultrassl.engine.optim import decay_groups


def solve_probe(model: Any, passes: int, l2: float, max_iter: int) -> ProbeFit:
    """Solve ``model``'s linear head on its encoder's features of the training loader (one
    process only: each would solve on its own shard and the copies would differ)."""
    if model.trainer.world_size > 1:
        raise ValueError("the L-BFGS probe (linear_solver='lbfgs' or head_init='probe') is solved in one "
                         "process: train it with trainer.devices=1, or use linear_solver='sgd' and "
                         "head_init='random' under DDP")
    # the sweeps run outside Lightning's loop, on a loader of their own (the trainer's keeps
    # its iterator for the first epoch); the bad-clip monitor sees their batches here
    batches = monitored_batches(model.trainer, sweep_loader(model.trainer.train_dataloader))
    # and leave the global generator as they found it (each new iterator draws a seed from
    # it), so that what follows (a fine-tune's dropout) does not depend on how loading runs
    with torch.random.fork_rng(devices=[]):
        return fit_linear_probe(model, batches, passes=passes, l2=l2, max_iter=max_iter)


class LinearProbe:
    """Frozen encoder; the head learns (see the module docstring).

    Args:
        linear_solver: ``"lbfgs"`` (solve a linear head when fitting starts) or ``"sgd"``.
        probe_passes: sweeps of the training loader whose features the L-BFGS probe sees.
        probe_l2: L2 coefficient of the probe's weights (standardised features).
        probe_max_iter: L-BFGS iterations at most.
        weight_decay: AdamW weight decay of the head's weights (SGD training).
    """

    name = "linear"
    frozen = True
    OPTIONS = ("linear_solver", "probe_passes", "probe_l2", "probe_max_iter", "weight_decay")

    def __init__(self, linear_solver: str = "lbfgs", probe_passes: int = 4, probe_l2: float = 1e-3,
                 probe_max_iter: int = 500, weight_decay: float = 1e-4):
        if linear_solver not in ("lbfgs", "sgd"):
            raise ValueError(f"linear_solver must be 'lbfgs' or 'sgd', got {linear_solver!r}")
        self.linear_solver = linear_solver
        self.passes, self.l2, self.max_iter = int(probe_passes), float(probe_l2), int(probe_max_iter)
        self.weight_decay = weight_decay

    @staticmethod
    def solves(model_class: type, linear_solver: str = "lbfgs") -> bool:
        """Whether a model of ``model_class`` under this protocol solves its head by L-BFGS."""
        return bool(getattr(model_class, "has_linear_probe", False)) and linear_solver == "lbfgs"

    def solves_probe(self, model: Any) -> bool:
        return self.solves(type(model), self.linear_solver)

    def starts_from_probe(self, model: Any) -> bool:
        return False

    def attach(self, model: Any) -> None:
        """Freeze ``model``'s encoder."""
        model.backbone.requires_grad_(False)
        model.backbone.eval()

    def fix_modes(self, model: Any) -> None:
        """A frozen encoder keeps its BatchNorm statistics: evaluation mode whatever the module's."""
        model.backbone.eval()

    def on_train_start(self, model: Any) -> ProbeFit | None:
        if not self.solves_probe(model):
            return None
        fit = solve_probe(model, self.passes, self.l2, self.max_iter)
        if model.logger is not None:
            for i, loss in enumerate(fit.losses):
                model.logger.log_metrics({"train/probe_objective": loss}, step=i)
        # The probe is solved: no SGD step follows (the loop checks this before its first step).
        model.trainer.should_stop = True
        return fit

    def parameter_groups(self, model: Any, lr: float) -> list[dict[str, Any]]:
        return decay_groups(model.head_parameters(), self.weight_decay, lr)
