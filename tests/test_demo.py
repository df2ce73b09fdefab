"""`make demo`'s program, shortened: data, index, pretraining through the shipped config, summary."""

from __future__ import annotations

import json

import torch

from ultrassl.demo import main


def test_demo_makes_data_pretrains_and_reports(tmp_path, capsys):
    out = tmp_path / "demo"
    short = ["--trainer.max_epochs=2", "--data.init_args.clips_per_video=2", "--data.init_args.val_clips_per_video=2",
             "--data.init_args.num_workers=0", "--data.init_args.pipeline.init_args.size=[32, 40]",
             "--trainer.enable_progress_bar=false"]
    assert main(["--out", str(out), "--sweeps", "4", "--frames", "24", "--downstream-steps", "2", "--", *short]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "pretrain" / "pretrain_summary.json").read_text())
    assert summary["steps"] > 0 and summary["order_classes"] == 12 and summary["chance"] == 1 / 12
    assert 0.0 <= summary["val_order_acc"] <= 1.0 and summary["val_clips"] == 2 * summary["val_sweeps"] > 0
    assert "chance 1/12 = 0.083" in printed
    assert printed.strip().splitlines()[-1].startswith(f"checkpoint: {summary['checkpoint']}  logs: {summary['logs']}")
    checkpoint = torch.load(summary["last_checkpoint"], weights_only=True, map_location="cpu")
    assert checkpoint["global_step"] == summary["steps"]
    assert checkpoint["provenance"]["data"]["manifest"] == str((out / "data/fetal_sweeps/manifest.csv").resolve())
    results = json.loads((out / "results.json").read_text())
    for task in ("plane_detection", "saliency"):
        rows = results["tasks"][task]["rows"]
        assert rows and all({"metric", "pretrained", "random_init"} <= set(row) for row in rows)
        assert results["tasks"][task]["budget"]["max_steps"] == 2
