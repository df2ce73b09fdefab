"""Downstream checkpoints written by earlier versions of the package still load and predict the same.

``fixtures/before_tasks/`` holds tiny models saved before the encoder spec and the pipeline
became hyperparameters: three as ``ultrassl evaluate`` saved them (weights and
hyperparameters, the pipeline beside them; the action model without one) and one written by
``ultrassl fit`` (full training state, LightningCLI's keys in the hyperparameters, and the
path of a pretraining checkpoint that no longer exists). ``expected_outputs.pt`` holds an
input and the output each model gave when it was saved.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ultrassl.downstream.base import load_task_model, load_task_pipeline

FIXTURES = Path(__file__).parent / "fixtures" / "before_tasks"
MODELS = ("plane_detection", "saliency", "action_recognition", "plane_detection_fit")


@pytest.fixture(scope="module")
def expected() -> dict:
    return torch.load(FIXTURES / "expected_outputs.pt", weights_only=True)


@pytest.mark.parametrize("name", MODELS)
def test_saved_models_load_and_predict_as_when_saved(name, expected):
    model = load_task_model(FIXTURES / f"{name}.ckpt")
    assert not model.training
    with torch.no_grad():
        output = model(expected[name]["input"])
    torch.testing.assert_close(output, expected[name]["output"], rtol=1e-5, atol=1e-6)


def test_the_pretraining_file_a_fit_started_from_is_not_needed():
    saved = torch.load(FIXTURES / "plane_detection_fit.ckpt", map_location="cpu", weights_only=True)
    assert not Path(saved["hyper_parameters"]["checkpoint"]).exists()
    model = load_task_model(FIXTURES / "plane_detection_fit.ckpt")
    assert model.class_names[0] == "Background" and len(model.class_names) == 14


@pytest.mark.parametrize(("name", "pipeline_class"), [("plane_detection", "PlaneDetectionPipeline"),
                                                      ("saliency", "SaliencyPipeline"),
                                                      ("plane_detection_fit", "PlaneDetectionPipeline")])
def test_saved_pipelines_rebuild(name, pipeline_class):
    pipeline = load_task_pipeline(FIXTURES / f"{name}.ckpt")
    assert type(pipeline).__name__ == pipeline_class and pipeline.size == (32, 40) and pipeline.in_channels == 1
