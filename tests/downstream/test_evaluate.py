"""``ultrassl evaluate`` / :func:`evaluate_checkpoint`: both columns, the budget, the files."""

from __future__ import annotations

import json

import cv2
import pytest
import torch
import yaml

from ultrassl.cli import main as ultrassl_main
from ultrassl.downstream.arms import arm_config, build_arm, load_config, train_arm
from ultrassl.downstream.evaluate import comparison_encoders, evaluate_checkpoint, main, run_downstream_demo
from ultrassl.downstream.report import format_markdown
from ultrassl.errors import CheckpointError
from ultrassl.metrics.saliency import METRIC_NAMES
from ultrassl.models.encoders import PretrainedEncoder, RandomEncoder


def tiny_config(task: str, size=(32, 40)) -> dict:
    """The shipped config, shrunk for a test."""
    config = load_config(f"configs/downstream/{task}.yaml")
    data = config["data"]["init_args"]
    data.update(clips_per_video=2, val_clips_per_video=2)
    data["pipeline"]["init_args"]["size"] = list(size)
    if task == "action_recognition":
        data["pipeline"]["init_args"].update(num_frames=4, num_test_clips=2)
    config["trainer"]["log_every_n_steps"] = 1
    return config


def _images_ok(root, names):
    for name in names:
        image = cv2.imread(str(root / name))
        assert image is not None and image.size > 0, name


def test_plane_detection_and_saliency_pretrained_beside_random_init(checkpoint_factory, fetal_manifest_two_held_out,
                                                                    tmp_path):
    checkpoint = checkpoint_factory("order_geometry", "tiny3d")
    configs = {task: tiny_config(task) for task in ("plane_detection", "saliency")}
    results = evaluate_checkpoint(checkpoint, tmp_path, configs=configs, manifest=fetal_manifest_two_held_out,
                                  max_steps=2, batch_size=4, log=None)
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["tasks"].keys() == {"plane_detection", "saliency"}
    planes = on_disk["tasks"]["plane_detection"]
    assert {(r["protocol"], r["metric"]) for r in planes["rows"]} == {
        (p, m) for p in ("linear", "finetune") for m in ("macro_f1", "macro_precision", "macro_recall", "accuracy")}
    saliency = on_disk["tasks"]["saliency"]
    assert [r["metric"] for r in saliency["rows"]] == list(METRIC_NAMES)
    for entry in (planes, saliency):
        assert entry["budget"]["max_steps"] == 2 and entry["budget"]["batch_size"] == 4
        assert entry["budget"]["train_videos"] == 4 and entry["budget"]["held_out_videos"] == 2
        for row in entry["rows"]:
            assert isinstance(row["pretrained"], float) and isinstance(row["random_init"], float), row
        for name, run in entry["training"].items():
            if name.startswith("linear/"):  # solved by L-BFGS on the frozen features, no SGD step
                assert run["steps"] == 0 and run["probe"]["samples"] > 0 and run["probe"]["iterations"] > 0
            else:
                assert run["steps"] == 2 and "probe" not in run
                if entry is planes:  # the shipped config starts the fine-tune's head from the probe
                    assert run["head_from_probe"]["samples"] > 0
    assert planes["budget"]["linear_probe"].keys() == {"pretrained", "random_init"}
    assert "solved with L-BFGS" in (tmp_path / "results.md").read_text()
    assert [r["higher_is_better"] for r in saliency["rows"]] == [m != "KLD" for m in METRIC_NAMES]
    # the reference every saliency model must beat: the mean training gaze map, image-blind
    assert saliency["reference"] == "training gaze prior" and planes["reference"] == "raw-pixel probe"
    # what the frames' pixels alone tell about the plane, scored on the same held-out frames
    pixels = {r["metric"]: r["reference"] for r in planes["rows"]}
    assert 0.0 <= pixels["macro_f1"] <= 1.0 and 0.0 < pixels["accuracy"] <= 1.0
    prior = {r["metric"]: r["reference"] for r in saliency["rows"]}
    assert 0.5 < prior["AUC-Judd"] <= 1.0 and prior["KLD"] >= 0.0
    assert "training gaze prior (no model)" in (tmp_path / "results.md").read_text()
    # the per-frame report and the best frames of every held-out loop
    report = planes["details"]["finetune"]["pretrained"]["report"]
    assert sum(map(sum, report["confusion"])) == 2 * 16  # every frame of both held-out loops
    assert len(planes["details"]["finetune"]["pretrained"]["loops"]) == 2
    markdown = (tmp_path / "results.md").read_text()
    assert "| protocol | metric | pretrained | random init |" in markdown and "## saliency" in markdown
    assert markdown == format_markdown(results)
    _images_ok(tmp_path / "plane_detection", ["training_loss.png", "confusion_linear.png", "confusion_finetune.png",
                                              "cam_overlays_finetune.png"])
    _images_ok(tmp_path / "saliency", ["training_loss.png", "saliency_overlays_finetune.png"])
    assert (tmp_path / "plane_detection" / "linear_random_init" / "metrics.csv").is_file()


def test_the_two_arms_differ_only_in_the_encoders_starting_weights(checkpoint_factory, fetal_manifest):
    checkpoint = checkpoint_factory("order_geometry", "sononet16")
    encoders, info = comparison_encoders(checkpoint, seed=0)
    config = load_config("configs/downstream/plane_detection.yaml")
    config["data"]["init_args"]["manifest"] = str(fetal_manifest)
    pretrained = arm_config(config, encoders["pretrained"], "linear", info=info, max_steps=7, batch_size=3)
    random = arm_config(config, encoders["random_init"], "linear", info=info, max_steps=7, batch_size=3)
    assert pretrained["model"]["init_args"]["encoder"] == PretrainedEncoder(str(checkpoint)).config()
    assert random["model"]["init_args"]["encoder"] == RandomEncoder("sononet16", {}, 1, seed=0).config()
    assert {**pretrained, "model": None} == {**random, "model": None}
    assert ({k: v for k, v in pretrained["model"]["init_args"].items() if k != "encoder"}
            == {k: v for k, v in random["model"]["init_args"].items() if k != "encoder"})
    assert pretrained["trainer"]["max_steps"] == 7 and pretrained["data"]["init_args"]["batch_size"] == 3
    # a frame backbone classifies single frames
    assert pretrained["data"]["init_args"]["pipeline"]["init_args"]["clip_frames"] == 1
    # building the encoder does not move the generator the head draws its weights from
    heads = [build_arm(cfg).model.head for cfg in (pretrained, random)]
    assert torch.equal(heads[0][-1].weight, heads[1][-1].weight)


def test_a_random_arm_opens_no_checkpoint(checkpoint_factory, fetal_manifest_two_held_out, tmp_path, monkeypatch):
    import shutil

    checkpoint = tmp_path / "pretraining.ckpt"
    shutil.copy(checkpoint_factory("order_geometry", "tiny3d"), checkpoint)
    encoders, info = comparison_encoders(checkpoint, seed=0)  # the architecture, read once
    checkpoint.unlink()
    config = tiny_config("plane_detection")
    config["model"]["init_args"]["checkpoint"] = str(checkpoint)  # a config naming the missing file
    random = arm_config(config, encoders["random_init"], "finetune", info=info, manifest=fetal_manifest_two_held_out,
                        max_steps=1, batch_size=4)

    def no_loading(*args, **kwargs):
        raise AssertionError("a checkpoint was opened")

    monkeypatch.setattr(torch, "load", no_loading)
    arm = train_arm(random, tmp_path / "random", save_model=False)
    assert arm.run["steps"] == 1 and arm.model.pretrained_info.checkpoint is None
    assert arm.model.hparams.encoder == RandomEncoder.like(info, seed=0).config()
    monkeypatch.undo()
    pretrained = arm_config(config, encoders["pretrained"], "finetune", info=info, manifest=fetal_manifest_two_held_out)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        build_arm(pretrained)


def test_action_recognition_with_knn_retrieval(checkpoint_factory, motion_manifest, tmp_path):
    checkpoint = checkpoint_factory("cvrl", "tiny3d")
    config = tiny_config("action_recognition", size=(24, 24))  # RGB clips, read as gray for this encoder
    results = evaluate_checkpoint(checkpoint, tmp_path, tasks=["action_recognition"],
                                  configs={"action_recognition": config}, manifest=motion_manifest, max_steps=2,
                                  batch_size=4, protocols={"action_recognition": ["linear"]}, log=None)
    entry = results["tasks"]["action_recognition"]
    rows = {(r["protocol"], r["metric"]): r for r in entry["rows"]}
    # 16 training clips, 2 per class: from k = 15 on, every test clip finds its class whatever
    # the features, so recall@20 and recall@50 are left out, not reported as 1
    assert set(rows) == {("linear", m) for m in ("accuracy", "top5_accuracy", "macro_f1")} | {
        ("knn", f"recall@{k}") for k in (1, 5, 10)}
    for k_small, k_large in ((1, 5), (5, 10)):
        for init in ("pretrained", "random_init"):
            assert rows[("knn", f"recall@{k_small}")][init] <= rows[("knn", f"recall@{k_large}")][init]
    assert entry["budget"]["held_out_videos"] == 8
    assert sum(map(sum, entry["details"]["linear"]["pretrained"]["report"]["confusion"])) == 8
    _images_ok(tmp_path / "action_recognition", ["confusion_linear.png"])


def test_demo_entry_point_prints_and_writes_the_table(checkpoint_factory, fetal_manifest_two_held_out, tmp_path,
                                                      capsys, monkeypatch):
    from ultrassl.downstream import evaluate

    small = {task: tiny_config(task) for task in ("plane_detection", "saliency")}
    monkeypatch.setattr(evaluate, "default_config_path", lambda task: small[task])
    results = run_downstream_demo(checkpoint_factory("order_geometry", "tiny3d"), fetal_manifest_two_held_out,
                                  tmp_path, max_steps={"plane_detection": 1, "saliency": 2}, batch_size=4,
                                  protocols={"plane_detection": ["linear"], "saliency": ["linear"]})
    printed = capsys.readouterr().out
    assert "plane_detection" in printed and "macro_f1" in printed and "AUC-Judd" in printed
    assert "random init" in printed and str(tmp_path / "results.json") in printed
    # the plane probe is solved, the saliency decoder (frozen encoder) trains by steps
    assert "[plane_detection] linear / pretrained: solving the linear probe" in printed
    assert "[saliency] linear / pretrained: training 2 steps" in printed
    on_disk = json.loads((tmp_path / "results.json").read_text())
    for task in ("plane_detection", "saliency"):
        for row in on_disk["tasks"][task]["rows"]:
            assert set(row) >= {"metric", "pretrained", "random_init"} and row["protocol"] == "linear"
        assert on_disk["tasks"][task]["budget"]["max_steps"] == {"plane_detection": 1, "saliency": 2}[task]
    for task in ("plane_detection", "saliency"):
        assert on_disk["tasks"][task]["rows"] == results["tasks"][task]["rows"]


def test_command_line_runs_a_config_and_reports_errors(checkpoint_factory, fetal_manifest_two_held_out, tmp_path,
                                                       capsys):
    config = tmp_path / "planes.yaml"
    config.write_text(yaml.safe_dump(tiny_config("plane_detection")))
    checkpoint = checkpoint_factory("order_geometry", "tiny3d")
    out = tmp_path / "out"
    status = ultrassl_main(["evaluate", "--checkpoint", str(checkpoint), "-c", str(config),
                            "--manifest", str(fetal_manifest_two_held_out),
                            "--out", str(out), "--max-steps", "1", "--batch-size", "4", "--protocols", "linear"])
    assert status == 0
    assert json.loads((out / "results.json").read_text())["tasks"].keys() == {"plane_detection"}
    assert "macro_f1" in capsys.readouterr().out
    status = main(["--checkpoint", str(tmp_path / "missing.ckpt"), "-c", str(config)])
    assert status == 2 and "missing.ckpt: no such checkpoint file" in capsys.readouterr().err


def test_every_trained_arm_is_saved_and_loads_without_the_pretraining_file(checkpoint_factory,
                                                                          fetal_manifest_two_held_out, tmp_path):
    import shutil

    from ultrassl.downstream.base import load_task_model
    from ultrassl.errors import CheckpointError

    pretraining = tmp_path / "pretraining.ckpt"
    shutil.copy(checkpoint_factory("order_geometry", "tiny3d"), pretraining)
    results = evaluate_checkpoint(pretraining, tmp_path / "out", tasks=["plane_detection"],
                                  configs={"plane_detection": tiny_config("plane_detection")},
                                  manifest=fetal_manifest_two_held_out, max_steps=1, batch_size=4, log=None)
    training = results["tasks"]["plane_detection"]["training"]
    assert set(training) == {f"{p}/{i}" for p in ("linear", "finetune") for i in ("pretrained", "random_init")}
    pretraining.unlink()  # a trained model stands on its own
    batch = torch.randn(2, 1, 4, 32, 40)
    for name, run in training.items():
        path = tmp_path / "out" / run["model"]
        model = load_task_model(path)
        assert not model.training and model.class_names[0] == "Background"
        saved = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
        assert model(batch).shape == (2, len(model.class_names))
    with pytest.raises(CheckpointError, match="not a downstream task checkpoint"):
        load_task_model(checkpoint_factory("cvrl", "tiny3d"))
    results = evaluate_checkpoint(checkpoint_factory("order_geometry", "tiny3d"), tmp_path / "unsaved",
                                  tasks=["saliency"], configs={"saliency": tiny_config("saliency")},
                                  manifest=fetal_manifest_two_held_out, max_steps=1, batch_size=4, log=None,
                                  save_models=False)
    assert not list((tmp_path / "unsaved").rglob("*.ckpt"))
    assert all("model" not in run for run in results["tasks"]["saliency"]["training"].values())


def test_training_gaze_prior_is_the_mean_density_of_the_training_gaze(fetal_manifest_two_held_out):
    from ultrassl.data.datasets import ManifestDataset
    from ultrassl.downstream.saliency import training_gaze_prior

    encoder = RandomEncoder("tiny3d", {"channels": [2, 2, 2]}, 1, seed=0)
    config = arm_config(tiny_config("saliency"), encoder, "finetune", manifest=fetal_manifest_two_held_out)
    datamodule = build_arm(config).datamodule
    prior = training_gaze_prior(datamodule, sigma_px=1.5)
    assert prior.shape == (32, 40) and float(prior.min()) >= 0 and abs(float(prior.sum()) - 1) < 1e-5
    # its centre of mass is the mean fixation of the training frames (each frame weighs one)
    train, _ = datamodule.split_tables()
    dataset = ManifestDataset(train, datamodule.pipeline.cine_transform(), label_column=None)
    centres = []
    for index in range(len(dataset)):
        item = dataset[index]
        for points, valid in zip(item["clip_fixations"], item["clip_fixations_valid"]):
            if valid.any():
                centres.append(points[valid].mean(dim=0))
    expected = torch.stack(centres).mean(dim=0)
    rows, columns = torch.meshgrid(torch.arange(32.0), torch.arange(40.0), indexing="ij")
    centre = torch.stack([(prior * columns).sum(), (prior * rows).sum()])
    assert torch.allclose(centre, expected, atol=1.0), (centre, expected)
