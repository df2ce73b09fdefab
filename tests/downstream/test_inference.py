"""Trained downstream models on new clips: the pipeline travels in the checkpoint."""

from __future__ import annotations

import pytest
import torch

from tests.downstream.test_evaluate import tiny_config
from tests.media import truncate_file
from ultrassl.data.datasets import ManifestDataset
from ultrassl.data.manifest import read_manifest
from ultrassl.downstream.base import load_task_pipeline
from ultrassl.errors import CheckpointError
from ultrassl.downstream.cine import predict_cine_loop, predict_saliency_loop
from ultrassl.downstream.evaluate import evaluate_checkpoint
from ultrassl.downstream.inference import LoopPredictor
from ultrassl.errors import CorruptFileError


@pytest.fixture(scope="module")
def trained(checkpoint_factory, fetal_manifest_two_held_out, tmp_path_factory):
    """``{task: model.ckpt}`` of a fine-tune per task (1 step), and the manifest."""
    out = tmp_path_factory.mktemp("trained")
    tasks = ("plane_detection", "saliency")
    results = evaluate_checkpoint(checkpoint_factory("order_geometry", "tiny3d"), out, tasks=tasks,
                                  configs={t: tiny_config(t) for t in tasks}, manifest=fetal_manifest_two_held_out,
                                  protocols={t: ["finetune"] for t in tasks}, max_steps=1, batch_size=4, log=None)
    return {t: out / results["tasks"][t]["training"]["finetune/pretrained"]["model"] for t in tasks}


def test_the_checkpoint_rebuilds_the_training_pipeline(trained):
    pipeline = load_task_pipeline(trained["plane_detection"])
    assert type(pipeline).__name__ == "PlaneDetectionPipeline"
    clip_frames = tiny_config("plane_detection")["data"]["init_args"]["pipeline"]["init_args"]["clip_frames"]
    assert pipeline.size == (32, 40) and pipeline.in_channels == 1 and pipeline.clip_frames == clip_frames


def test_predictions_on_a_new_clip_match_the_cine_scoring(trained, fetal_manifest_two_held_out):
    path = read_manifest(fetal_manifest_two_held_out, status="ok")["path"].iloc[0]
    planes = LoopPredictor(trained["plane_detection"])
    prediction = planes.predict(path)
    table = read_manifest(fetal_manifest_two_held_out, status="ok")
    cine = ManifestDataset(table.iloc[[0]], planes.pipeline.cine_transform(), label_column=None)[0]["clip"]
    assert torch.equal(planes.load(path), cine)  # the same frames as the evaluation saw, without annotations
    expected = predict_cine_loop(planes.model, cine, clip_frames=planes.pipeline.clip_frames, with_cams=True)
    assert prediction.task == "plane_detection" and prediction.n_frames == cine.shape[1]
    assert torch.allclose(prediction.probabilities, expected["probabilities"])
    assert prediction.cams.shape == (cine.shape[1], 32, 40)
    assert torch.equal(prediction.predicted, expected["predicted"])
    saliency = LoopPredictor(trained["saliency"]).predict(path)
    assert saliency.task == "saliency" and saliency.saliency.shape == (cine.shape[1], 32, 40)
    assert torch.allclose(saliency.saliency.sum(dim=(1, 2)), torch.ones(cine.shape[1]), atol=1e-4)
    model = LoopPredictor(trained["saliency"]).model
    assert torch.allclose(saliency.saliency, predict_saliency_loop(model, cine, planes.pipeline.clip_frames))


def test_bad_clips_and_checkpoints_raise_typed_errors(trained, checkpoint_factory, fetal_manifest_two_held_out,
                                                      tmp_path):
    path = read_manifest(fetal_manifest_two_held_out, status="ok")["path"].iloc[0]
    broken = tmp_path / ("broken" + path[path.rindex("."):])
    truncate_file(path, broken, 0.3)
    with pytest.raises(CorruptFileError) as error:
        LoopPredictor(trained["plane_detection"]).predict(broken)
    assert str(broken) in str(error.value)
    with pytest.raises(CheckpointError, match="not a downstream task checkpoint"):
        LoopPredictor(checkpoint_factory("cvrl", "tiny3d"))

