"""Downstream transfer: plane detection, saliency prediction and action recognition from any
pretraining checkpoint, each beside a random-init baseline trained with the same budget.

* :mod:`.checkpoint`: a checkpoint's backbone (:func:`~.checkpoint.load_pretrained_backbone`)
  and the same architecture freshly initialised;
* :mod:`.base`: :class:`~.base.DownstreamModule` (linear probe or fine-tune);
* :mod:`.plane_detection`, :mod:`.saliency`, :mod:`.action`: the task modules;
* :mod:`.cine`: per-frame predictions over whole cine loops, best frame per plane;
* :mod:`.evaluate`: pretrained vs random init for a task, results table and plots.

Import from the submodules; this package re-exports nothing.
"""
