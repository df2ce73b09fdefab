"""The parameter-efficient audio-visual transformer (Lee et al., ICLR 2021): METHODS.md section 6.

A long clip is cut into S segments (:class:`ultrassl.pipelines.audio_visual.AudioVisualPipeline`),
each with its visual clip and its log-mel audio window, read from the same video file. The
visual CNN (the registry's backbone, ``self.backbone``: what transfers downstream) and a 2D
audio CNN (:class:`~ultrassl.models.av_transformer.AudioCNN`) embed every segment; visual,
audio and multimodal transformers (mid fusion, a summary token per modality) run over the
segment embeddings, with the sharing of :mod:`ultrassl.models.av_transformer` (one layer reused
across depth, weights factorised into a private part with an orthogonal core and a part shared
by the three transformers).

Pretraining, end to end into both CNNs:

* masked embedding prediction (MEP): ``mask_ratio`` of each modality's segment embeddings (at
  least one per clip) are replaced by a learned mask token; the transformer output at a masked
  position must pick the true CNN embedding out of negatives (InfoNCE, ``temperature``), within
  its modality (visual and audio transformers) and across (the multimodal transformer's visual
  and audio positions, on aligned clips);
* correct pair prediction (CPP): half of the clips get misaligned audio, either their own shifted
  by 1..S-1 segments (``offset_negative_prob``) or another clip's; a binary classifier over the
  multimodal summary tokens of a second, unmasked pass says whether sound and picture belong
  together (the transformers are small beside the CNNs, which run once);
* content-aware negative sampling (CANS, :mod:`ultrassl.losses.negative_sampling`) chooses the
  MEP negatives among the batch's segment embeddings, favouring similar ones and dropping the
  extremes (``cans=False``: uniform draws). The other clip of a misaligned pair is drawn
  uniformly among the batch's other videos (``content_aware_pairs=True`` draws it by CANS over
  the mean audio embeddings: the hardest pairs, with which another clip's audio stayed at chance
  on the embedded motion clips, training clips included, even where its scene gave it away).

Logged: ``loss``, ``mep_loss``, ``cpp_loss``; ``cpp_acc`` (chance 0.5) and, per kind of
misaligned audio, ``cpp_shifted_acc`` and ``cpp_other_acc`` (balanced: the mean of the recalls on
aligned clips and on that kind, chance 0.5; logged for batches holding both); ``mep_acc`` (the
true embedding first among itself and ``num_negatives`` negatives, chance ``1 / (K + 1)``).

Batch layout: ``visual`` ``(B, S, C, T, H, W)`` and ``audio`` ``(B, S, 1, mels, frames)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ultrassl.engine.base import PretrainModule
from ultrassl.losses.negative_sampling import content_aware_negatives
from ultrassl.models.av_transformer import AudioCNN, AudioVisualTransformers, Sharing
from ultrassl.models.heads import MLPHead

#: seed of the masking and pairing draws of held-out batches (the same draws every epoch)
VALIDATION_SEED = 20210503
#: how a clip's audio is paired with its frames in correct pair prediction
ALIGNED, SHIFTED, OTHER = 0, 1, 2


class AudioVisualTransformer(PretrainModule):
    """Audio-visual transformer pretraining with MEP, CPP and CANS.

    Args:
        width, depth, heads, rank: transformer width, layers per transformer, attention heads and
            the rank O of the factorised weights (paper: 768, 12 (shared), 12, 128).
        num_segments: S, segments per clip (the pipeline's ``num_segments``).
        sharing: ``"full"`` (cross-layer and factorised), ``"layer"`` or ``"none"``.
        audio_channels: widths of the audio CNN's stages.
        mask_ratio: share of segment embeddings masked per modality and clip.
        temperature: MEP's InfoNCE tau.
        num_negatives: K negatives per masked position.
        cans: content-aware negatives (else uniform among the valid ones).
        drop_near, drop_far, cans_temperature: CANS's extremes and softmax temperature.
        offset_negative_prob: share of misaligned clips that get their own audio shifted in time
            (the rest another clip's audio).
        content_aware_pairs: draw the other clip of a misaligned pair by CANS instead of uniformly.
        mep_weight, cpp_weight: weights of the two terms.
        visual_key, audio_key: batch keys.
        **kwargs: backbone (the visual CNN), optimiser and schedule options of :class:`PretrainModule`.
    """

    def __init__(
        self,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        rank: int = 16,
        num_segments: int = 4,
        sharing: Sharing = "full",
        audio_channels: tuple[int, ...] | list[int] = (16, 32, 64),
        mask_ratio: float = 0.15,
        temperature: float = 0.1,
        num_negatives: int = 16,
        cans: bool = True,
        drop_near: float = 0.05,
        drop_far: float = 0.05,
        cans_temperature: float = 0.5,
        offset_negative_prob: float = 0.5,
        content_aware_pairs: bool = False,
        mep_weight: float = 1.0,
        cpp_weight: float = 1.0,
        visual_key: str = "visual",
        audio_key: str = "audio",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if num_segments < 2:
            raise ValueError(f"num_segments must be >= 2 (offset audio needs two segments), got {num_segments}")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must lie in (0, 1), got {mask_ratio}")
        self.num_segments = num_segments
        self.mask_ratio = mask_ratio
        self.temperature = temperature
        self.num_negatives = num_negatives
        self.cans = cans
        self.cans_options = dict(drop_near=drop_near, drop_far=drop_far, temperature=cans_temperature)
        self.offset_negative_prob = offset_negative_prob
        self.content_aware_pairs = content_aware_pairs
        self.weights = {"mep": mep_weight, "cpp": cpp_weight}
        self.visual_key, self.audio_key = visual_key, audio_key
        self.audio_cnn = AudioCNN(tuple(audio_channels))
        self.visual_projection = nn.Linear(self.backbone.num_features, width)
        self.audio_projection = nn.Linear(self.audio_cnn.num_features, width)
        self.mask_tokens = nn.Parameter(torch.randn(2, width) * 0.02)
        self.transformers = AudioVisualTransformers(width, depth, heads, rank=rank, num_segments=num_segments,
                                                    sharing=sharing)
        self.mep_heads = nn.ModuleDict({name: nn.Linear(width, width)
                                        for name in ("visual", "audio", "visual_cross", "audio_cross")})
        self.pair_head = MLPHead(3 * width, width, 1, num_layers=2, norm="layer")

    # ----------------------------------------------------------------- embeddings
    def segment_embeddings(self, visual: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CNN embeddings of every segment: ``(B, S, width)`` for the visual clips
        ``(B, S, C, T, H, W)`` and for the spectrograms ``(B, S, 1, mels, frames)``."""
        b, s = visual.shape[:2]
        if audio.shape[:2] != (b, s):
            raise ValueError(f"visual {tuple(visual.shape[:2])} and audio {tuple(audio.shape[:2])} segments differ")
        embedded_visual = self.visual_projection(self.encode(visual.flatten(0, 1))).reshape(b, s, -1)
        embedded_audio = self.audio_projection(self.audio_cnn(audio.flatten(0, 1))).reshape(b, s, -1)
        return embedded_visual, embedded_audio

    # ----------------------------------------------------------------- draws
    def _mask(self, b: int, s: int, generator: torch.Generator | None, device) -> torch.Tensor:
        """``(B, S)`` bool with ``max(1, round(mask_ratio * S))`` True per row."""
        k = max(1, int(round(self.mask_ratio * s)))
        order = torch.rand(b, s, generator=generator).argsort(dim=1)[:, :k]
        return torch.zeros(b, s, dtype=torch.bool).scatter_(1, order, True).to(device)

    def _misalign(self, audio: torch.Tensor, same_video: torch.Tensor,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio embeddings with half of the clips' misaligned, and the ``(B,)`` pairing of each
        clip: :data:`ALIGNED`, :data:`SHIFTED` (its own audio rolled by 1..S-1 segments) or
        :data:`OTHER` (another clip's audio, always from another video; ``same_video`` ``(B, B)``)."""
        b, s = audio.shape[:2]
        misaligned = torch.zeros(b, dtype=torch.bool)
        chosen = torch.randperm(b, generator=generator)[: b // 2] if b > 1 else torch.tensor([0])
        misaligned[chosen] = True
        offset = torch.rand(b, generator=generator) < self.offset_negative_prob
        shifts = torch.randint(1, s, (b,), generator=generator)
        has_other = (~same_video).any(dim=1).cpu()
        others = self._other_clips(audio.detach().mean(dim=1), same_video, generator) if bool(has_other.any()) else None
        replaced, pairing = [], torch.full((b,), ALIGNED, dtype=torch.long)
        for i in range(b):
            if not misaligned[i]:
                replaced.append(audio[i])
            elif offset[i] or not has_other[i]:
                replaced.append(torch.roll(audio[i], int(shifts[i]), dims=0))
                pairing[i] = SHIFTED
            else:
                replaced.append(audio[int(others[i])])
                pairing[i] = OTHER
        return torch.stack(replaced), pairing.to(audio.device)

    def _other_clips(self, summaries: torch.Tensor, same_video: torch.Tensor,
                     generator: torch.Generator | None) -> torch.Tensor:
        """For each clip, a clip of another video in the batch (uniformly, or by CANS over the
        mean audio embeddings with ``content_aware_pairs``); rows without one get their own
        index (unused)."""
        invalid = same_video.cpu().clone()
        lonely = invalid.all(dim=1)
        invalid[lonely, :] = ~torch.eye(len(invalid), dtype=torch.bool)[lonely]  # placeholder: itself
        summaries = summaries.detach().cpu()  # draws on the CPU, where the generator lives
        if self.content_aware_pairs:
            return content_aware_negatives(summaries, summaries, 1, invalid, generator=generator,
                                           **self.cans_options)[:, 0]
        return torch.multinomial((~invalid).float(), 1, generator=generator)[:, 0]

    def _negatives(self, positives: torch.Tensor, candidates: torch.Tensor, own: torch.Tensor,
                   invalid_items: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``(Q, K)`` candidate indices, never the positive's own row ``own`` nor a row of
        ``invalid_items`` ``(Q, N)`` (another item of the same video: the same content)."""
        device = candidates.device
        own = own.cpu()  # draws on the CPU, where the generator lives
        invalid = (torch.arange(candidates.shape[0])[None] == own[:, None]) | invalid_items.cpu()
        if self.cans:
            chosen = content_aware_negatives(positives.detach().cpu(), candidates.detach().cpu(), self.num_negatives,
                                             invalid, generator=generator, **self.cans_options)
        else:
            chosen = torch.multinomial((~invalid).float(), self.num_negatives, replacement=True, generator=generator)
        return chosen.to(device)

    # ----------------------------------------------------------------- the step
    def _mep(self, predicted: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, same_video: torch.Tensor,
             generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """InfoNCE of the predictions at masked positions against the true segment embeddings
        ``targets`` ``(B, S, D)``; negatives among the batch's segments, the clip's own other
        segments included, other items of the same video left out; (loss, top-1)."""
        b, s = targets.shape[:2]
        candidates = targets.flatten(0, 1)
        own = torch.nonzero(mask.flatten(), as_tuple=False)[:, 0]
        item = own // s
        other_item = torch.arange(b, device=own.device)[None] != item[:, None]  # (Q, B)
        invalid_items = (same_video[item] & other_item).repeat_interleave(s, dim=1)  # (Q, B * S)
        query = F.normalize(predicted[mask], dim=-1)
        positive = F.normalize(candidates[own], dim=-1)
        chosen = self._negatives(candidates[own], candidates, own, invalid_items, generator)
        negatives = F.normalize(candidates[chosen], dim=-1)
        logits = torch.cat([(query * positive).sum(-1, keepdim=True),
                            torch.einsum("qd,qkd->qk", query, negatives)], dim=1) / self.temperature
        labels = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
        return F.cross_entropy(logits, labels), (logits.detach().argmax(dim=1) == 0).float().mean()

    def objective_step(self, batch: Mapping[str, Any], stage: str) -> dict[str, torch.Tensor]:
        visual, audio = batch[self.visual_key], batch[self.audio_key]
        generator = None if stage == "train" else torch.Generator().manual_seed(VALIDATION_SEED)
        embedded_visual, embedded_audio = self.segment_embeddings(visual, audio)
        b, s, _ = embedded_visual.shape
        same_video = _same_video(batch, b, visual.device)
        paired_audio, pairing = self._misalign(embedded_audio, same_video, generator)
        misaligned = pairing != ALIGNED

        # correct pair prediction on the whole, unmasked sequences: with a masked segment the
        # order that gives shifted audio away is partly hidden, and the two terms fought over
        # the summary tokens (held-out pair accuracy stayed at chance with one shared pass)
        _, _, fused = self.transformers(embedded_visual, paired_audio)
        pair_logit = self.pair_head(torch.cat([fused[:, 0], fused[:, 1], fused[:, 2 + s]], dim=1))[:, 0]
        aligned = (~misaligned).float()
        cpp_loss = F.binary_cross_entropy_with_logits(pair_logit, aligned)
        correct = (pair_logit.detach() > 0).float() == aligned
        pair_metrics = {"cpp_acc": correct.float().mean()}
        for kind, name in ((SHIFTED, "cpp_shifted_acc"), (OTHER, "cpp_other_acc")):
            if bool((pairing == kind).any()) and bool((pairing == ALIGNED).any()):
                # balanced: the mean of the recalls on aligned clips and on this kind of misaligned clips
                pair_metrics[name] = 0.5 * (correct[pairing == ALIGNED].float().mean()
                                            + correct[pairing == kind].float().mean())

        # masked embedding prediction: within each modality on every clip, across modalities on
        # the aligned ones only
        mask_visual = self._mask(b, s, generator, visual.device)
        mask_audio = self._mask(b, s, generator, visual.device)
        visual_in = torch.where(mask_visual[..., None], self.mask_tokens[0], embedded_visual)
        audio_in = torch.where(mask_audio[..., None], self.mask_tokens[1], paired_audio)
        visual_out, audio_out, fused = self.transformers(visual_in, audio_in)
        terms = [
            self._mep(self.mep_heads["visual"](visual_out[:, 1:]), embedded_visual, mask_visual, same_video, generator),
            self._mep(self.mep_heads["audio"](audio_out[:, 1:]), paired_audio, mask_audio, same_video, generator),
        ]
        keep = ~misaligned
        if bool(keep.any()):
            terms += [
                self._mep(self.mep_heads["visual_cross"](fused[:, 2 : 2 + s]), embedded_visual,
                          mask_visual & keep[:, None], same_video, generator),
                self._mep(self.mep_heads["audio_cross"](fused[:, 3 + s :]), paired_audio,
                          mask_audio & keep[:, None], same_video, generator),
            ]
        mep_loss = torch.stack([loss for loss, _ in terms]).mean()
        loss = self.weights["mep"] * mep_loss + self.weights["cpp"] * cpp_loss
        return {"loss": loss, "mep_loss": mep_loss, "cpp_loss": cpp_loss, **pair_metrics,
                "mep_acc": torch.stack([acc for _, acc in terms]).mean()}


def _same_video(batch: Mapping[str, Any], b: int, device) -> torch.Tensor:
    """``(B, B)`` bool: items read from the same file (a data module may draw several clips of a
    video into one batch); the diagonal only when the batch carries no paths."""
    paths = batch.get("path")
    if paths is None or len(paths) != b:
        return torch.eye(b, dtype=torch.bool, device=device)
    names = {name: i for i, name in enumerate(dict.fromkeys(paths))}
    ids = torch.tensor([names[p] for p in paths], device=device)
    return ids[:, None] == ids[None, :]
