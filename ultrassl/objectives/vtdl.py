"""VTDL, video temporal discriminative learning (Wang, Lin, Ma, Yuen 2020): METHODS.md section 3.

Per video, :class:`ultrassl.transforms.temporal.TripletSampler` gives an anchor and a
positive from the same start (they differ only by their spatial augmentation) and a
temporal negative from another start of the same video; the data pipeline
(:class:`ultrassl.pipelines.vtdl.VTDLPipeline`) puts temporal consistent augmentation (TCA)
on the anchor. The anchor is encoded by the online encoder (query ``q``), the positive by a
momentum copy (key ``k+``); keys of earlier batches wait in a queue. Logits
``[q.k+, q.queue, q.n] / tau`` with the temporal negative ``n`` encoded by the online
encoder (its gradient flows), cross-entropy with the positive as the target.

Ablation ladder (VTDL's table): basic augmentation (BA) is instance discrimination with
``temporal_discrimination=False`` and the pipeline's ``tca=False``; ``+TD`` sets
``temporal_discrimination=True``; ``+TCA`` also sets the pipeline's ``tca=True`` (the
defaults).

``reversed_negative=True`` (an extension, off by default) adds the anchor played backwards,
encoded online like the temporal negative, as one more negative of the query. The published
pretext never asks which way time runs: where each clip looks like no other it is solved by
appearance, and on classes that are time reversals of each other (the motion clips' MoveLeft
and MoveRight) its features carry no more of the direction than a random network's. A clip and
its reversal hold the same frames, so only their order tells them apart (the arrow-of-time
pretext of Wei et al., CVPR 2018, and the temporal-transformation negatives of Jenni et al.,
ECCV 2020, ask the same). docs/findings.md gives what it changes.

Logged: ``loss``; ``contrastive_acc``, the top-1 retrieval of the positive among the queue
and the online negatives (chance ``1 / (K + 1 + M)`` with M of them: the temporal negative,
the reversed one); ``temporal_acc`` (with temporal discrimination), the share of triplets whose
positive is nearer the query than their temporal negative (chance 0.5; triplets with a masked
negative are left out); ``reversal_acc`` (with the reversed negative), the share of clips whose
positive is nearer the query than the anchor played backwards (chance 0.5). All of them score
the negatives as keys of the momentum encoder, like the positive and the queue. Until the
queue has been filled once it holds MoCo's random keys, which nothing resembles, so
``contrastive_acc`` starts high.

Batch layout: clips ``(B, C, T, H, W)`` under ``anchor_key``, ``positive_key`` and (with
temporal discrimination) ``negative_key``; the sampler's record
``"{negative_key}_params"["temporal"]["negative_far_enough"]`` masks temporal negatives that
a short video could not place far enough from the anchor.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ultrassl.engine.base import PretrainModule
from ultrassl.losses.infonce import InfoNCELoss
from ultrassl.models.heads import MLPHead, Norm
from ultrassl.models.momentum import KeyQueue, MomentumEncoder
from ultrassl.transforms.base import batch_param


class VTDL(PretrainModule):
    """Temporal discrimination with a momentum key encoder, a key queue and online temporal negatives.

    Args:
        temporal_discrimination: add the online-encoded temporal negative as a logit (TD).
        reversed_negative: add the anchor played backwards, encoded online, as a logit.
        momentum: EMA momentum of the key encoder (0.999).
        queue_size: keys kept as negatives (paper: 5000 for UCF101).
        temperature: InfoNCE tau (0.07).
        projection_dim: output width of the head (128).
        head_hidden: width of the hidden head layer.
        head_layers: Linear layers of the head (2: MoCo v2's MLP head).
        head_norm: normalisation after the hidden head layers (``"none"`` as in MoCo v2).
        anchor_key, positive_key, negative_key: batch keys of the three clips.
        **kwargs: backbone, optimiser and schedule options of :class:`PretrainModule`.
    """

    def __init__(
        self,
        temporal_discrimination: bool = True,
        reversed_negative: bool = False,
        momentum: float = 0.999,
        queue_size: int = 4096,
        temperature: float = 0.07,
        projection_dim: int = 128,
        head_hidden: int = 512,
        head_layers: int = 2,
        head_norm: Norm = "none",
        anchor_key: str = "anchor",
        positive_key: str = "positive",
        negative_key: str = "negative",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must lie in [0, 1], got {momentum}")
        self.temporal_discrimination = temporal_discrimination
        self.reversed_negative = reversed_negative
        self.momentum = momentum
        self.anchor_key, self.positive_key, self.negative_key = anchor_key, positive_key, negative_key
        self.projector = MLPHead(
            self.backbone.num_features, head_hidden, projection_dim, num_layers=head_layers, norm=head_norm
        )
        self.key_encoder = MomentumEncoder(self._online())
        self.queue = KeyQueue(projection_dim, queue_size)
        self.criterion = InfoNCELoss(temperature)

    def _online(self) -> nn.Module:
        # a view of the online encoder + head, laid out like the momentum copy (not registered)
        return nn.Sequential(self.backbone, self.projector)

    def project(self, clips: torch.Tensor) -> torch.Tensor:
        """Online embeddings ``(B, projection_dim)``, L2-normalised, of clips ``(B, C, T, H, W)``."""
        return F.normalize(self.projector(self.encode(clips)), dim=1)

    def objective_step(self, batch: Mapping[str, Any], stage: str) -> dict[str, torch.Tensor]:
        anchor = batch[self.anchor_key]
        training = stage == "train"
        if training:
            self.key_encoder.update(self._online(), self.momentum)

        # One online pass over the query and its online negatives (BatchNorm sees them together);
        # each negative kind comes with a mask of the samples where it counts.
        online_clips, masks = [anchor], []
        if self.temporal_discrimination:
            online_clips.append(batch[self.negative_key])
            far_enough = batch_param(batch, self.negative_key, "temporal", "negative_far_enough")
            masks.append(far_enough.to(device=anchor.device, dtype=torch.bool))
        if self.reversed_negative:
            online_clips.append(torch.flip(anchor, dims=(2,)))  # the time axis of (B, C, T, H, W)
            masks.append(torch.ones(anchor.shape[0], dtype=torch.bool, device=anchor.device))
        query, *negatives = self.project(torch.cat(online_clips)).chunk(len(online_clips))
        key = F.normalize(self.key_encoder(batch[self.positive_key]), dim=1)

        queue = self.queue.keys()
        extra = (torch.stack(negatives, 1), torch.stack(masks, 1)) if negatives else (None, None)
        logits = self.criterion.logits(query, key, queue, *extra)
        loss = F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device))
        outputs = {"loss": loss}
        if not negatives:
            outputs["contrastive_acc"] = (logits.detach().argmax(dim=1) == 0).float().mean()
        else:
            outputs.update(self._accuracies(query.detach(), key, queue, online_clips[1:], masks))
        if training:
            self.queue.enqueue(key)
        return outputs

    def _accuracies(
        self, query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, negative_clips: list[torch.Tensor],
        masks: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """``contrastive_acc``, ``temporal_acc`` and ``reversal_acc`` with the negatives scored as keys.

        The loss's own logits of the negatives come from the online encoder, like the query;
        that shared encoder alone puts ``q.n`` above ``q.k+`` for most held-out triplets (the
        momentum copy's BatchNorm statistics lag), whatever the times of the clips, so a top-1
        over the loss's logits measures which encoder made a vector, not what the clips show.
        Here the negatives go through the momentum encoder like the positive and the queue.
        """
        with _buffers_kept(self.key_encoder):
            negative_keys = F.normalize(self.key_encoder(torch.cat(negative_clips)), dim=1).chunk(len(negative_clips))
        mask = torch.stack(masks, 1)
        logits = self.criterion.logits(query, key, queue, torch.stack(negative_keys, 1), mask)
        outputs = {"contrastive_acc": (logits.argmax(dim=1) == 0).float().mean()}
        names = (["temporal_acc"] if self.temporal_discrimination else []) + (
            ["reversal_acc"] if self.reversed_negative else [])
        positive_similarity = (query * key).sum(1)
        for name, negative_key, counted in zip(names, negative_keys, masks):
            # one formula for both scores, so that equal clips tie exactly
            beats = (positive_similarity > (query * negative_key).sum(1)) & counted
            outputs[name] = beats.sum() / counted.sum().clamp(min=1)
        return outputs


@contextmanager
def _buffers_kept(module: nn.Module):
    """Run ``module`` without its buffers changing (BatchNorm statistics in training mode)."""
    saved = [buffer.clone() for buffer in module.buffers()]
    try:
        yield
    finally:
        for buffer, value in zip(module.buffers(), saved):
            buffer.copy_(value)
