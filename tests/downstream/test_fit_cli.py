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
