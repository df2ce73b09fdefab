"""Standard plane detection: frame-level classification in the SonoNet style; the model
(:class:`PlaneDetection`) and the task (:class:`PlaneDetectionTask`).

Each training item is a clip whose centre frame carries the label (frame backbones: one
frame; clip backbones: a few frames around it, see :mod:`ultrassl.downstream.base`). The
classifier is a linear layer on the pooled feature map (after a standardisation without
learned parameters), so its weights turn the feature map into class-activation maps (Zhou et
al., CVPR 2016; SonoNet's weakly supervised localisation): the map of class k is the linear layer applied at every position, whose
spatial mean is exactly the logit of k.

The task is scored on every frame of every held-out cine loop (:mod:`ultrassl.downstream.cine`):
accuracy and macro precision, recall and F1 (per-class values and the confusion matrix in
the details), and where each plane is best seen in each loop.

Background dominates real sweeps (about 73 % of the simulated frames), so the cross-entropy
is class-weighted by default: ``class_weights="auto"`` takes the "balanced" weights
``n / (K * n_k)`` from the training frames' labels raised to ``class_weight_power`` (default
0.5, their square root: full balancing weighs a plane seen in 1 % of the frames ~70 times a
Background frame, which makes short runs predict rare planes everywhere; 1.0 gives the full
balance, 0 plain cross-entropy). Absent classes weigh 1.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ultrassl.data.planes import PLANE_CLASSES
from ultrassl.downstream import plots
from ultrassl.downstream.base import DownstreamModule
from ultrassl.downstream.cine import best_frames, predict_cine_loop
from ultrassl.downstream.linear_probe import fit_logistic_regression
from ultrassl.downstream.scoring import held_out_loops, spread
from ultrassl.downstream.task import INITS, LoopPrediction, Task, ViewerSpec
from ultrassl.metrics.classification import ClassificationMetrics
from ultrassl.models.checkpoint import PretrainedInfo
from ultrassl.models.heads import LinearHead
from ultrassl.pipelines.plane_detection import read_class_names
from ultrassl.transforms.annotations import read_frame_labels

#: the grid (rows, columns) frames are averaged down to for the raw-pixel baseline: coarse
#: enough that the probe sees layout and brightness, not texture
RAW_PIXEL_GRID = (16, 20)


class PlaneDetection(DownstreamModule):
    """Frame classifier over standard planes + Background, with class-activation maps.

    Batch: ``batch[image_key]`` clips ``(B, C, T, H, W)`` and ``batch[labels_key]`` the frame
    labels ``(B, T)`` of :class:`~ultrassl.transforms.annotations.LoadFrameAnnotationsd`; the
    target is the centre frame's label (position ``T // 2``).

    Args:
        class_names: class names in label order; default Background + SonoNet's 13 planes
            (:data:`ultrassl.data.planes.PLANE_CLASSES`).
        class_weights: ``"auto"`` (balanced weights from the training manifest's frame
            labels, computed when fitting starts), a list of K weights, or None (plain CE).
        class_weight_power: exponent applied to the balanced weights of ``"auto"``.
        dropout: dropout before the classifier (fine-tune only; a probe has none).
        image_key, labels_key: batch entries of the clips and their frame labels.
        **kwargs: encoder, protocol and optimiser options of :class:`DownstreamModule`.
    """

    has_linear_probe = True

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        class_weights: Literal["auto"] | Sequence[float] | None = "auto",
        class_weight_power: float = 0.5,
        dropout: float = 0.0,
        image_key: str = "clip",
        labels_key: str = "clip_frame_labels",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.class_names = [str(c) for c in (class_names if class_names is not None else PLANE_CLASSES)]
        self.num_classes = len(self.class_names)
        if self.num_classes < 2:
            raise ValueError(f"plane detection needs at least two classes, got {self.class_names}")
        if isinstance(class_weights, str) and class_weights != "auto":
            raise ValueError(f"class_weights must be 'auto', a list or None, got {class_weights!r}")
        if class_weights is not None and not isinstance(class_weights, str) and len(class_weights) != self.num_classes:
            raise ValueError(f"{len(class_weights)} class weights for {self.num_classes} classes")
        self.image_key = image_key
        self.labels_key = labels_key
        self.dropout = nn.Dropout(dropout) if dropout > 0 and not self.frozen else nn.Identity()
        # standardised input for both protocols: pooled features of small CNNs can vary over a
        # tiny range, which a plain linear layer (and a probe folded into one) turns into huge weights
        self.head = LinearHead(self.num_features, self.num_classes, input_norm=True)
        weights = torch.ones(self.num_classes) if class_weights in (None, "auto") else torch.tensor(
            [float(w) for w in class_weights])
        self.register_buffer("class_weight", weights)
        self.val_metrics = ClassificationMetrics(self.num_classes, self.class_names)
        self.last_report: dict[str, Any] | None = None

    # ----------------------------------------------------------------- prediction
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of the centre frames of clips ``(B, C, T, H, W)`` (or frames)."""
        pooled = self.frame_feature_map(x).flatten(2).mean(dim=-1)
        return self.head(self.dropout(pooled))

    def class_activation_maps(self, x: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        """Class-activation maps ``(B, K, H, W)`` (``upsample``: bilinear to the input size;
        else at the feature map's ``(h, w)``). The spatial mean of map k over the feature
        map equals the logit of class k (the probe's input standardisation folded in)."""
        return self.logits_and_cams(x, upsample)[1]

    def logits_and_cams(self, x: torch.Tensor, upsample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, K), maps (B, K, H, W))`` from one pass of the encoder: the logits of
        :meth:`forward` and the maps of :meth:`class_activation_maps`."""
        feature_map = self.frame_feature_map(x)
        logits = self.head(self.dropout(feature_map.flatten(2).mean(dim=-1)))
        weight, bias = self.classifier_weights()
        maps = torch.einsum("kf,bfhw->bkhw", weight, feature_map) + bias[None, :, None, None]
        if upsample:
            maps = F.interpolate(maps, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
        return logits, maps

    def classifier_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W (K, F), b (K,))`` with ``logits = W @ pooled + b`` in evaluation mode."""
        linear = self.head[-1]
        weight, bias = linear.weight, linear.bias
        if len(self.head) > 1:  # the head's BatchNorm1d without affine: (f - mean) / std
            norm = self.head[0]
            scale = torch.rsqrt(norm.running_var + norm.eps)
            bias = bias - weight @ (norm.running_mean * scale)
            weight = weight * scale[None, :]
        return weight, bias

    def probe_features(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled centre-frame features ``(B, F)`` and their labels ``(B,)``."""
        return self.frame_feature_map(batch[self.image_key]).flatten(2).mean(dim=-1), self._targets(batch)

    def probe_class_weight(self) -> torch.Tensor:
        return self.class_weight

    # ----------------------------------------------------------------- steps
    def _targets(self, batch: Mapping[str, Any]) -> torch.Tensor:
        labels = batch[self.labels_key]
        return labels[:, labels.shape[1] // 2].long() if labels.ndim == 2 else labels.long()

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.class_weight.to(logits.dtype), ignore_index=-1)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        target = self._targets(batch)
        logits = self(batch[self.image_key])
        loss = self._loss(logits, target)
        accuracy = (logits.argmax(dim=1) == target).float().mean()
        self.log_scalars({"loss": loss, "accuracy": accuracy}, "train", len(target))
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        target = self._targets(batch)
        logits = self(batch[self.image_key])
        loss = self._loss(logits, target)
        self.val_metrics.update(logits, target)
        self.log_scalars({"loss": loss}, "val", len(target))
        return loss

    def on_validation_epoch_end(self) -> None:
        report = self.val_metrics.report()
        self.val_metrics.reset()
        self.last_report = report
        self.log("val/macro_f1", report["macro_f1"], sync_dist=False)
        self.log("val/accuracy", report["accuracy"], sync_dist=False)

    # ----------------------------------------------------------------- class weights
    def on_fit_start(self) -> None:
        if self.hparams.class_weights != "auto":
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        split_tables = getattr(datamodule, "split_tables", None)
        if split_tables is None:
            raise ValueError(
                "class_weights='auto' counts the training frames' labels in the data module's manifest; "
                "this data module has no split_tables(): give class_weights as a list (or None)"
            )
        counts = frame_label_counts(split_tables()[0], self.class_names)
        weights = balanced_class_weights(counts) ** float(self.hparams.class_weight_power)
        self.class_weight.copy_(weights.to(self.class_weight))


def frame_label_counts(manifest: pd.DataFrame, class_names: Sequence[str]) -> torch.Tensor:
    """Frames per class over the clips of a manifest table (its ``frame_labels`` sidecars
    and ``n_frames``), int64 ``(K,)``."""
    if "frame_labels" not in manifest.columns:
        raise ValueError("the manifest has no 'frame_labels' column (per-frame plane labels)")
    counts = np.zeros(len(class_names), dtype=np.int64)
    for path, n_frames in zip(manifest["frame_labels"], manifest["n_frames"]):
        if isinstance(path, str) and path.strip():
            counts += np.bincount(read_frame_labels(path, int(n_frames), class_names), minlength=len(class_names))
    return torch.from_numpy(counts)


def raw_pixel_features(loop: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Each frame of a loop ``(C, N, H, W)`` averaged down to ``grid`` (default
    :data:`RAW_PIXEL_GRID`) and flattened: ``(N, C * h * w)``."""
    return F.adaptive_avg_pool2d(loop.permute(1, 0, 2, 3).float(), grid or RAW_PIXEL_GRID).flatten(1)


def _model_option(config: Mapping[str, Any]) -> Callable[[str], Any]:
    """``option(name)``: the config's model argument, else the model's default."""
    options = config["model"].get("init_args") or {}
    defaults = {**inspect.signature(DownstreamModule).parameters, **inspect.signature(PlaneDetection).parameters}

    def option(name: str) -> Any:
        if name in options:
            return options[name]
        default = defaults[name].default if name in defaults else None
        return None if default is inspect.Parameter.empty else default

    return option


def balanced_class_weights(counts: torch.Tensor) -> torch.Tensor:
    """``n / (K_present * n_k)`` for the classes present; 1 for absent ones."""
    counts = counts.to(torch.float64)
    present = counts > 0
    weights = torch.ones_like(counts)
    if present.any():
        weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.to(torch.float32)


class PlaneDetectionTask(Task):
    """Standard plane detection as a task (see the module docstring)."""

    name = "plane_detection"
    model_class = PlaneDetection
    default_protocols = ("linear", "finetune")
    table_metrics = ("macro_f1", "macro_precision", "macro_recall", "accuracy")
    curve_metric = "val/macro_f1"
    reference_note = ("The plane-detection table adds a raw-pixel probe: the same logistic regression as the "
                      "linear probe, on the labelled frames averaged down to a small grid of pixels.")
    viewer = ViewerSpec(
        key="plane", model_label="Plane-detection model", map_label="Class-activation map", map_key="show_cam",
        model_help="model.ckpt of `ultrassl evaluate` (runs/.../plane_detection/<protocol>_<init>/) or of `ultrassl fit`.",
        map_help="Where the evidence for the predicted plane lies (CAM of its class).", signed_maps=True,
        class_label="Plane")

    def prepare(self, config: dict[str, Any], encoder: PretrainedInfo) -> dict[str, Any]:
        """The encoder's channels; one frame per item for a frame backbone (a clip backbone
        keeps the config's ``clip_frames``, default 4); the class names of the pipeline."""
        config = super().prepare(config, encoder)
        pipeline = config["data"]["init_args"]["pipeline"]["init_args"]
        if encoder.frame_wise:
            pipeline["clip_frames"] = 1
        else:
            pipeline.setdefault("clip_frames", 4)
        model = config["model"].setdefault("init_args", {})
        names = read_class_names(pipeline.get("classes"))
        if model.get("class_names") is None:
            model["class_names"] = names
        elif list(model["class_names"]) != names:
            raise ValueError("model.class_names and the pipeline's classes differ")
        return config

    def score(self, model: PlaneDetection, datamodule: Any, keep_examples: int = 3) -> dict[str, Any]:
        """Every frame of every held-out loop: the classification report, best frames per loop,
        and a few example frames with their class-activation maps."""
        clip_frames = datamodule.pipeline.clip_frames
        return self.score_predictions(
            datamodule, lambda loop: predict_cine_loop(model, loop, clip_frames=clip_frames),
            model.class_names, keep_examples,
            # maps only for the example frames: a second pass over those few is cheaper than
            # maps of every frame
            explain=lambda loop, frames: predict_cine_loop(model, loop, clip_frames=clip_frames, with_cams=True,
                                                           frames=frames)["cams"])

    def score_predictions(self, datamodule: Any, predict: Callable[[torch.Tensor], Mapping[str, torch.Tensor]],
                          class_names: Sequence[str], keep_examples: int = 0,
                          explain: Callable[[torch.Tensor, list[int]], torch.Tensor] | None = None) -> dict[str, Any]:
        """Score ``predict(loop)`` (``{"probabilities": (N, K)}``) on every frame of every
        held-out loop of ``datamodule``; with ``explain(loop, frames)`` (maps ``(len(frames),
        H, W)``), keep up to ``keep_examples`` example frames with their maps."""
        dataset = held_out_loops(datamodule)
        metrics = ClassificationMetrics(len(class_names), list(class_names))
        loops, examples = {}, []
        per_loop = max(1, keep_examples // len(dataset))
        for item in dataset:
            out = predict(item["clip"])
            predicted = out["probabilities"].argmax(dim=1)
            labels = item["clip_frame_labels"]
            metrics.update(out["probabilities"], labels)
            loops[str(item["path"])] = {
                "best_frames": best_frames(out["probabilities"], class_names),
                "predicted": [class_names[i] for i in predicted.tolist()],
                "true": [class_names[i] for i in labels.tolist()],
            }
            if not keep_examples or explain is None:
                continue
            planes = torch.nonzero(labels > 0).flatten()  # frames showing a plane (Background is 0)
            chosen = planes[spread(planes.numel(), per_loop)] if planes.numel() else []
            chosen = [int(t) for t in chosen][: keep_examples - len(examples)]
            cams = explain(item["clip"], chosen) if chosen else []
            for t, cam in zip(chosen, cams):
                examples.append({"frame": item["clip"][0, t].numpy(), "cam": cam.numpy(),
                                 "true": class_names[int(labels[t])], "predicted": class_names[int(predicted[t])],
                                 "path": str(item["path"]), "t": t})
        report = metrics.report()
        return {"metrics": {k: report[k] for k in self.table_metrics}, "report": report, "loops": loops,
                "examples": examples, **dataset.report()}

    def baseline(self, datamodule: Any, config: Mapping[str, Any]) -> dict[str, Any]:
        """A raw-pixel probe: the L2-regularised logistic regression of the linear probe
        (:func:`~ultrassl.downstream.linear_probe.fit_logistic_regression` with the config's
        ``probe_l2``, class weights and their power) on the labelled frames averaged down to
        :data:`RAW_PIXEL_GRID`, scored like the models on the held-out loops: what layout and
        brightness alone, without any learned feature, tell about the plane."""
        option = _model_option(config)
        names = list(option("class_names") or datamodule.pipeline.classes)
        train, _ = datamodule.split_tables()
        loops = held_out_loops(datamodule, train)
        features, labels = [], []
        for item in loops:
            features.append(raw_pixel_features(item["clip"]).double())
            labels.append(item["clip_frame_labels"].long())
        x, y = torch.cat(features), torch.cat(labels)
        x, y = x[y >= 0], y[y >= 0]
        weights = option("class_weights")
        if weights == "auto":
            weights = balanced_class_weights(torch.bincount(y, minlength=len(names))) ** float(
                option("class_weight_power"))
        elif weights is not None:
            weights = torch.tensor([float(w) for w in weights])
        probe = fit_logistic_regression(x, y, len(names), weights, float(option("probe_l2")),
                                        int(option("probe_max_iter")))
        scored = self.score_predictions(
            datamodule, lambda loop: {"probabilities": torch.softmax(probe.logits(raw_pixel_features(loop)), dim=1)},
            names)
        return {"name": "raw-pixel probe", "metrics": scored["metrics"], "report": scored["report"],
                "frames": int(len(y)), "iterations": probe.iterations,
                **loops.report("left_out_training"), **{k: scored[k] for k in ("left_out",) if k in scored}}

    def figures(self, results: Mapping[str, Mapping[str, Any]], out_dir: Path) -> list[Path]:
        """Per protocol: the confusion matrices and the class-activation maps of example frames."""
        figures = []
        for protocol, by_init in results.items():
            confusion = self.confusion_figure(protocol, by_init, out_dir)
            if confusion is not None:
                figures.append(confusion)
            examples = {init: scored.get("examples") or [] for init, scored in by_init.items()}
            if examples.get(INITS[0]):
                figures.append(_cam_figure(examples, out_dir / f"cam_overlays_{protocol}.png", protocol))
        return figures

    def predict_loop(self, model: PlaneDetection, loop: torch.Tensor, pipeline: Any,
                     progress: Callable[[int, int], None] | None = None) -> LoopPrediction:
        """Class probabilities, the class-activation map of the predicted plane and where each
        plane is best seen, for every frame."""
        out = predict_cine_loop(model, loop, clip_frames=getattr(pipeline, "clip_frames", 1), with_cams=True,
                                progress=progress)
        return LoopPrediction(self.name, loop.shape[1], list(model.class_names), probabilities=out["probabilities"],
                              maps=out["cams"], best_frames=best_frames(out["probabilities"], model.class_names))


def _cam_figure(examples: Mapping[str, list[dict]], path: Path, protocol: str) -> Path:
    rows, titles = [], []
    for i, example in enumerate(examples["pretrained"]):
        row = [plots.gray_bgr(example["frame"])]
        for init in INITS:
            row.append(plots.heat_overlay(example["frame"], examples[init][i]["cam"]))
        rows.append(row)
        # no file name: a clinical file's name may hold the patient's
        titles.append(f"example {i + 1}, frame {example['t']}, {example['true']}: "
                      f"{examples['pretrained'][i]['predicted']} / {examples['random_init'][i]['predicted']}")
    return plots.overlay_grid(rows, ["frame", "pretrained CAM", "random-init CAM"], path, row_titles=titles,
                              title=f"plane detection ({protocol}): class activation of the predicted class; "
                                    "rows: true: pretrained / random prediction")

