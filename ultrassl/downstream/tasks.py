"""The registry of downstream tasks: the one list ``ultrassl evaluate``, the loop predictor,
the viewer and the transfer benchmark look tasks up in.

A task is one module with its model and its :class:`~ultrassl.downstream.task.Task`, and one
entry here (or one :func:`register_task` call, e.g. in a test). Tasks are found by name
(:func:`get_task`), by a model or its class (:func:`task_of_model`: the task whose
``model_class`` the model is an instance of, the most specific when several are), or by a
config's model ``class_path`` (:func:`task_of_config`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ultrassl.downstream.action import ActionRecognitionTask
from ultrassl.downstream.plane_detection import PlaneDetectionTask
from ultrassl.downstream.saliency import SaliencyTask
from ultrassl.downstream.task import Task
from ultrassl.models.checkpoint import import_class

TASKS: dict[str, Task] = {
    "plane_detection": PlaneDetectionTask(),
    "saliency": SaliencyTask(),
    "action_recognition": ActionRecognitionTask(),
}
#: what ``ultrassl evaluate`` runs when no task is named
DEFAULT_TASKS = ("plane_detection", "saliency")


def register_task(task: Task) -> Task:
    """Add ``task`` under its name (a name taken by another task is an error)."""
    if task.name in TASKS and TASKS[task.name] is not task:
        raise ValueError(f"a task named {task.name!r} is registered already: {TASKS[task.name]!r}")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> Task:
    """The registered task ``name``; the error lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def task_of_model(model: Any) -> Task:
    """The task of a model (or of its class): the one whose ``model_class`` it is, or
    derives from (the most specific match)."""
    cls = model if isinstance(model, type) else type(model)
    matches = [task for task in TASKS.values() if issubclass(cls, task.model_class)]
    if not matches:
        raise ValueError(f"{cls.__module__}.{cls.__qualname__} is the model of no registered task "
                         f"({', '.join(TASKS)})")
    return min(matches, key=lambda task: cls.__mro__.index(task.model_class))


def task_of_config(config: Mapping[str, Any]) -> Task:
    """The task a config trains, from its model's ``class_path``."""
    class_path = config["model"]["class_path"]
    try:
        cls = import_class(class_path)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"model {class_path!r} cannot be imported ({exc})") from exc
    if not isinstance(cls, type):
        raise ValueError(f"model {class_path!r} is not a class")
    return task_of_model(cls)
