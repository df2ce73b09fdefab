"""The fine-tune protocol: the encoder and the head learn together.

The encoder learns at ``lr * backbone_lr_scale``. With ``head_init="probe"`` a linear head
(tasks with ``has_linear_probe``) starts from the probe solved on the starting encoder's
features (LP-FT, Kumar et al., ICLR 2022), so that the first steps do not send a random
head's gradients into the encoder. With ``freeze_encoder_norm`` the encoder's BatchNorm
layers stay in evaluation mode (statistics fixed, affine parameters learning), as is usual
when batches are small or, like frames of a few loops, strongly correlated.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ultrassl.downstream.linear_probe import ProbeFit
from ultrassl.downstream.protocols.linear import solve_probe
from ultrassl.engine.optim import decay_groups


class FineTune:
    """Everything learns (see the module docstring).

    Args:
        backbone_lr_scale: the encoder's learning rate relative to the head's.
        head_init: ``"random"`` or ``"probe"`` (LP-FT).
        freeze_encoder_norm: keep the encoder's BatchNorm statistics fixed.
        probe_passes, probe_l2, probe_max_iter: the starting probe's solve (``head_init="probe"``).
        weight_decay: AdamW weight decay of the weights (not of biases and norms).
    """

    name = "finetune"
    frozen = False
    OPTIONS = ("backbone_lr_scale", "head_init", "freeze_encoder_norm", "probe_passes", "probe_l2", "probe_max_iter",
               "weight_decay")

    def __init__(self, backbone_lr_scale: float = 0.1, head_init: str = "random", freeze_encoder_norm: bool = False,
                 probe_passes: int = 4, probe_l2: float = 1e-3, probe_max_iter: int = 500, weight_decay: float = 1e-4):
        if head_init not in ("random", "probe"):
            raise ValueError(f"head_init must be 'random' or 'probe', got {head_init!r}")
        self.backbone_lr_scale = float(backbone_lr_scale)
        self.head_init = head_init
        self.freeze_encoder_norm = bool(freeze_encoder_norm)
        self.passes, self.l2, self.max_iter = int(probe_passes), float(probe_l2), int(probe_max_iter)
        self.weight_decay = weight_decay

    def solves_probe(self, model: Any) -> bool:
        return False

    def starts_from_probe(self, model: Any) -> bool:
        return bool(getattr(model, "has_linear_probe", False)) and self.head_init == "probe"

    def attach(self, model: Any) -> None:
        """Nothing to freeze: the encoder learns."""

    def fix_modes(self, model: Any) -> None:
        if self.freeze_encoder_norm:
            for module in model.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def on_train_start(self, model: Any) -> ProbeFit | None:
        return solve_probe(model, self.passes, self.l2, self.max_iter) if self.starts_from_probe(model) else None

    def parameter_groups(self, model: Any, lr: float) -> list[dict[str, Any]]:
        encoder = [p for p in model.backbone.parameters() if p.requires_grad]
        return (decay_groups(model.head_parameters(), self.weight_decay, lr)
                + decay_groups(encoder, self.weight_decay, lr * self.backbone_lr_scale))
