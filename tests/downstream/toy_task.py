"""A toy downstream task, written as a new task would be: one module with its model and its
:class:`~ultrassl.downstream.task.Task`, registered with one line.

Does a frame show a standard plane at all? A binary frame classifier on the plane-detection
pipeline's items (label: the centre frame's plane is not Background), scored on every frame
of the held-out loops (accuracy, and the error rate, where lower is better), beside a
model-free baseline: the majority class of the training frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ultrassl.downstream.base import DownstreamModule
from ultrassl.downstream.cine import window_indices
from ultrassl.downstream.scoring import held_out_loops
from ultrassl.downstream.task import LoopPrediction, Task, ViewerSpec

CLASSES = ["no plane", "plane"]


class ToyModel(DownstreamModule):
    """Plane or not, from the pooled feature map of the centre frame."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.class_names = list(CLASSES)
        self.head = nn.Linear(self.num_features, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.frame_feature_map(x).flatten(2).mean(dim=-1))

    def evidence(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, h, w)``: how much each place of the centre frame speaks for "plane"."""
        weight = self.head.weight[1] - self.head.weight[0]
        return torch.einsum("f,bfhw->bhw", weight, self.frame_feature_map(x))

    def _loss(self, batch: Mapping[str, Any]) -> torch.Tensor:
        labels = batch["clip_frame_labels"]
        target = (labels[:, labels.shape[1] // 2] > 0).long()
        return F.cross_entropy(self(batch["clip"]), target)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log_scalars({"loss": loss}, "train", len(batch["clip"]))
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log_scalars({"loss": loss}, "val", len(batch["clip"]))
        return loss


class ToyTask(Task):
    name = "toy"
    model_class = ToyModel
    default_protocols = ("finetune",)
    table_metrics = ("accuracy", "error")
    lower_is_better = frozenset({"error"})
    curve_metric = "val/loss"
    reference_note = "The toy table adds the majority class of the training frames."
    viewer = ViewerSpec(key="toy", model_label="Toy model", map_label="Toy evidence", map_key="show_toy",
                        signed_maps=True, class_label="Toy class")

    def prepare(self, config: dict[str, Any], encoder) -> dict[str, Any]:
        config = super().prepare(config, encoder)
        config["data"]["init_args"]["pipeline"]["init_args"]["clip_frames"] = 1
        return config

    def score(self, model: ToyModel, datamodule: Any) -> dict[str, Any]:
        predicted, truth = [], []
        dataset = held_out_loops(datamodule)
        for item in dataset:  # unreadable videos are left out and listed in dataset.report()
            out = self.predict_loop(model, item["clip"], datamodule.pipeline)
            predicted.append(out.predicted)
            truth.append((item["clip_frame_labels"] > 0).long())
        accuracy = float((torch.cat(predicted) == torch.cat(truth)).float().mean())
        return {"metrics": {"accuracy": accuracy, "error": 1.0 - accuracy}, "examples": [], **dataset.report()}

    def baseline(self, datamodule: Any, config: Mapping[str, Any]) -> dict[str, Any]:
        train, _ = datamodule.split_tables()
        loops = held_out_loops(datamodule, train)
        majority = int(torch.cat([(item["clip_frame_labels"] > 0).long() for item in loops]).float().mean() > 0.5)
        truth = torch.cat([(item["clip_frame_labels"] > 0).long() for item in held_out_loops(datamodule)])
        accuracy = float((truth == majority).float().mean())
        return {"name": "majority class", "metrics": {"accuracy": accuracy, "error": 1.0 - accuracy}}

    @torch.no_grad()
    def predict_loop(self, model: ToyModel, loop: torch.Tensor, pipeline: Any) -> LoopPrediction:
        model.eval()
        clips = loop[:, window_indices(loop.shape[1], 1)].permute(1, 0, 2, 3, 4)
        probabilities = torch.softmax(model(clips), dim=1)
        maps = torch.nn.functional.interpolate(model.evidence(clips)[:, None], size=tuple(loop.shape[-2:]),
                                               mode="bilinear", align_corners=False)[:, 0]
        return LoopPrediction(self.name, loop.shape[1], list(CLASSES), probabilities=probabilities, maps=maps)
