"""Predictions of a trained downstream model on whole clips, prepared as in its training.

:class:`LoopPredictor` loads a task model (:func:`~ultrassl.downstream.base.load_task_model`)
with the pipeline it was trained with (a hyperparameter saved in its checkpoint), finds its
task in the registry (:func:`~ultrassl.downstream.tasks.task_of_model`), reads every frame
of a clip through that pipeline (sector masking, resizing, normalisation; no annotation
needed) and has the task predict every frame
(:meth:`~ultrassl.downstream.task.Task.predict_loop`). Maps are at the model's input size
``(h, w)``; the pipeline resizes whole frames, so a map lies over the frame by a plain resize.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path

import torch

from ultrassl.data.datasets import typed_cause
from ultrassl.downstream.base import load_task_model
from ultrassl.downstream.task import LoopPrediction
from ultrassl.downstream.tasks import task_of_model
from ultrassl.errors import CheckpointError

__all__ = ["LoopPrediction", "LoopPredictor", "load_loop"]


def load_loop(transform, path: str | os.PathLike) -> torch.Tensor:
    """Every frame of the clip at ``path`` through a pipeline's ``inference_transform``,
    ``(C, N, h, w)``.

    Raises:
        ClipReadError: (a subclass) the clip cannot be read; not MONAI's wrapper of it.
    """
    try:
        return transform({"path": str(path)})["clip"]
    except Exception as exc:
        typed = typed_cause(exc)
        if typed is not None:
            raise typed from None
        raise


class LoopPredictor:
    """A trained model of a task that predicts whole loops (plane detection, saliency, ...),
    ready for new clips.

    Args:
        checkpoint: the model's checkpoint (``ultrassl evaluate``'s ``model.ckpt`` or
            ``ultrassl fit``'s); it must record its pipeline.
        device: where the model runs.
    """

    def __init__(self, checkpoint: str | os.PathLike, device: str | torch.device = "cpu"):
        self.checkpoint = Path(checkpoint)
        self.model = load_task_model(checkpoint, map_location=device)
        try:
            self.task_spec = task_of_model(self.model)
        except ValueError as exc:
            raise CheckpointError(str(exc), checkpoint) from None
        if not self.task_spec.predicts_loops:
            raise CheckpointError(f"{type(self.model).__name__} does not predict the frames of a loop", checkpoint)
        self.pipeline = self.model.pipeline
        if self.pipeline is None:
            raise CheckpointError("the checkpoint records no data pipeline (saved by an older version or by hand)",
                                  checkpoint)
        self.transform = self.pipeline.inference_transform()

    @property
    def task(self) -> str:
        """The model's task (its registry name)."""
        return self.task_spec.name

    def load(self, path: str | os.PathLike) -> torch.Tensor:
        """Every frame of the clip at ``path`` as the model sees it, ``(C, N, h, w)``.

        Raises:
            ClipReadError: (a subclass) the clip cannot be read; not MONAI's wrapper of it.
        """
        return load_loop(self.transform, path)

    def predict(self, path: str | os.PathLike,
                progress: Callable[[int, int], None] | None = None) -> LoopPrediction:
        """The model's output on every frame of the clip at ``path``; ``progress(done, total)``
        follows the frames where the task reports them.

        Raises:
            ClipReadError: (a subclass) the clip cannot be read.
        """
        loop = self.load(path)
        if progress is not None and "progress" in inspect.signature(self.task_spec.predict_loop).parameters:
            return self.task_spec.predict_loop(self.model, loop, self.pipeline, progress=progress)
        return self.task_spec.predict_loop(self.model, loop, self.pipeline)
