"""CEP, Cycle Encoding Prediction (Yang, Mirmehdi, Burghardt, BMVC 2021): METHODS.md section 5.

One window of 3T frames gives the past, current and future snippets (``p``, ``c``, ``f``) and
a second, subsampled view of the whole window (``instance``), drawn by
:class:`ultrassl.pipelines.cep.CEPPipeline`. One shared encoder carries two heads: the
instance head ``A`` and the cycle head ``C`` (pooled -> Linear -> LayerNorm -> ReLU ->
Linear, L2-normalised). A momentum copy of encoder and heads (0.99) gives the targets.

* prediction and cycle (:mod:`ultrassl.losses.cycle`): a forward predictor ``F`` and a
  backward predictor ``B`` (MLP D -> 2D -> D with BatchNorm) move the online cycle embeddings
  of the snippets one or two steps in time, and there and back, onto the momentum cycle
  embeddings, with ``d(u, v) = 2 - 2 cos(u, v)``;
* instance: the online instance embedding of the ``instance`` view is the query, the
  momentum instance embeddings of ``p``, ``c`` and ``f`` are its three positives, and the
  queue of earlier batches' keys (the current snippets') are the negatives
  (multi-positive InfoNCE, tau 0.07);
* total = 1.0 instance + 1.0 prediction + 0.1 cycle.

Ablations (the paper's): ``cycle=False`` drops the cycle term; ``backward_predictor=False``
drops ``B``, so the backward prediction terms and the cycle (which needs ``B``) go too.

Logged: ``loss``, ``instance_loss``, ``prediction_loss``, ``cycle_loss`` (with the cycle);
``instance_acc``, the share of the three positives ranked first among the queue (chance
``1 / (K + 1)`` once the queue holds real keys); ``forward_acc``, the share of windows whose
predicted future ``F(c_c)`` is nearer their own future ``k_f`` than any other window's in the
batch (chance ``1 / B``), and ``backward_acc`` the same for ``B(c_c)`` and the past.

Batch layout: clips ``(B, C, T, H, W)`` under ``view_keys`` (past, current, future, instance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ultrassl.engine.base import PretrainModule
from ultrassl.losses.cycle import cycle_pairs, mean_distance, prediction_pairs
from ultrassl.losses.infonce import InfoNCELoss
from ultrassl.models.heads import MLPHead, Norm
from ultrassl.models.momentum import KeyQueue, MomentumEncoder


class TwoHeadEncoder(nn.Module):
    """Backbone with the instance and cycle heads: clips ``(B, C, T, H, W)`` -> two ``(B, D)``
    embeddings (not normalised). The online one is a view of the objective's modules; its
    momentum copy has the same layout."""

    def __init__(self, backbone: nn.Module, instance_head: nn.Module, cycle_head: nn.Module):
        super().__init__()
        self.backbone, self.instance_head, self.cycle_head = backbone, instance_head, cycle_head

    def forward(self, clips: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone.forward_features(clips)
        return self.instance_head(features), self.cycle_head(features)


class CEP(PretrainModule):
    """Cycle encoding prediction with instance discrimination over a key queue.

    Args:
        momentum: EMA momentum of the target encoder (0.99).
        queue_size: keys kept as negatives of the instance term.
        temperature: InfoNCE tau (0.07).
        projection_dim: D, the width of both heads' embeddings (128).
        head_hidden: width of the heads' hidden layer.
        head_norm: normalisation after the heads' hidden layer (``"layer"`` as in CEP).
        predictor_hidden: width of the predictors' hidden layer (default 2D).
        instance_weight, prediction_weight, cycle_weight: weights of the three terms (1, 1, 0.1).
        cycle: include the cycle-closure term.
        backward_predictor: include ``B`` (and with it the backward terms).
        view_keys: batch keys of the past, current, future and instance clips.
        **kwargs: backbone, optimiser and schedule options of :class:`PretrainModule`.
    """

    def __init__(
        self,
        momentum: float = 0.99,
        queue_size: int = 4096,
        temperature: float = 0.07,
        projection_dim: int = 128,
        head_hidden: int = 512,
        head_norm: Norm = "layer",
        predictor_hidden: int | None = None,
        instance_weight: float = 1.0,
        prediction_weight: float = 1.0,
        cycle_weight: float = 0.1,
        cycle: bool = True,
        backward_predictor: bool = True,
        view_keys: Sequence[str] = ("past", "current", "future", "instance"),
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
        if cycle and not backward_predictor:
            raise ValueError("the cycle term needs the backward predictor; set cycle: false with "
                             "backward_predictor: false")
        if len(view_keys) != 4:
            raise ValueError(f"CEP takes four view keys (past, current, future, instance), got {list(view_keys)}")
        self.momentum = momentum
        self.view_keys = tuple(view_keys)
        self.weights = {"instance": instance_weight, "prediction": prediction_weight, "cycle": cycle_weight}
        self.cycle = cycle
        features = self.backbone.num_features
        self.instance_head = MLPHead(features, head_hidden, projection_dim, num_layers=2, norm=head_norm)
        self.cycle_head = MLPHead(features, head_hidden, projection_dim, num_layers=2, norm=head_norm)
        hidden = predictor_hidden or 2 * projection_dim
        self.forward_predictor = MLPHead(projection_dim, hidden, projection_dim, num_layers=2, norm="batch")
        self.backward_predictor = (
            MLPHead(projection_dim, hidden, projection_dim, num_layers=2, norm="batch") if backward_predictor else None
        )
        self.key_encoder = MomentumEncoder(self._online())
        self.queue = KeyQueue(projection_dim, queue_size)
        self.criterion = InfoNCELoss(temperature)

    def _online(self) -> TwoHeadEncoder:
        # a view of the online encoder and heads, laid out like the momentum copy (not registered)
        return TwoHeadEncoder(self.backbone, self.instance_head, self.cycle_head)

    def predict_forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """``F``: cycle embeddings one snippet later, L2-normalised."""
        return F.normalize(self.forward_predictor(embedding), dim=-1)

    def predict_backward(self, embedding: torch.Tensor) -> torch.Tensor:
        """``B``: cycle embeddings one snippet earlier, L2-normalised."""
        if self.backward_predictor is None:
            raise RuntimeError("this CEP was built without the backward predictor")
        return F.normalize(self.backward_predictor(embedding), dim=-1)

    def objective_step(self, batch: Mapping[str, Any], stage: str) -> dict[str, torch.Tensor]:
        past, current, future, instance = (batch[key] for key in self.view_keys)
        n = past.shape[0]
        training = stage == "train"
        if training:
            self.key_encoder.update(self._online(), self.momentum)

        # One online pass over the four views: BatchNorm sees them together.
        instance_online, cycle_online = self._online()(torch.cat([past, current, future, instance]))
        query = F.normalize(instance_online[3 * n:], dim=-1)
        c = tuple(F.normalize(cycle_online[: 3 * n], dim=-1).split(n))
        instance_keys, cycle_keys = self.key_encoder(torch.cat([past, current, future]))
        positives = F.normalize(instance_keys, dim=-1).reshape(3, n, -1).transpose(0, 1)  # (B, 3, D)
        k = tuple(F.normalize(cycle_keys, dim=-1).split(n))

        backward = self.predict_backward if self.backward_predictor is not None else None
        queue = self.queue.keys()
        logits = self.criterion.logits(query, positives, queue)
        terms = {
            "instance": F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)),
            "prediction": mean_distance(prediction_pairs(c, k, self.predict_forward, backward)),
        }
        if self.cycle:
            terms["cycle"] = mean_distance(cycle_pairs(c, k, self.predict_forward, self.predict_backward))
        loss = sum(self.weights[name] * value for name, value in terms.items())
        outputs = {"loss": loss, **{f"{name}_loss": value for name, value in terms.items()}}
        with torch.no_grad():
            outputs["instance_acc"] = (logits.argmax(dim=1) == 0).float().mean()
            outputs["forward_acc"] = _retrieval_accuracy(self.predict_forward(c[1]), k[2])
            if backward is not None:
                outputs["backward_acc"] = _retrieval_accuracy(backward(c[1]), k[0])
        if training:
            self.queue.enqueue(positives[:, 1])
        return outputs


def _retrieval_accuracy(predicted: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Share of rows whose prediction is nearest its own target among the batch's targets."""
    similarity = predicted @ targets.T
    return (similarity.argmax(dim=1) == torch.arange(len(targets), device=targets.device)).float().mean()
