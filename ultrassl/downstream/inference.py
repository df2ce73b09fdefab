"""Predictions of a trained downstream model on whole clips, prepared as in its training.

:class:`LoopPredictor` pairs a task model (:func:`~ultrassl.downstream.base.load_task_model`)
with the pipeline it was trained with (:func:`~ultrassl.downstream.base.load_task_pipeline`),
reads every frame of a clip through that pipeline (sector masking, resizing, normalisation;
no annotation needed) and predicts every frame. Maps are at the model's input size
``(h, w)``; the pipeline resizes whole frames, so a map lies over the frame by a plain resize.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ultrassl.data.datasets import typed_cause
from ultrassl.downstream.base import load_task_model, load_task_pipeline
from ultrassl.downstream.checkpoint import CheckpointError
from ultrassl.downstream.cine import best_frames, predict_cine_loop, predict_saliency_loop
from ultrassl.downstream.plane_detection import PlaneDetection
from ultrassl.downstream.saliency import SaliencyPrediction


@dataclass
class LoopPrediction:
    """A model's output for every frame of a clip.

    Attributes:
        task: ``"plane_detection"`` or ``"saliency"``.
        n_frames: N.
        class_names: K names (plane detection), else empty.
        probabilities: float32 ``(N, K)`` class probabilities (plane detection).
        cams: float32 ``(N, h, w)`` class-activation map of each frame's predicted class
            (plane detection; larger = more evidence, unnormalised).
        saliency: float32 ``(N, h, w)`` saliency maps, each summing to 1 (saliency).
        best_frames: where each predicted plane is best seen
            (:func:`~ultrassl.downstream.cine.best_frames`).
    """

    task: str
    n_frames: int
    class_names: list[str] = field(default_factory=list)
    probabilities: torch.Tensor | None = None
    cams: torch.Tensor | None = None
    saliency: torch.Tensor | None = None
    best_frames: dict = field(default_factory=dict)

    @property
    def predicted(self) -> torch.Tensor | None:
        """int64 ``(N,)`` predicted class of every frame (plane detection)."""
        return None if self.probabilities is None else self.probabilities.argmax(dim=1)


class LoopPredictor:
    """A trained plane-detection or saliency model, ready for whole clips.

    Args:
        checkpoint: the model's checkpoint (``ultrassl evaluate``'s ``model.ckpt`` or
            ``ultrassl fit``'s); it must record its pipeline.
        device: where the model runs.
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
        self.checkpoint = Path(checkpoint)
        self.model = load_task_model(checkpoint, map_location=device)
        if not isinstance(self.model, (PlaneDetection, SaliencyPrediction)):
            raise CheckpointError(f"{type(self.model).__name__} does not predict the frames of a loop", checkpoint)
        self.pipeline = load_task_pipeline(checkpoint)
        self.transform = self.pipeline.inference_transform()

    @property
    def task(self) -> str:
        return "plane_detection" if isinstance(self.model, PlaneDetection) else "saliency"

    def load(self, path: str | os.PathLike) -> torch.Tensor:
        """Every frame of the clip at ``path`` as the model sees it, ``(C, N, h, w)``.

        Raises:
            ClipReadError: (a subclass) the clip cannot be read; not MONAI's wrapper of it.
        """
        try:
            return self.transform({"path": str(path)})["clip"]
        except Exception as exc:
            typed = typed_cause(exc)
            if typed is not None:
                raise typed from None
            raise

    def predict(self, path: str | os.PathLike) -> LoopPrediction:
        """The model's output on every frame of the clip at ``path``.

        Raises:
            ClipReadError: (a subclass) the clip cannot be read.
        """
        loop = self.load(path)
        clip_frames = getattr(self.pipeline, "clip_frames", 1)
        if isinstance(self.model, PlaneDetection):
            out = predict_cine_loop(self.model, loop, clip_frames=clip_frames, with_cams=True)
            return LoopPrediction("plane_detection", loop.shape[1], list(self.model.class_names),
                                  probabilities=out["probabilities"], cams=out["cams"],
                                  best_frames=best_frames(out["probabilities"], self.model.class_names))
        maps = predict_saliency_loop(self.model, loop, clip_frames)
        return LoopPrediction("saliency", loop.shape[1], saliency=maps)
