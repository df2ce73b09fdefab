"""Saliency prediction (sonographer gaze): encoder + upsampling decoder, KL loss.

The encoder's feature map of the centre frame (:meth:`DownstreamModule.frame_feature_map`)
goes through a small decoder (:class:`SaliencyDecoder`: upsample x2, conv 3x3, BN, ReLU per
stage, then a 1x1 conv to one channel) and is resized to the frame; a softmax over the pixels
makes it a distribution P. The target G is the fixation density map of the centre frame's
fixations (:func:`~ultrassl.metrics.saliency.fixation_density_map`, Gaussian sigma =
``sigma_fraction`` x the frame width). The loss is KL(G || P) = sum G (log G - log P), the
same direction as the KLD metric; frames without fixations do not count.

Validation scores all seven metrics of :mod:`ultrassl.metrics.saliency` with its
conventions, per frame then per video (video = the item's ``path``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

from ultrassl.downstream.base import DownstreamModule
from ultrassl.metrics.saliency import SaliencyEvaluator, fixation_density_map


class SaliencyDecoder(nn.Sequential):
    """``(B, F, h, w)`` -> logits ``(B, 1, h * 2**S, w * 2**S)``, S = ``len(channels)``.

    Args:
        in_features: F, channels of the encoder's feature map.
        channels: output channels of the upsampling stages.
    """

    def __init__(self, in_features: int, channels: Sequence[int] = (64, 32)):
        layers: list[nn.Module] = []
        width = in_features
        for out in channels:
            layers.append(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            layers.append(Convolution(spatial_dims=2, in_channels=width, out_channels=int(out), kernel_size=3,
                                      act="RELU", norm="BATCH", adn_ordering="NA", bias=False))
            width = int(out)
        layers.append(nn.Conv2d(width, 1, kernel_size=1))
        super().__init__(*layers)


class SaliencyPrediction(DownstreamModule):
    """Predicts where sonographers look, as a distribution over the pixels of a frame.

    Batch: ``batch[image_key]`` clips ``(B, C, T, H, W)``; ``batch[fixations_key]``
    ``(B, T, K, 2)`` (x, y) in pixels of the frame as given to the model, with
    ``batch[valid_key]`` ``(B, T, K)`` (the padded layout of
    :class:`~ultrassl.transforms.annotations.LoadFrameAnnotationsd`; ``(B, K, 2)`` / ``(B, K)`` for
    one frame per item); the centre frame's are used. ``batch["path"]`` names the video.

    With ``protocol="linear"`` the encoder is frozen and only the decoder learns.

    Args:
        decoder_channels: channels of the decoder's upsampling stages.
        sigma_fraction: Gaussian sigma of the target density, as a fraction of the frame width.
        n_splits: AUC-Borji splits in validation.
        image_key, fixations_key, valid_key, video_key: batch entries.
        **kwargs: encoder, protocol and optimiser options of :class:`DownstreamModule`.
    """

    def __init__(
        self,
        decoder_channels: Sequence[int] = (64, 32),
        sigma_fraction: float = 0.04,
        n_splits: int = 100,
        image_key: str = "clip",
        fixations_key: str = "clip_fixations",
        valid_key: str = "clip_fixations_valid",
        video_key: str = "path",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not sigma_fraction > 0:
            raise ValueError(f"sigma_fraction must be > 0, got {sigma_fraction}")
        self.decoder = SaliencyDecoder(self.num_features, decoder_channels)
        self.sigma_fraction = float(sigma_fraction)
        self.n_splits = int(n_splits)
        self.image_key, self.fixations_key, self.valid_key, self.video_key = image_key, fixations_key, valid_key, video_key
        self.evaluator: SaliencyEvaluator | None = None
        self.last_scores: dict[str, float] | None = None

    # ----------------------------------------------------------------- prediction
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(B, H, W)`` over the pixels of the centre frame of clips
        ``(B, C, T, H, W)`` (or frames ``(B, C, H, W)``)."""
        logits = self.decoder(self.frame_feature_map(x))
        logits = F.interpolate(logits, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
        return torch.log_softmax(logits.flatten(1), dim=1).reshape(logits.shape)

    def predict_saliency(self, x: torch.Tensor) -> torch.Tensor:
        """Saliency maps ``(B, H, W)``: probabilities summing to 1 per frame."""
        return self(x).exp()

    def sigma_px(self, width: int) -> float:
        """The target density's Gaussian sigma in pixels for frames ``width`` pixels wide."""
        return self.sigma_fraction * width

    # ----------------------------------------------------------------- targets
    def centre_fixations(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixations ``(B, K, 2)`` and validity ``(B, K)`` of the centre frames."""
        points, valid = batch[self.fixations_key], batch[self.valid_key]
        if points.ndim == 4:
            centre = points.shape[1] // 2
            points, valid = points[:, centre], valid[:, centre]
        return points, valid.bool()

    def target_density(self, batch: Mapping[str, Any], shape: tuple[int, int]) -> torch.Tensor:
        points, valid = self.centre_fixations(batch)
        density = fixation_density_map(points.detach().cpu(), shape, self.sigma_px(shape[1]), valid.detach().cpu())
        return density.to(self.device)

    def _loss(self, log_prob: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        has_fixations = density.flatten(1).sum(dim=1) > 0
        if not has_fixations.any():
            return log_prob.sum() * 0.0  # keeps the graph; nothing to learn from this batch
        kl = F.kl_div(log_prob.flatten(1), density.flatten(1), reduction="none").sum(dim=1)
        return kl[has_fixations].mean()

    # ----------------------------------------------------------------- steps
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        x = batch[self.image_key]
        log_prob = self(x)
        loss = self._loss(log_prob, self.target_density(batch, tuple(x.shape[-2:])))
        self.log_scalars({"loss": loss}, "train", x.shape[0])
        return loss

    def on_validation_epoch_start(self) -> None:
        self.evaluator = SaliencyEvaluator(sigma_px=1.0, n_splits=self.n_splits, seed=0)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        x = batch[self.image_key]
        log_prob = self(x)
        density = self.target_density(batch, tuple(x.shape[-2:]))
        loss = self._loss(log_prob, density)
        self.log_scalars({"loss": loss}, "val", x.shape[0])
        if self.evaluator is not None:
            points, valid = self.centre_fixations(batch)
            videos = batch.get(self.video_key)
            self.evaluator.update(log_prob.exp().detach().cpu(), points.detach().cpu(), valid.detach().cpu(),
                                  video_ids=list(videos) if videos is not None else None, density=density.cpu())
        return loss

    def on_validation_epoch_end(self) -> None:
        if self.evaluator is None or len(self.evaluator) == 0:
            return
        scores = self.evaluator.compute()
        self.last_scores = scores
        for name, value in scores.items():
            self.log(f"val/{name}", value, sync_dist=False)
        self.evaluator = None
