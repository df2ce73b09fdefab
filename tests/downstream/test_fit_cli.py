"""One downstream run through ``ultrassl fit -c configs/downstream/<task>.yaml``."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from ultrassl.downstream.base import load_task_model, load_task_pipeline
from ultrassl.engine.cli import UltrasslCLI


@pytest.mark.parametrize("protocol", ["linear", "finetune"])
def test_plane_detection_config_fits_from_a_checkpoint_and_keeps_the_result(checkpoint_factory,
                                                                           fetal_manifest_two_held_out, tmp_path,
                                                                           protocol):
    checkpoint = checkpoint_factory("order_geometry", "tiny3d")
    cli = UltrasslCLI(args=[
        "fit", "-c", "configs/downstream/plane_detection.yaml",
        f"--model.init_args.checkpoint={checkpoint}", f"--model.init_args.protocol={protocol}",
        f"--data.init_args.manifest={fetal_manifest_two_held_out}", "--data.init_args.batch_size=4",
        "--data.init_args.clips_per_video=2", "--data.init_args.val_clips_per_video=2",
        "--data.init_args.pipeline.init_args.size=[32, 40]", "--data.init_args.pipeline.init_args.clip_frames=2",
        "--trainer.max_steps=2", f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false",
    ])
    assert cli.trainer.global_step == (0 if protocol == "linear" else 2)
    saved = torch.load(cli.summary["last_checkpoint"], map_location="cpu", weights_only=True)
    head = {k: v for k, v in saved["state_dict"].items() if k.startswith("head.")}
    assert torch.equal(head["head.1.weight"], cli.model.head[1].weight.detach())
    # the checkpoint stands on its own: the model and the pipeline it was trained with
    pipeline = load_task_pipeline(cli.summary["last_checkpoint"])
    assert pipeline.size == (32, 40) and pipeline.clip_frames == 2
    assert load_task_model(cli.summary["last_checkpoint"]).hparams.protocol == protocol
    metrics = pd.read_csv(f"{cli.summary['logs']}/metrics.csv")
    if protocol == "linear":  # the solved probe is validated once, as an epoch would have been
        assert metrics["val/macro_f1"].notna().sum() == 1
        assert metrics["train/probe_objective"].notna().sum() == len(cli.model.probe_fit.losses)


def test_an_encoder_spec_and_the_shorthand_build_the_same_model(checkpoint_factory, fetal_manifest_two_held_out):
    from ultrassl.downstream.arms import load_config
    from ultrassl.engine.cli import build_model_and_data
    from ultrassl.errors import UltrasslError
    from ultrassl.models.encoders import PretrainedEncoder

    checkpoint = str(checkpoint_factory("order_geometry", "tiny3d"))
    config = load_config("configs/downstream/plane_detection.yaml")
    config["data"]["init_args"]["manifest"] = str(fetal_manifest_two_held_out)
    config["model"]["init_args"]["checkpoint"] = checkpoint
    shorthand, data, resolved = build_model_and_data(config)
    config["model"]["init_args"].pop("checkpoint")
    config["model"]["init_args"]["encoder"] = {"class_path": "ultrassl.models.encoders.PretrainedEncoder",
                                               "init_args": {"checkpoint": checkpoint}}
    spec, _, _ = build_model_and_data(config)
    assert shorthand.hparams.encoder == spec.hparams.encoder == PretrainedEncoder(checkpoint).config()
    assert all(torch.equal(v, spec.backbone.state_dict()[k]) for k, v in shorthand.backbone.state_dict().items())
    # the model holds the data module's pipeline, said once in the config, as a plain hyperparameter
    assert spec.hparams.pipeline == resolved["data"]["init_args"]["pipeline"]
    assert spec.pipeline.size == data.pipeline.size and spec.pipeline is not data.pipeline
    config["model"]["init_args"]["checkpoint"] = checkpoint
    with pytest.raises(UltrasslError, match="not both"):
        build_model_and_data(config)
