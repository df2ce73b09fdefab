"""Every pretraining objective's checkpoint transfers to every downstream task (tiny budget)."""

from __future__ import annotations

import pytest
import torch

from tests.downstream.helpers import OBJECTIVES, action_batch, loader_of, plane_batch, quick_trainer, saliency_batch
from ultrassl.downstream.action import ActionRecognition
from ultrassl.models.checkpoint import load_pretrained_backbone
from ultrassl.downstream.plane_detection import PlaneDetection
from ultrassl.downstream.saliency import SaliencyPrediction

TASKS = {
    "plane_detection": (lambda **kw: PlaneDetection(class_names=["bg", "a", "b", "c"], class_weights=None, **kw),
                        plane_batch),
    "saliency": (lambda **kw: SaliencyPrediction(n_splits=3, **kw), saliency_batch),
    "action": (lambda **kw: ActionRecognition(num_classes=3, **kw), action_batch),
}


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_checkpoint_of_each_objective_transfers_to_every_task(checkpoint_factory, objective):
    path = str(checkpoint_factory(objective, "tiny3d"))
    pretrained, _ = load_pretrained_backbone(path)
    for task, (build, make_batch) in TASKS.items():
        for init in ("pretrained", "random"):
            model = build(checkpoint=path, init=init, protocol="finetune")
            loaded = all(torch.equal(v, pretrained.state_dict()[k]) for k, v in model.backbone.state_dict().items()
                         if v.dtype.is_floating_point)
            assert loaded == (init == "pretrained"), (task, init)
            assert model.hparams.backbone == "tiny3d"
            quick_trainer(1, limit_val_batches=0).fit(model, loader_of(make_batch(), 1))
            assert model.global_step == 1, (task, init)
        # the frozen protocol: classification probes are solved, the saliency decoder steps
        model = build(checkpoint=path, protocol="linear")
        quick_trainer(1, limit_val_batches=0).fit(model, loader_of(make_batch(), 1))
        assert (model.probe_fit is not None) == (task != "saliency"), task
        assert model.global_step == (1 if task == "saliency" else 0), task
