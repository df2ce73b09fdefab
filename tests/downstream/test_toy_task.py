"""A new task is one module (:mod:`tests.downstream.toy_task`) and one registry line: then
``evaluate``, the loop predictor and the viewer run it, with no code of their own for it."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.apps.test_viewer import VIEWER
from tests.downstream.toy_task import CLASSES, ToyTask
from ultrassl.data.manifest import read_manifest
from ultrassl.downstream.evaluate import evaluate_checkpoint
from ultrassl.downstream.inference import LoopPredictor
from ultrassl.downstream.tasks import TASKS, task_of_config


def toy_config(manifest) -> dict:
    return {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "log_every_n_steps": 1,
                    "num_sanity_val_steps": 0},
        "model": {"class_path": "tests.downstream.toy_task.ToyModel", "init_args": {"lr": 0.01}},
        "data": {"class_path": "ultrassl.data.datamodule.ManifestDataModule", "init_args": {
            "manifest": str(manifest), "batch_size": 4, "clips_per_video": 2, "val_clips_per_video": 2,
            "label_column": None,
            "pipeline": {"class_path": "ultrassl.pipelines.plane_detection.PlaneDetectionPipeline",
                         "init_args": {"size": [32, 40]}}}},
    }


@pytest.fixture
def toy(monkeypatch):
    task = ToyTask()
    monkeypatch.setitem(TASKS, task.name, task)  # the one registry line
    return task


def test_a_toy_task_runs_through_evaluate_the_loop_predictor_and_the_viewer(toy, checkpoint_factory,
                                                                           fetal_manifest_two_held_out, tmp_path,
                                                                           monkeypatch):
    config = toy_config(fetal_manifest_two_held_out)
    assert task_of_config(config) is toy
    results = evaluate_checkpoint(checkpoint_factory("order_geometry", "tiny3d"), tmp_path, tasks=["toy"],
                                  configs={"toy": config}, max_steps=2, log=None)
    entry = json.loads((tmp_path / "results.json").read_text())["tasks"]["toy"]
    assert entry == json.loads(json.dumps(results["tasks"]["toy"]))
    rows = {row["metric"]: row for row in entry["rows"]}
    assert set(rows) == {"accuracy", "error"} and {row["protocol"] for row in entry["rows"]} == {"finetune"}
    assert rows["error"]["higher_is_better"] is False and rows["accuracy"]["higher_is_better"] is True
    for init in ("pretrained", "random_init"):
        assert rows["accuracy"][init] == pytest.approx(1.0 - rows["error"][init])
    assert entry["reference"] == "majority class" and 0.0 <= rows["accuracy"]["reference"] <= 1.0
    assert entry["training"]["finetune/pretrained"]["steps"] == 2
    markdown = (tmp_path / "results.md").read_text()
    assert "## toy" in markdown and "majority class (no model)" in markdown
    assert "KLD, error: lower is better" in markdown and toy.reference_note in markdown
    assert (tmp_path / "toy" / "training_loss.png").is_file()

    model_path = tmp_path / entry["training"]["finetune/pretrained"]["model"]
    clip = read_manifest(fetal_manifest_two_held_out, status="ok")["path"].iloc[0]
    predictor = LoopPredictor(model_path)
    assert predictor.task == "toy"
    prediction = predictor.predict(clip)
    assert prediction.task == "toy" and prediction.class_names == CLASSES
    assert prediction.probabilities.shape == (prediction.n_frames, 2)
    assert prediction.maps.shape == (prediction.n_frames, 32, 40)
    assert torch.allclose(prediction.probabilities.sum(dim=1), torch.ones(prediction.n_frames))

    # a server started on the data with the evaluation folder as its run folder, the toy model picked
    monkeypatch.setattr(sys, "argv", [VIEWER, "--manifest", str(fetal_manifest_two_held_out), "--runs", str(tmp_path),
                                      "--toy-model", str(model_path)])
    app = AppTest.from_file(VIEWER, default_timeout=120).run()
    assert not app.exception and not app.warning
    box = app.sidebar.selectbox(key="toy_model_path")
    assert box.value == str(model_path)
    assert len(box.options) == 3 and all(o.startswith("toy (finetune)") for o in box.options[1:])
    first = int(prediction.probabilities[0].argmax())
    assert next(m.value for m in app.metric if m.label == "Toy class (model)") == CLASSES[first]
    assert any(image.captions[0].startswith("Predicted toy class of every frame") for image in app.image)
    assert app.sidebar.toggle(key="show_toy").value
