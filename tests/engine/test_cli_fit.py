"""`ultrassl fit` end to end on a few simulated sweeps: loss, resume, config round trip,
checkpoint provenance, seeding, bad input, and a 2-process DDP fit on CPU (gloo).

Every run uses the shipped config ``configs/pretrain/order_geometry.yaml`` with small-run
overrides (:func:`small_run`), as a user would.
"""

from __future__ import annotations

import csv
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from ultrassl.cli import main as ultrassl_main
from ultrassl.data.manifest import manifest_hash
from ultrassl.engine.cli import UltrasslCLI
from ultrassl.engine.provenance import RECORDED_PACKAGES

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "pretrain" / "order_geometry.yaml"


def small_run(manifest: Path, root: Path, *extra: str) -> list[str]:
    """Arguments of a seconds-long fit of the shipped config: tiny3d on 32 x 32 frames."""
    return [
        "fit", "-c", str(CONFIG),
        f"--data.init_args.manifest={manifest}",
        f"--trainer.default_root_dir={root}",
        "--model.init_args.backbone=tiny3d",
        "--model.init_args.head_hidden=32",
        "--model.init_args.lr=0.003",
        "--model.init_args.warmup_epochs=0",
        "--data.init_args.pipeline.init_args.size=[32, 32]",
        "--data.init_args.batch_size=4",
        "--data.init_args.num_workers=0",
        "--data.init_args.clips_per_video=8",
        "--data.init_args.val_clips_per_video=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=1",
        *extra,
    ]


class BatchFingerprints(L.Callback):
    """Records (epoch, global step, hash of the batch's clips and labels) for every training batch,
    and the training loss of every step."""

    def __init__(self):
        self.batches: list[tuple[int, int, str]] = []
        self.losses: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        digest = hashlib.sha256()
        for key in ("order_clip", "geometry_clip"):
            digest.update(batch[key].numpy().tobytes())
        digest.update(batch["order_clip_params"]["permutation"]["index"].numpy().tobytes())
        self.batches.append((trainer.current_epoch, trainer.global_step, digest.hexdigest()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


class StopAfterFirstEpoch(L.Callback):
    """An interrupted run: stops at the end of epoch 0 although max_epochs is larger."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


def fit(args: list[str], *callbacks: L.Callback) -> UltrasslCLI:
    return UltrasslCLI(args=args, trainer_defaults={"callbacks": list(callbacks)})


def read_metrics(log_dir: str) -> list[dict[str, str]]:
    with open(Path(log_dir) / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def test_short_fit_loss_falls_and_checkpoint_carries_provenance(fetal_manifest, tmp_path, capsys):
    # Two fixed batches (Lightning's overfit_batches) for 10 epochs: the optimisation must
    # drive the objective down. (Held-out order accuracy is what `make demo` measures.)
    cli = fit(small_run(fetal_manifest, tmp_path / "run", "--trainer.overfit_batches=2", "--trainer.max_epochs=10"))
    summary = cli.summary
    out = capsys.readouterr().out
    assert f"checkpoint: {summary['checkpoint']}  logs: {summary['logs']}  (tensorboard --logdir {summary['logs']})" in out

    steps = [float(r["train/loss_step"]) for r in read_metrics(summary["logs"]) if r.get("train/loss_step")]
    assert len(steps) == 20  # 10 epochs x 2 batches
    first, last = sum(steps[:3]) / 3, sum(steps[-3:]) / 3
    assert last < 0.7 * first, steps
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(summary["logs"]))

    checkpoint = torch.load(summary["last_checkpoint"], weights_only=True, map_location="cpu")
    assert checkpoint["global_step"] == 20
    record = checkpoint["provenance"]
    assert record["seed"] == 0
    assert record["data"]["manifest_sha256"] == manifest_hash(fetal_manifest)
    assert set(record["versions"]) == {"python", *RECORDED_PACKAGES}
    assert record["versions"]["torch"] == torch.__version__
    config = yaml.safe_load(record["config"])
    assert config["model"]["init_args"]["backbone"] == "tiny3d"
    assert config["data"]["init_args"]["manifest"] == str(fetal_manifest)
    # the best checkpoint (by held-out order accuracy) loads the same way
    best = torch.load(summary["checkpoint"], weights_only=True, map_location="cpu")
    assert best["provenance"] == record and "val/order_acc" in str(best["callbacks"])


def test_resumed_run_continues_the_same_run(fetal_manifest, tmp_path):
    full = BatchFingerprints()
    whole = fit(small_run(fetal_manifest, tmp_path / "whole", "--trainer.max_epochs=2"), full)

    first = fit(small_run(fetal_manifest, tmp_path / "cut", "--trainer.max_epochs=2"),
                BatchFingerprints(), StopAfterFirstEpoch())
    steps_per_epoch = first.trainer.global_step
    assert steps_per_epoch == 6  # 3 training sweeps x 8 clips / batch 4
    second_half = BatchFingerprints()
    resumed = fit(small_run(fetal_manifest, tmp_path / "cut", "--trainer.max_epochs=2",
                            f"--ckpt_path={first.summary['last_checkpoint']}"), second_half)

    assert resumed.trainer.global_step == whole.trainer.global_step == 2 * steps_per_epoch
    assert second_half.batches == [b for b in full.batches if b[0] == 1]  # same steps, same batches
    assert len(second_half.batches) == steps_per_epoch
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_seeded_runs_repeat_and_other_seeds_differ(fetal_manifest, tmp_path):
    runs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        record = BatchFingerprints()
        fit(small_run(fetal_manifest, tmp_path / name, "--trainer.max_steps=3", f"--seed_everything={seed}"), record)
        runs.append(record)
    assert runs[0].losses == runs[1].losses and runs[0].batches == runs[1].batches
    assert runs[0].losses != runs[2].losses


def test_print_config_round_trip(fetal_manifest, tmp_path, capsys):
    args = small_run(fetal_manifest, tmp_path / "run", "--trainer.max_epochs=3")
    assert ultrassl_main(args + ["--print_config"]) == 0
    printed = capsys.readouterr().out
    saved = tmp_path / "resolved.yaml"
    saved.write_text(printed)
    assert ultrassl_main(["fit", "-c", str(saved), "--print_config"]) == 0
    assert capsys.readouterr().out == printed
    config = yaml.safe_load(printed)
    assert config["trainer"]["max_epochs"] == 3 and config["seed_everything"] == 0
    assert config["data"]["init_args"]["pipeline"]["init_args"]["size"] == [32, 32]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        # each names the key, the value and what would be valid, never jsonargparse's union wall
        (["--data.init_args.manifest=/nonexistent/manifest.csv"],
         "data.init_args.manifest='/nonexistent/manifest.csv': manifest: no such manifest file"),
        (["--model.init_args.backbone=resnet9000"],
         "model.init_args.backbone='resnet9000': unknown backbone 'resnet9000'; known: r3d_18,"),
        (["--model.init_args.backbone_kwargs={width: 3}"],
         "model.init_args.backbone_kwargs={'width': 3}: backbone 'tiny3d' takes no option 'width'; its options: channels"),
        (["--model.class_path=ultrassl.objectives.order_geometry.Nope"],
         "model.class_path='ultrassl.objectives.order_geometry.Nope': module 'ultrassl.objectives.order_geometry' has "
         "no attribute 'Nope'; this package's: ultrassl.downstream.action.ActionRecognition, "),
        (["--model.class_path=os.system"], "model.class_path='os.system': not a LightningModule; this package's: "),
        (["--data.init_args.pipeline.class_path=ultrassl.pipelines.Nope"],
         "data.init_args.pipeline.class_path='ultrassl.pipelines.Nope': module 'ultrassl.pipelines' has no attribute "
         "'Nope'; this package's: ultrassl.pipelines.action.ActionPipeline, "),
        (["--model.init_args.lr=fast"], "model.init_args.lr='fast': expected a float"),
        (["--model.init_args.mode=zigzag"], "model.init_args.mode='zigzag': expected one of 'parallel', 'sequential'"),
        (["--model.init_args.learning_rate=3"], "model.init_args.learning_rate: ultrassl.objectives.order_geometry."
                                                "OrderGeometry takes no argument 'learning_rate'; it takes: num_frames,"),
        (["--data.init_args.pipeline.init_args.size=[32]"],
         "data.init_args.pipeline.init_args.size=[32]: expected an int or a tuple with 2 elements"),
        (["--model.init_args.in_channels=3"], "in_channels"),
        (["--trainer.max_epochs=many"], "trainer.max_epochs='many': expected an int"),
        # checkpoints are always unpickled with weights_only=True: there is no switch
        (["--weights_only=false"], "weights_only"),
        (["--ckpt_path=https://example.invalid/last.ckpt"], "checkpoints are read from local files only"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(fetal_manifest, tmp_path, capsys, extra, message):
    code = ultrassl_main(small_run(fetal_manifest, tmp_path / "run") + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert "Union subtypes" not in err[0] and "Given value" not in err[0]


def test_configs_built_in_code_get_the_same_one_line_errors(fetal_manifest):
    """``evaluate`` and the benchmark build their arms from dicts through the same parser."""
    from ultrassl.engine.cli import ConfigError, build_model_and_data

    config = yaml.safe_load(CONFIG.read_text())
    config["data"]["init_args"]["manifest"] = str(fetal_manifest)
    config["model"]["init_args"]["lr"] = "fast"
    with pytest.raises(ConfigError) as caught:
        build_model_and_data(config)
    assert str(caught.value) == "model.init_args.lr='fast': expected a float"
    config["model"]["init_args"].update(lr=0.1, backbone="resnet9000")
    with pytest.raises(ConfigError, match=r"^model.init_args.backbone='resnet9000': unknown backbone"):
        build_model_and_data(config)


def test_ddp_fit_on_two_cpu_processes(fetal_manifest, tmp_path):
    root = tmp_path / "ddp"
    args = small_run(fetal_manifest, root, "--trainer.max_epochs=1",
                     "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "ultrassl.cli", *args], capture_output=True, text=True,
                            timeout=240, env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "distributed_backend=gloo" in output
    for rank in (0, 1):
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in output
    assert output.count("checkpoint: ") == 1  # the summary comes from process 0 only
    last = next(root.glob("logs/version_*/checkpoints/last.ckpt"))
    checkpoint = torch.load(last, weights_only=True, map_location="cpu")
    # 24 training items shared by 2 processes in batches of 4: 3 steps (6 on one process)
    assert checkpoint["global_step"] == 3
    assert yaml.safe_load(checkpoint["provenance"]["config"])["trainer"]["strategy"] == "ddp"


def test_channels_frames_and_mode_are_said_once_in_the_pipeline(fetal_manifest, tmp_path, capsys):
    from ultrassl.engine.cli import ConfigError, build_model_and_data

    config = yaml.safe_load(CONFIG.read_text())
    assert not {"in_channels", "num_frames", "mode"} & set(config["model"]["init_args"])  # said once
    config["data"]["init_args"].update(manifest=str(fetal_manifest), num_workers=0)
    config["data"]["init_args"]["pipeline"]["init_args"].update(num_frames=5, mode="sequential", size=[32, 32])
    model, datamodule, resolved = build_model_and_data(config)
    assert (model.hparams.num_frames, model.hparams.mode, model.hparams.in_channels) == (5, "sequential", 1)
    assert model.num_order_classes == 60 and datamodule.pipeline.num_frames == 5
    assert resolved["model"]["init_args"]["num_frames"] == 5
    # an older config stating them in the model too: runs when both agree ...
    config["model"]["init_args"].update(in_channels=1, num_frames=5, mode="sequential")
    assert build_model_and_data(config)[0].hparams.num_frames == 5
    # ... and names both keys when they do not
    config["model"]["init_args"]["num_frames"] = 4
    with pytest.raises(ConfigError) as error:
        build_model_and_data(config)
    assert str(error.value).startswith("model.init_args.num_frames=4 but data.init_args.pipeline.init_args.num_frames=5")
    code = ultrassl_main(small_run(fetal_manifest, tmp_path / "run", "--model.init_args.mode=sequential"))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "model.init_args.mode='sequential' but data.init_args.pipeline.init_args.mode='parallel'" in err[0]
