"""Downstream transfer: plane detection, saliency prediction and action recognition from any
pretraining checkpoint, each beside a random-init baseline trained with the same budget.

* :mod:`.base`: :class:`~.base.DownstreamModule` (an encoder spec, a protocol, the pipeline
  as a hyperparameter), :func:`~.base.load_task_model`;
* :mod:`.protocols`: ``linear`` (solved probes), ``finetune`` (LP-FT), ``knn``, one per module;
* :mod:`.task`: what a task is (:class:`~.task.Task`); :mod:`.tasks`: the registry;
* :mod:`.plane_detection`, :mod:`.saliency`, :mod:`.action`: each task's model and task;
* :mod:`.arms`: one arm of a comparison, from a config and an encoder spec;
* :mod:`.evaluate`: ``ultrassl evaluate``, the loop over tasks, protocols and arms;
  :mod:`.report`: its results files;
* :mod:`.cine`, :mod:`.scoring`, :mod:`.linear_probe`, :mod:`.plots`: what the tasks share;
* :mod:`.inference`: trained models on new clips (:class:`~.inference.LoopPredictor`).

Import from the submodules; this package re-exports nothing.
"""
