"""What a downstream task is: everything ``ultrassl evaluate``, the loop predictor and the
viewer need to know about it, in one object.

A task (:class:`Task`) owns its model class (a :class:`~ultrassl.downstream.base.DownstreamModule`),
its shipped config, the protocols it runs by default, the metrics of its results table,
how a trained model is scored on held-out data, its model-free baseline, its figures, and
how a trained model predicts every frame of a loop. The tasks of the package are listed in
one registry (:mod:`ultrassl.downstream.tasks`); a new task is one module with a model and
a :class:`Task`, and one registry line.

Scored results (:meth:`Task.score`, a baseline, a protocol without training) are dicts with
``"metrics"`` (name -> float: the table's rows), optional ``"examples"`` (for figures) and
anything else a task reports (``"report"``, ``"loops"`` ...: the details of ``results.json``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ultrassl.downstream import plots
from ultrassl.models.checkpoint import PretrainedInfo

#: the folder of the task configs shipped with the source tree
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "downstream"
#: the runs of a comparison, in column order
INITS = ("pretrained", "random_init")


@dataclass
class LoopPrediction:
    """A model's output for every frame of a clip.

    Attributes:
        task: the task's name.
        n_frames: N.
        class_names: K names (classification tasks), else empty.
        probabilities: float32 ``(N, K)`` class probabilities (classification tasks).
        maps: float32 ``(N, h, w)``, a map per frame at the model's input size: the
            class-activation map of the predicted class (plane detection; evidence,
            unnormalised) or the saliency map (summing to 1).
        best_frames: where each predicted class is best seen
            (:func:`~ultrassl.downstream.cine.best_frames`).
    """

    task: str
    n_frames: int
    class_names: list[str] = field(default_factory=list)
    probabilities: torch.Tensor | None = None
    maps: torch.Tensor | None = None
    best_frames: dict = field(default_factory=dict)

    @property
    def predicted(self) -> torch.Tensor | None:
        """int64 ``(N,)`` predicted class of every frame (classification tasks)."""
        return None if self.probabilities is None else self.probabilities.argmax(dim=1)

    @property
    def cams(self) -> torch.Tensor | None:
        """The class-activation maps, when the maps are those (plane detection)."""
        return self.maps if self.probabilities is not None else None

    @property
    def saliency(self) -> torch.Tensor | None:
        """The saliency maps, when the maps are those (saliency)."""
        return self.maps if self.probabilities is None else None


@dataclass(frozen=True)
class ViewerSpec:
    """How the viewer (``apps/viewer.py``) offers a task's models and draws their predictions.

    Attributes:
        key: names the widgets and the command-line option: the model path is
            ``--{key}-model`` and session key ``"{key}_model_path"``.
        model_label: the label of the model path box (and its help text, ``model_help``).
        map_label: the label of the switch that overlays the per-frame map (key ``map_key``;
            help text ``map_help``).
        signed_maps: the maps are evidence of any sign (class activation), shifted to zero
            before drawing, rather than probabilities.
        class_label: what a predicted class is called ("Plane"), for classification tasks.
    """

    key: str
    model_label: str
    map_label: str
    map_key: str
    model_help: str | None = None
    map_help: str | None = None
    signed_maps: bool = False
    class_label: str | None = None


class Task:
    """A downstream task (see the module docstring); subclasses set the attributes and
    implement :meth:`score` (and, where they apply, the other methods).

    Attributes:
        name: the registry name (``ultrassl evaluate --tasks``, ``results.json``).
        model_class: the task's model; :func:`~ultrassl.downstream.tasks.task_of_model`
            finds the task of a model (or of a config) by it.
        default_protocols: the training protocols run when none are asked for.
        encoder_protocols: protocols that score the encoders as they start, always run
            (action recognition: ``("knn",)``).
        table_metrics: the metrics of the results table, in order.
        lower_is_better: those among them where lower is better.
        curve_metric: the logged validation metric drawn in the training-curve figure.
        reference_note: the sentence ``results.md`` adds when the task has a baseline.
        viewer: how the viewer offers its models (None: not shown there).
    """

    name: str
    model_class: type
    default_protocols: tuple[str, ...] = ("linear", "finetune")
    encoder_protocols: tuple[str, ...] = ()
    table_metrics: tuple[str, ...] = ()
    lower_is_better: frozenset[str] = frozenset()
    curve_metric: str | None = None
    reference_note: str = ""
    viewer: ViewerSpec | None = None

    # ----------------------------------------------------------------- configs
    def default_config_path(self) -> Path:
        """``configs/downstream/<name>.yaml`` of the source tree."""
        path = CONFIG_DIR / f"{self.name}.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no config for task {self.name!r}; pass one with --config")
        return path

    def prepare(self, config: dict[str, Any], encoder: PretrainedInfo) -> dict[str, Any]:
        """The arm config ``config`` (a copy) with what the encoder dictates filled in: the
        pipeline's ``in_channels`` (the encoder's), and what the task adds (frames per item,
        class names ...). The base sets the channels."""
        config = copy.deepcopy(config)
        pipeline = config["data"]["init_args"]["pipeline"].setdefault("init_args", {})
        pipeline["in_channels"] = encoder.spec.in_channels
        return config

    # ----------------------------------------------------------------- scoring
    def score(self, model: Any, datamodule: Any) -> dict[str, Any]:
        """The trained ``model`` scored on ``datamodule``'s held-out videos: ``{"metrics":
        {name: value for the table}, "examples": [...], ...details}``."""
        raise NotImplementedError

    def baseline(self, datamodule: Any, config: Mapping[str, Any]) -> dict[str, Any] | None:
        """The model-free baseline of the task on ``datamodule``'s held-out videos (``config``:
        the arm's resolved config, for the model's scoring conventions): ``{"name": ...,
        "metrics": {...}}``, or None when the task has none. It must depend on the data and the
        config only, not on the run's seed: the benchmark computes it once for each set of
        labelled subjects and config."""
        return None

    def higher_is_better(self, metric: str) -> bool:
        return metric not in self.lower_is_better

    def class_scores(self, scored: Mapping[str, Any]) -> dict[str, float] | None:
        """The per-class F1 of a scored result that carries a classification report
        (``scored["report"]["per_class"]``), for the classes with held-out samples; else None."""
        per_class = (scored.get("report") or {}).get("per_class")
        if not per_class:
            return None
        return {name: float(entry["f1"]) for name, entry in per_class.items() if entry.get("support", 0) > 0}

    # ----------------------------------------------------------------- figures
    def figures(self, results: Mapping[str, Mapping[str, Any]], out_dir: Path) -> list[Path]:
        """The task's figures of ``results`` (``{protocol: {init: scored}}``) in ``out_dir``;
        the training curves are drawn for every task by the report. The base draws the
        confusion matrices of the protocols whose scored arms carry a ``"report"``."""
        return [f for protocol, by_init in results.items() if (f := self.confusion_figure(protocol, by_init, out_dir))]

    def confusion_figure(self, protocol: str, by_init: Mapping[str, Any], out_dir: Path) -> Path | None:
        """The confusion matrices of one protocol's arms side by side, if they carry reports."""
        reports = {init: scored.get("report") for init, scored in by_init.items()}
        if not reports or any(r is None for r in reports.values()):
            return None
        names = reports[INITS[0]]["class_names"]
        return plots.confusion_matrix_image(
            {f"{init} ({protocol})": r["confusion"] for init, r in reports.items()}, names,
            out_dir / f"confusion_{protocol}.png", f"{self.name}: confusion matrices (rows true, columns predicted)")

    # ----------------------------------------------------------------- whole loops
    def predict_loop(self, model: Any, loop: torch.Tensor, pipeline: Any) -> LoopPrediction:
        """``model``'s output on every frame of ``loop`` ``(C, N, H, W)`` (through
        ``pipeline``'s ``inference_transform``). A task may take a keyword ``progress``,
        called with ``(frames done, frames)`` as it goes; :class:`LoopPredictor` passes it
        where the task's method takes it."""
        raise NotImplementedError(f"{self.name} models do not predict the frames of a loop")

    @property
    def predicts_loops(self) -> bool:
        return type(self).predict_loop is not Task.predict_loop

    def __repr__(self) -> str:
        return f"<task {self.name}: {self.model_class.__qualname__}>"
