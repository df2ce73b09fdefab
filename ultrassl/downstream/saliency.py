"""Saliency prediction (sonographer gaze): encoder + upsampling decoder, KL loss; the model
(:class:`SaliencyPrediction`) and the task (:class:`SaliencyTask`).

The encoder's feature map of the centre frame (:meth:`DownstreamModule.frame_feature_map`)
goes through a small decoder (:class:`SaliencyDecoder`: upsample x2, conv 3x3, BN, ReLU per
stage, then a 1x1 conv to one channel) and is resized to the frame; a softmax over the pixels
makes it a distribution P. The target G is the fixation density map of the centre frame's
fixations (:func:`~ultrassl.metrics.saliency.fixation_density_map`, Gaussian sigma =
``sigma_fraction`` x the frame width). The loss is KL(G || P) = sum G (log G - log P), the
same direction as the KLD metric; frames without fixations do not count.

The task is scored on every frame of every held-out loop with the seven metrics of
:mod:`ultrassl.metrics.saliency`, beside its model-free baseline: the training gaze prior
(:func:`training_gaze_prior`), the mean fixation density of the training frames shown for
every frame, which a model must beat to make any use of the image.

Validation scores all seven metrics of :mod:`ultrassl.metrics.saliency` with its
conventions, per frame then per video (video = the item's ``path``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from torch import nn

from ultrassl.downstream import plots
from ultrassl.downstream.base import DownstreamModule
from ultrassl.downstream.cine import predict_saliency_loop
from ultrassl.downstream.scoring import held_out_loops, spread
from ultrassl.downstream.task import INITS, LoopPrediction, Task, ViewerSpec
from ultrassl.metrics.saliency import LOWER_IS_BETTER, METRIC_NAMES, SaliencyEvaluator, fixation_density_map
from ultrassl.models.checkpoint import PretrainedInfo


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


class SaliencyTask(Task):
    """Gaze-saliency prediction as a task (see the module docstring)."""

    name = "saliency"
    model_class = SaliencyPrediction
    default_protocols = ("finetune",)
    table_metrics = METRIC_NAMES
    lower_is_better = frozenset(LOWER_IS_BETTER)
    curve_metric = "val/NSS"
    reference_note = ("The saliency table adds the training gaze prior: the mean fixation density of the training "
                      "frames used as every frame's prediction, which a model must beat to make any use of the image.")
    viewer = ViewerSpec(key="saliency", model_label="Saliency model", map_label="Predicted saliency",
                        map_key="show_saliency")

    def prepare(self, config: dict[str, Any], encoder: PretrainedInfo) -> dict[str, Any]:
        """The encoder's channels; one frame per item for a frame backbone (a clip backbone
        keeps the config's ``clip_frames``, default 4)."""
        config = super().prepare(config, encoder)
        pipeline = config["data"]["init_args"]["pipeline"]["init_args"]
        if encoder.frame_wise:
            pipeline["clip_frames"] = 1
        else:
            pipeline.setdefault("clip_frames", 4)
        return config

    def score(self, model: SaliencyPrediction, datamodule: Any, keep_examples: int = 3) -> dict[str, Any]:
        """Every frame of every held-out loop: the seven saliency metrics, per frame then per
        video, and a few example frames with prediction and fixations."""
        pipeline = datamodule.pipeline
        return score_saliency_maps(datamodule, lambda loop: predict_saliency_loop(model, loop, pipeline.clip_frames),
                                   model.sigma_px(pipeline.size[1]), model.n_splits, keep_examples)

    def baseline(self, datamodule: Any, config: Mapping[str, Any]) -> dict[str, Any]:
        """The held-out frames scored with :func:`training_gaze_prior` as every frame's map, with
        the model's conventions (``sigma_fraction``, ``n_splits`` of the config's model)."""
        options = config["model"].get("init_args") or {}
        defaults = inspect.signature(SaliencyPrediction).parameters

        def option(name: str) -> Any:
            return options[name] if options.get(name) is not None else defaults[name].default

        sigma = float(option("sigma_fraction")) * datamodule.pipeline.size[1]
        prior = training_gaze_prior(datamodule, sigma)
        scored = score_saliency_maps(datamodule, lambda loop: prior.expand(loop.shape[1], *prior.shape), sigma,
                                     int(option("n_splits")), keep_examples=0)
        return {"name": "training gaze prior", "metrics": scored["metrics"],
                **{k: scored[k] for k in ("left_out",) if k in scored}}

    def figures(self, results: Mapping[str, Mapping[str, Any]], out_dir: Path) -> list[Path]:
        """Per protocol: predictions of both arms on example frames, with the fixations."""
        figures = []
        for protocol, by_init in results.items():
            examples = {init: scored.get("examples") or [] for init, scored in by_init.items()}
            if examples.get(INITS[0]):
                figures.append(_saliency_figure(examples, out_dir / f"saliency_overlays_{protocol}.png", protocol))
        return figures

    def predict_loop(self, model: SaliencyPrediction, loop: torch.Tensor, pipeline: Any,
                     progress: Callable[[int, int], None] | None = None) -> LoopPrediction:
        """The saliency map of every frame."""
        maps = predict_saliency_loop(model, loop, getattr(pipeline, "clip_frames", 1), progress=progress)
        return LoopPrediction(self.name, loop.shape[1], maps=maps)


def training_gaze_prior(datamodule: Any, sigma_px: float) -> torch.Tensor:
    """The mean fixation density of the training frames that have fixations, ``(H, W)``
    summing to 1, at the pipeline's size: where sonographers look on average, whatever the
    image (the "centre bias" baseline of saliency benchmarks, learned from the data)."""
    train, _ = datamodule.split_tables()
    dataset = held_out_loops(datamodule, train)
    total, frames = None, 0
    for item in dataset:
        density = fixation_density_map(item["clip_fixations"], tuple(item["clip"].shape[-2:]), sigma_px,
                                       item["clip_fixations_valid"])
        looked_at = density.flatten(1).sum(dim=1) > 0
        summed = density[looked_at].sum(dim=0, dtype=torch.float64)
        total = summed if total is None else total + summed
        frames += int(looked_at.sum())
    if not frames:
        raise ValueError("no training frame has fixations: the gaze prior is undefined")
    return (total / total.sum()).to(torch.float32)


def score_saliency_maps(datamodule: Any, predict: Callable[[torch.Tensor], torch.Tensor], sigma_px: float,
                        n_splits: int, keep_examples: int) -> dict[str, Any]:
    """The maps ``predict(loop)`` gives for every held-out loop, scored against the loops'
    fixations (:class:`~ultrassl.metrics.saliency.SaliencyEvaluator`), and example frames."""
    dataset = held_out_loops(datamodule)
    evaluator = SaliencyEvaluator(sigma_px=sigma_px, n_splits=n_splits, seed=0)
    examples = []
    per_loop = max(1, keep_examples // len(dataset))
    for item in dataset:
        maps = predict(item["clip"])
        points, valid = item["clip_fixations"], item["clip_fixations_valid"]
        evaluator.update(maps, points, valid, video_ids=[str(item["path"])] * len(maps))
        looked_at = torch.nonzero(valid.any(dim=1)).flatten()
        chosen = looked_at[spread(looked_at.numel(), per_loop)] if looked_at.numel() else []
        for t in [int(t) for t in chosen][: keep_examples - len(examples)]:
            examples.append({"frame": item["clip"][0, t].numpy(), "map": maps[t].numpy(),
                             "fixations": points[t][valid[t]].numpy(), "path": str(item["path"]), "t": t})
    return {"metrics": evaluator.compute(), "frames": len(evaluator), "examples": examples, **dataset.report()}


def _saliency_figure(examples: Mapping[str, list[dict]], path: Path, protocol: str) -> Path:
    rows, points, titles = [], [], []
    for i, example in enumerate(examples["pretrained"]):
        row = [plots.gray_bgr(example["frame"])]
        for init in INITS:
            row.append(plots.heat_overlay(example["frame"], examples[init][i]["map"]))
        rows.append(row)
        points.append(example["fixations"])
        titles.append(f"{Path(example['path']).stem} t={example['t']}")
    return plots.overlay_grid(rows, ["frame + gaze", "pretrained", "random init"], path, row_titles=titles,
                              points=points, title=f"saliency ({protocol}): predictions, green = fixations")
