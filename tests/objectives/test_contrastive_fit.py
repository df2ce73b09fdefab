"""``ultrassl fit -c configs/pretrain/{cvrl,vtdl,cate}.yaml`` runs and its loss falls.

Each shipped ultrasound config is run through the command (in-process) on a few simulated
sweeps, shrunk (frames, frame size, batch, steps) so that the three runs take about half a
minute on 2 cores. The augmentation is weakened on the command line so that a few dozen
steps of a tiny encoder learn to tell clips apart: the loss must end well below chance (the
loss when every candidate is as similar as the positive), not merely below its start. The
natural-video configs are parsed and instantiated on the motion clips and take one step.
Seeds are fixed, so a run repeats exactly.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from ultrassl.cli import main as ultrassl_main
from ultrassl.engine.cli import UltrasslCLI

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "pretrain"
STEPS = 36
BATCH = 8
QUEUE = 8
#: weak augmentation: large crops, no intensity jitter, no blur or solarisation
WEAK = {
    "cvrl": ["crop_scale=[0.8,1.0]", "color_prob=0", "blur_prob=[0,0]", "solarize_prob=[0,0]"],
    "vtdl": ["crop_scale=[0.8,1.0]", "color_prob=0"],
    "cate": ["crop_scale=[0.8,1.0]", "color_prob=0", "blur_prob=[0,0]", "solarize_prob=[0,0]"],
}


def _train_losses(root: Path) -> list[float]:
    (metrics,) = root.glob("logs/version_*/metrics.csv")
    rows = list(csv.DictReader(metrics.open()))
    return [float(r["train/loss_step"]) for r in rows if r.get("train/loss_step")]


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "extra", "skip", "chance"), [
    ("cvrl", [], 0, math.log(2 * BATCH - 1)),
    # The queue starts with MoCo's random keys (easy negatives); one batch replaces them.
    ("vtdl", [f"--model.init_args.queue_size={QUEUE}"], 1, math.log(QUEUE + 2)),
    ("cate", [], 0, math.log(2 * BATCH - 1)),
])
def test_fit_with_the_shipped_config_lowers_the_loss(objective, extra, skip, chance, sweeps, tmp_path, one_thread):
    pipeline = "--data.init_args.pipeline.init_args"
    status = ultrassl_main([
        "fit", "-c", str(CONFIGS / f"{objective}.yaml"),
        f"--data.init_args.manifest={sweeps}", f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.max_steps={STEPS}", "--trainer.max_epochs=-1", "--trainer.log_every_n_steps=1",
        "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        f"--data.init_args.batch_size={BATCH}", "--data.init_args.clips_per_video=2",
        f"{pipeline}.size=[32,40]", f"{pipeline}.num_frames=4",
        *[f"{pipeline}.{option}" for option in WEAK[objective]],
        *extra,
    ])
    assert status == 0
    losses = _train_losses(tmp_path)[skip:]
    assert len(losses) >= STEPS - skip - 1
    first, last = sum(losses[:4]) / 4, sum(losses[-8:]) / 8
    trace = " ".join(f"{v:.2f}" for v in losses)
    assert last < first - 0.3, (objective, trace)
    assert last < 0.6 * chance, (objective, chance, trace)


@pytest.mark.parametrize("objective", ["cvrl", "vtdl", "cate", "cep", "av_transformer"])
def test_natural_video_configs_build_model_and_data(objective, motion, tmp_path, one_thread):
    cli = UltrasslCLI(args=[
        "-c", str(CONFIGS / f"{objective}_natural.yaml"),
        f"--data.init_args.manifest={motion}", f"--trainer.default_root_dir={tmp_path}",
    ], run=False)
    cli.datamodule.setup("fit")
    batch = next(iter(cli.datamodule.train_dataloader()))
    outputs = cli.model.objective_step(batch, "train")
    assert outputs["loss"].ndim == 0 and outputs["loss"].isfinite()
    assert cli.model.hparams.in_channels == 3 and cli.datamodule.pipeline.modality == "natural"
    assert len(cli.datamodule.val_set) > 0  # the official test list validates
