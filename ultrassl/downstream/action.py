"""Action recognition: clip classification by a linear probe or a fine-tune, multi-clip
test-time averaging, and kNN retrieval on the encoder's features; the model
(:class:`ActionRecognition`) and the task (:class:`ActionRecognitionTask`).

The task is scored on the test split, every video once with multi-clip averaging (top-1,
top-5, macro F1), and by kNN retrieval recall@1/5/10/20/50 of the encoders as they start
(:mod:`ultrassl.downstream.protocols.knn`: the ``knn`` rows), test clips against the
training clips. Videos in neither list of a split (HMDB51's id 0) neither train nor score.

Training sees one clip per item ``(B, C, T, H, W)``. Evaluation items may hold N clips of
the video ``(B, N, C, T, H, W)`` (:class:`~ultrassl.pipelines.action.ActionPipeline`'s
validation chain, evenly spaced clips): the class probabilities (softmax) are averaged over
the clips, and retrieval features are the clips' pooled features averaged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ultrassl.data.manifest import read_manifest
from ultrassl.downstream.base import DownstreamModule
from ultrassl.downstream.linear_probe import fit_logistic_regression
from ultrassl.downstream.scoring import device_of, evaluation_items, in_order
from ultrassl.downstream.task import Task
from ultrassl.metrics.classification import ClassificationMetrics
from ultrassl.models.checkpoint import PretrainedInfo
from ultrassl.models.heads import LinearHead

#: the grid (rows, columns) clips are averaged down to for the raw-pixel baseline
RAW_PIXEL_GRID = (8, 8)


class ActionRecognition(DownstreamModule):
    """Clip classifier on pooled encoder features.

    Args:
        num_classes: number of action classes (e.g. 101 for UCF101, 51 for HMDB51).
        class_names: names in label order (for reports).
        dropout: dropout before the classifier (fine-tune only).
        image_key, label_key: batch entries of the clips and the integer labels.
        **kwargs: encoder, protocol and optimiser options of :class:`DownstreamModule`.
    """

    has_linear_probe = True

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        dropout: float = 0.5,
        image_key: str = "clip",
        label_key: str = "label",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.class_names = [str(c) for c in class_names] if class_names is not None else None
        self.image_key, self.label_key = image_key, label_key
        self.dropout = nn.Dropout(dropout) if dropout > 0 and not self.frozen else nn.Identity()
        # standardised input for both protocols: pooled features of small CNNs can vary over a
        # tiny range, which a plain linear layer (and a probe folded into one) turns into huge weights
        self.head = LinearHead(self.num_features, self.num_classes, input_norm=True)
        self.val_metrics = ClassificationMetrics(self.num_classes, self.class_names)
        self._top5 = []
        self.last_report: dict[str, Any] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)`` of clips ``(B, C, T, H, W)``."""
        return self.head(self.dropout(self.clip_features(x)))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(B, K)``; for ``(B, N, C, T, H, W)`` the mean of the N clips'
        softmax (multi-clip test-time averaging)."""
        if x.ndim == 6:
            b, n = x.shape[:2]
            return torch.softmax(self(x.flatten(0, 1)), dim=1).reshape(b, n, -1).mean(dim=1)
        return torch.softmax(self(x), dim=1)

    def probe_features(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled clip features ``(B * N, F)`` and labels (several clips per item: each a sample)."""
        x, target = batch[self.image_key], batch[self.label_key].long()
        if x.ndim == 6:
            target = target[:, None].expand(-1, x.shape[1]).reshape(-1)
            x = x.flatten(0, 1)
        return self.clip_features(x), target

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        x, target = batch[self.image_key], batch[self.label_key].long()
        if x.ndim == 6:  # several clips per item in training: each is a sample
            target = target[:, None].expand(-1, x.shape[1]).reshape(-1)
            x = x.flatten(0, 1)
        logits = self(x)
        loss = F.cross_entropy(logits, target, ignore_index=-1)
        accuracy = (logits.argmax(dim=1) == target).float().mean()
        self.log_scalars({"loss": loss, "accuracy": accuracy}, "train", len(target))
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        x, target = batch[self.image_key], batch[self.label_key].long()
        probabilities = self.predict_proba(x)
        loss = F.nll_loss(torch.log(probabilities.clamp_min(1e-12)), target, ignore_index=-1)
        self.val_metrics.update(probabilities, target)
        k = min(5, self.num_classes)
        labelled = target >= 0
        self._top5.append((probabilities[labelled].topk(k, dim=1).indices == target[labelled, None]).any(dim=1).cpu())
        self.log_scalars({"loss": loss}, "val", len(target))
        return loss

    def on_validation_epoch_end(self) -> None:
        report = self.val_metrics.report()
        self.val_metrics.reset()
        hits = torch.cat(self._top5) if self._top5 else torch.zeros(0, dtype=torch.bool)
        self._top5 = []
        report["top5_accuracy"] = float(hits.float().mean()) if hits.numel() else float("nan")
        self.last_report = report
        self.log("val/accuracy", report["accuracy"], sync_dist=False)
        self.log("val/top5_accuracy", report["top5_accuracy"], sync_dist=False)
        self.log("val/macro_f1", report["macro_f1"], sync_dist=False)


class ActionRecognitionTask(Task):
    """Action recognition as a task (see the module docstring)."""

    name = "action_recognition"
    model_class = ActionRecognition
    default_protocols = ("linear", "finetune")
    encoder_protocols = ("knn",)
    table_metrics = ("accuracy", "top5_accuracy", "macro_f1")
    curve_metric = "val/accuracy"
    reference_note = ("The action table adds a raw-pixel probe: the same logistic regression as the linear probe, "
                      "on the training clips averaged down to a small grid of pixels per frame.")

    def prepare(self, config: dict[str, Any], encoder: PretrainedInfo) -> dict[str, Any]:
        """The encoder's channels; the test split held out; the classes from the manifest."""
        config = super().prepare(config, encoder)
        data = config["data"]["init_args"]
        data.setdefault("val_split", "test")
        model = config["model"].setdefault("init_args", {})
        if model.get("num_classes") is None:
            model["num_classes"], names = class_list_from_manifest(data["manifest"])
            model.setdefault("class_names", names)
        return config

    def score(self, model: ActionRecognition, datamodule: Any) -> dict[str, Any]:
        """Every held-out (test) video once, multi-clip averaged: accuracy, top-5 accuracy, macro F1."""
        model.eval()
        device = device_of(model)
        with torch.no_grad():
            return self.score_predictions(datamodule, lambda clips: model.predict_proba(clips.to(device)).cpu(),
                                          model.num_classes, model.class_names)

    def score_predictions(self, datamodule: Any, predict_proba: Callable[[torch.Tensor], torch.Tensor],
                          num_classes: int, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """Score ``predict_proba(clips)`` (class probabilities ``(B, K)`` of items ``(B, N, C, T, H, W)``
        or ``(B, C, T, H, W)``) on every held-out video of ``datamodule``."""
        metrics = ClassificationMetrics(num_classes, class_names)
        hits = []
        videos = evaluation_items(datamodule)
        for batch in in_order(videos, datamodule.val_batch_size):
            probabilities = predict_proba(batch["clip"])
            target = batch["label"].long()
            metrics.update(probabilities, target)
            k = min(5, num_classes)
            hits.append((probabilities.topk(k, dim=1).indices == target[:, None]).any(dim=1))
        report = metrics.report()
        report["top5_accuracy"] = float(torch.cat(hits).float().mean()) if hits else float("nan")
        return {"metrics": {k: report[k] for k in self.table_metrics}, "report": report, "examples": [],
                **videos.report()}

    def baseline(self, datamodule: Any, config: Mapping[str, Any]) -> dict[str, Any]:
        """A raw-pixel probe: the linear probe's logistic regression
        (:func:`~ultrassl.downstream.linear_probe.fit_logistic_regression`, the config's
        ``probe_l2``) on the training videos' evaluation clips averaged down to
        :data:`RAW_PIXEL_GRID` in space (every frame kept), scored like the models. On classes
        that are time reversals of each other, appearance does not tell them apart."""
        options = config["model"].get("init_args") or {}
        num_classes, names = options.get("num_classes"), options.get("class_names")
        if num_classes is None:
            num_classes, names = class_list_from_manifest(datamodule.manifest)
        train, _ = datamodule.split_tables()
        features, labels = [], []
        training = evaluation_items(datamodule, train)
        for batch in in_order(training, datamodule.val_batch_size):
            clips, target = batch["clip"], batch["label"].long()
            if clips.ndim == 6:  # several clips per video: each is a sample, as in the linear probe
                target = target[:, None].expand(-1, clips.shape[1]).reshape(-1)
                clips = clips.flatten(0, 1)
            features.append(raw_clip_features(clips).double())
            labels.append(target)
        x, y = torch.cat(features), torch.cat(labels)
        x, y = x[y >= 0], y[y >= 0]
        l2, max_iter = options.get("probe_l2"), options.get("probe_max_iter")
        probe = fit_logistic_regression(x, y, int(num_classes), None, 1e-3 if l2 is None else float(l2),
                                        500 if max_iter is None else int(max_iter))

        def predict_proba(clips: torch.Tensor) -> torch.Tensor:
            if clips.ndim == 6:
                b, n = clips.shape[:2]
                return torch.softmax(probe.logits(raw_clip_features(clips.flatten(0, 1))), dim=1).reshape(
                    b, n, -1).mean(dim=1)
            return torch.softmax(probe.logits(raw_clip_features(clips)), dim=1)

        scored = self.score_predictions(datamodule, predict_proba, int(num_classes), names)
        return {"name": "raw-pixel probe", "metrics": scored["metrics"], "report": scored["report"],
                "clips": int(len(y)), "iterations": probe.iterations, **training.report("left_out_training"),
                **{k: scored[k] for k in ("left_out",) if k in scored}}


def raw_clip_features(clips: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
    """Clips ``(B, C, T, H, W)`` averaged down to ``grid`` (default :data:`RAW_PIXEL_GRID`)
    in space, every frame kept, and flattened: ``(B, C * T * h * w)``."""
    h, w = grid or RAW_PIXEL_GRID
    return F.adaptive_avg_pool3d(clips.float(), (clips.shape[2], h, w)).flatten(1)


def class_list_from_manifest(manifest: str) -> tuple[int, list[str] | None]:
    """The number of classes (largest ``label`` + 1) and their names (``class_name``) of a manifest."""
    table = read_manifest(manifest, status="ok")
    if "label" not in table.columns or table["label"].isna().all():
        raise ValueError(f"{manifest}: action recognition needs an integer 'label' column")
    labels = table["label"].dropna().astype(int)
    num_classes = int(labels.max()) + 1
    names = None
    if "class_name" in table.columns:
        by_label = dict(zip(labels, table.loc[labels.index, "class_name"].astype(str)))
        names = [by_label.get(i, str(i)) for i in range(num_classes)]
    return num_classes, names
