"""A run killed with SIGKILL in the middle of an epoch and resumed from its ``last.ckpt`` ends
with exactly the weights (buffers included: momentum encoders, key queues, BatchNorm
statistics) of a run that was never interrupted, for every pretraining objective."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
OBJECTIVES = ("order_geometry", "cvrl", "vtdl", "cate", "cep")


class ReportSteps(L.Callback):
    """Writes ``epoch batch`` to the file named by ULTRASSL_TEST_PROGRESS after each training
    step, and sleeps a little, so that the test can kill the run at a known point of epoch 2."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        Path(os.environ["ULTRASSL_TEST_PROGRESS"]).write_text(f"{trainer.current_epoch} {batch_idx}")
        time.sleep(0.2)


def fit_command(objective: str, manifest: Path, root: Path, *extra: str) -> list[str]:
    """``ultrassl fit`` of the shipped config, cut down to seconds (tiny3d, 32 x 32)."""
    return [
        sys.executable, "-m", "ultrassl.cli", "fit", "-c", str(REPO / "configs" / "pretrain" / f"{objective}.yaml"),
        f"--data.init_args.manifest={manifest}", f"--trainer.default_root_dir={root}",
        "--model.init_args.backbone=tiny3d", "--model.init_args.backbone_kwargs={channels: [4, 8, 8]}",
        "--model.init_args.warmup_epochs=0", "--data.init_args.pipeline.init_args.size=[32, 32]",
        "--data.init_args.batch_size=4", "--data.init_args.num_workers=0", "--data.init_args.clips_per_video=8",
        "--data.init_args.val_clips_per_video=1", "--trainer.max_epochs=2", "--trainer.check_val_every_n_epoch=1",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false", "--trainer.log_every_n_steps=1",
        "--trainer.logger=false", *extra,
    ]


def final_weights(root: Path) -> dict[str, torch.Tensor]:
    last = sorted(root.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)[-1]
    return torch.load(last, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_a_run_killed_mid_epoch_resumes_to_the_same_weights(objective, fetal_manifest, tmp_path):
    environment = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(REPO)}
    whole = tmp_path / "whole"
    # the uninterrupted run, beside the one to be killed (two cores: half the wall time)
    uninterrupted = subprocess.Popen(fit_command(objective, fetal_manifest, whole), env=environment, cwd=REPO,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    killed, progress = tmp_path / "killed", tmp_path / "progress.txt"
    reporting = fit_command(objective, fetal_manifest, killed,
                            "--trainer.callbacks+=tests.engine.test_kill_resume.ReportSteps")
    process = subprocess.Popen(reporting, env={**environment, "ULTRASSL_TEST_PROGRESS": str(progress)}, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if progress.is_file() and progress.read_text().split() in (["1", "2"], ["1", "3"]):
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)  # in the middle of the second epoch (6 steps each)
    process.wait(timeout=30)
    assert progress.read_text().split()[0] == "1"
    checkpoint = next(killed.rglob("last.ckpt"))
    epoch = torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"]
    assert epoch == 0  # the checkpoint of the first epoch; the second was under way

    subprocess.run(fit_command(objective, fetal_manifest, killed, f"--ckpt_path={checkpoint}"), check=True,
                   env=environment, timeout=300, capture_output=True, cwd=REPO)
    _, errors = uninterrupted.communicate(timeout=300)
    assert uninterrupted.returncode == 0, errors[-2000:]
    expected, resumed = final_weights(whole), final_weights(killed)
    assert expected.keys() == resumed.keys()
    for name, value in expected.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)
