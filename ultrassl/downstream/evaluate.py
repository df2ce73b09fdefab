"""Transfer a pretraining checkpoint to the downstream tasks, beside a random-init baseline.

For every task and protocol two runs train with the same budget (same config, steps, batch
size, data order and seed; only the encoder's starting weights differ): ``pretrained`` starts
from the checkpoint's encoder, ``random_init`` from the same architecture freshly
initialised. The linear probes of the classification tasks are solved to convergence on the
frozen features (L-BFGS, :mod:`ultrassl.downstream.linear_probe`) rather than stepped, so that
the comparison measures the features and not how fast each arm's probe converges; with the
shipped plane-detection config the fine-tune's head starts from that probe (LP-FT). Then each
trained model is scored on the held-out videos:

* ``plane_detection``: every frame of every held-out cine loop (:mod:`ultrassl.downstream.cine`);
  accuracy and macro precision, recall and F1 (per-class values and the confusion matrix in
  the details), and where each plane is best seen in each loop;
* ``saliency``: every frame of every held-out loop; KLD, CC, NSS, SIM, AUC-Judd, AUC-Borji
  and shuffled AUC with the conventions of :mod:`ultrassl.metrics.saliency`;
* ``action_recognition``: the test split with multi-clip averaging (top-1, top-5, macro F1),
  and kNN retrieval recall@1/5/10/20/50 of the encoders as they start (no training: the
  ``knn`` rows), test clips against the training clips.

Task configs are LightningCLI-style YAML (``configs/downstream/<task>.yaml``: ``trainer``,
``model``, ``data`` with ``class_path``/``init_args``), so one arm can also be trained with
``ultrassl fit -c configs/downstream/<task>.yaml --model.init_args.checkpoint=...``. The
budget is ``trainer.max_steps``. What the checkpoint dictates is set here: the pipeline's
``in_channels`` (the encoder's), ``clip_frames`` (1 for frame backbones) and the class list
(from the pipeline or the manifest).

Writes into the output folder: ``results.json``, ``results.md``, per task and arm the CSV
training log (``<task>/<protocol>_<init>/metrics.csv``) and the trained model
(``<task>/<protocol>_<init>/model.ckpt``, weights and hyperparameters: load it with
:func:`~ultrassl.downstream.base.load_task_model`), and PNG figures: training curves,
confusion matrices, saliency overlays (prediction vs fixations), class-activation maps.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pandas as pd
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger

from ultrassl.data.datasets import ManifestDataset
from ultrassl.downstream import plots
from ultrassl.downstream.base import DownstreamModule, build_encoder
from ultrassl.downstream.checkpoint import PretrainedInfo, import_class, load_pretrained_backbone
from ultrassl.downstream.cine import best_frames, predict_cine_loop, predict_saliency_loop
from ultrassl.metrics.classification import ClassificationMetrics, RETRIEVAL_KS, retrieval_recall_at_k
from ultrassl.metrics.saliency import LOWER_IS_BETTER, METRIC_NAMES, SaliencyEvaluator, fixation_density_map

TASKS = ("plane_detection", "saliency", "action_recognition")
#: the runs of a comparison, in column order
INITS = ("pretrained", "random_init")
#: protocols run when none are asked for
DEFAULT_PROTOCOLS = {"plane_detection": ("linear", "finetune"), "saliency": ("finetune",),
                     "action_recognition": ("linear", "finetune")}
#: metrics shown in the table per task (the details hold everything)
TABLE_METRICS = {
    "plane_detection": ("macro_f1", "macro_precision", "macro_recall", "accuracy"),
    "saliency": METRIC_NAMES,
    "action_recognition": ("accuracy", "top5_accuracy", "macro_f1"),
}
#: the folder of the task configs shipped with the source tree
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "downstream"


# ---------------------------------------------------------------------------- configs
def default_config_path(task: str) -> Path:
    """``configs/downstream/<task>.yaml`` of the source tree."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    path = CONFIG_DIR / f"{task}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config for task {task!r}; pass one with --config")
    return path


def load_config(config: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """A task config as a dict (a copy when given a dict)."""
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config))
    with open(config) as handle:
        loaded = yaml.safe_load(handle)
    if not isinstance(loaded, dict) or "model" not in loaded or "data" not in loaded:
        raise ValueError(f"{config}: a task config needs 'model' and 'data' sections")
    return loaded


def task_of(config: Mapping[str, Any]) -> str:
    """The task a config trains, from its model's class."""
    class_path = config["model"]["class_path"]
    for task, name in (("plane_detection", "PlaneDetection"), ("saliency", "SaliencyPrediction"),
                       ("action_recognition", "ActionRecognition")):
        if class_path.endswith("." + name):
            return task
    raise ValueError(f"model {class_path!r} is not a downstream task of this package")


def instantiate(spec: Any) -> Any:
    """Build ``{"class_path": ..., "init_args": {...}}`` specs recursively (as LightningCLI)."""
    if isinstance(spec, Mapping) and "class_path" in spec:
        cls = import_class(spec["class_path"])
        return cls(**{k: instantiate(v) for k, v in (spec.get("init_args") or {}).items()})
    if isinstance(spec, Mapping):
        return {k: instantiate(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return [instantiate(v) for v in spec]
    return spec


def _class_list_from_manifest(manifest: str) -> tuple[int, list[str] | None]:
    from ultrassl.data.manifest import read_manifest

    table = read_manifest(manifest, status="ok")
    if "label" not in table.columns or table["label"].isna().all():
        raise ValueError(f"{manifest}: action recognition needs an integer 'label' column")
    labels = table["label"].dropna().astype(int)
    num_classes = int(labels.max()) + 1
    names = None
    if "class_name" in table.columns:
        by_label = dict(zip(labels, table.loc[labels.index, "class_name"].astype(str)))
        names = [by_label.get(i, str(i)) for i in range(num_classes)]
    return num_classes, names


def arm_config(
    config: Mapping[str, Any], info: PretrainedInfo, checkpoint: str, init: str, protocol: str, *,
    manifest: str | None = None, max_steps: int | None = None, batch_size: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The config of one run: the task config with the checkpoint, initialisation, protocol,
    budget and what the encoder dictates filled in."""
    cfg = copy.deepcopy(dict(config))
    task = task_of(cfg)
    model = cfg["model"].setdefault("init_args", {})
    model.update(checkpoint=str(checkpoint), init="pretrained" if init == "pretrained" else "random",
                 protocol=protocol, init_seed=seed)
    for key in ("backbone", "backbone_kwargs", "in_channels"):
        model.pop(key, None)  # the checkpoint decides
    data = cfg["data"].setdefault("init_args", {})
    if manifest is not None:
        data["manifest"] = str(manifest)
    if batch_size is not None:
        data["batch_size"] = int(batch_size)
    data.setdefault("seed", seed)
    pipeline = data["pipeline"].setdefault("init_args", {})
    pipeline["in_channels"] = info.spec.in_channels
    if task in ("plane_detection", "saliency"):
        if info.frame_wise:
            pipeline["clip_frames"] = 1
        else:
            pipeline.setdefault("clip_frames", 4)
    if task == "plane_detection":
        from ultrassl.pipelines.plane_detection import read_class_names

        names = read_class_names(pipeline.get("classes"))
        if model.get("class_names") is None:
            model["class_names"] = names
        elif list(model["class_names"]) != names:
            raise ValueError("model.class_names and the pipeline's classes differ")
    if task == "action_recognition":
        data.setdefault("val_split", "test")
        if model.get("num_classes") is None:
            model["num_classes"], names = _class_list_from_manifest(data["manifest"])
            model.setdefault("class_names", names)
    trainer = cfg.setdefault("trainer", {})
    if max_steps is not None:
        trainer["max_steps"] = int(max_steps)
        trainer.pop("max_epochs", None)
    return cfg


def task_solves_probe(cfg: Mapping[str, Any]) -> bool:
    """Whether the config's model solves its linear probe by L-BFGS rather than by SGD steps
    (:meth:`~ultrassl.downstream.base.DownstreamModule.probe_is_solved`)."""
    init_args = cfg["model"].get("init_args") or {}
    return import_class(cfg["model"]["class_path"]).probe_is_solved(
        init_args.get("protocol", "finetune"), init_args.get("linear_solver", "lbfgs"))


# ---------------------------------------------------------------------------- scoring
def _held_out_table(datamodule) -> pd.DataFrame:
    _, val = datamodule.split_tables()
    if val is None:
        raise ValueError("the data has no held-out videos to score (no val/test split)")
    return val


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _spread(n: int, k: int) -> torch.Tensor:
    """``k`` positions spread evenly over ``range(n)``, centred (one pick is the middle)."""
    return ((torch.arange(k) + 0.5) * n / k).long().clamp(max=n - 1).unique()


def score_plane_detection(model, datamodule, keep_examples: int = 3) -> dict[str, Any]:
    """Every frame of every held-out loop: the classification report, best frames per loop,
    and a few example frames with their class-activation maps."""
    pipeline = datamodule.pipeline
    dataset = ManifestDataset(_held_out_table(datamodule), pipeline.cine_transform(), label_column=None)
    metrics = ClassificationMetrics(model.num_classes, model.class_names)
    loops, examples = {}, []
    per_loop = max(1, keep_examples // len(dataset))
    for index in range(len(dataset)):
        item = dataset[index]
        out = predict_cine_loop(model, item["clip"], clip_frames=pipeline.clip_frames, with_cams=True)
        labels = item["clip_frame_labels"]
        metrics.update(out["probabilities"], labels)
        loops[str(item["path"])] = {
            "best_frames": best_frames(out["probabilities"], model.class_names),
            "predicted": [model.class_names[i] for i in out["predicted"].tolist()],
            "true": [model.class_names[i] for i in labels.tolist()],
        }
        planes = torch.nonzero(labels > 0).flatten()  # frames showing a plane (Background is 0)
        chosen = planes[_spread(planes.numel(), per_loop)] if planes.numel() else []
        for t in [int(t) for t in chosen][: keep_examples - len(examples)]:
            examples.append({"frame": item["clip"][0, t].numpy(), "cam": out["cams"][t].numpy(),
                             "true": model.class_names[int(labels[t])],
                             "predicted": model.class_names[int(out["predicted"][t])], "path": str(item["path"]), "t": t})
    report = metrics.report()
    return {"metrics": {k: report[k] for k in TABLE_METRICS["plane_detection"]}, "report": report,
            "loops": loops, "examples": examples}


def score_saliency(model, datamodule, keep_examples: int = 3) -> dict[str, Any]:
    """Every frame of every held-out loop: the seven saliency metrics, per frame then per
    video, and a few example frames with prediction and fixations."""
    pipeline = datamodule.pipeline
    return _score_saliency_maps(datamodule, lambda loop: predict_saliency_loop(model, loop, pipeline.clip_frames),
                                model.sigma_px(pipeline.size[1]), model.n_splits, keep_examples)


def training_gaze_prior(datamodule, sigma_px: float) -> torch.Tensor:
    """The mean fixation density of the training frames that have fixations, ``(H, W)``
    summing to 1, at the pipeline's size: where sonographers look on average, whatever the
    image (the "centre bias" baseline of saliency benchmarks, learned from the data)."""
    train, _ = datamodule.split_tables()
    dataset = ManifestDataset(train, datamodule.pipeline.cine_transform(), label_column=None)
    total, frames = None, 0
    for index in range(len(dataset)):
        item = dataset[index]
        density = fixation_density_map(item["clip_fixations"], tuple(item["clip"].shape[-2:]), sigma_px,
                                       item["clip_fixations_valid"])
        looked_at = density.flatten(1).sum(dim=1) > 0
        summed = density[looked_at].sum(dim=0, dtype=torch.float64)
        total = summed if total is None else total + summed
        frames += int(looked_at.sum())
    if not frames:
        raise ValueError("no training frame has fixations: the gaze prior is undefined")
    return (total / total.sum()).to(torch.float32)


def score_gaze_prior(model, datamodule) -> dict[str, Any]:
    """The held-out frames scored with :func:`training_gaze_prior` as every frame's map: the
    reference a saliency model must beat to use the image at all."""
    sigma = model.sigma_px(datamodule.pipeline.size[1])
    prior = training_gaze_prior(datamodule, sigma)
    return _score_saliency_maps(datamodule, lambda loop: prior.expand(loop.shape[1], *prior.shape), sigma,
                                model.n_splits, keep_examples=0)


def _score_saliency_maps(datamodule, predict: Callable[[torch.Tensor], torch.Tensor], sigma_px: float, n_splits: int,
                         keep_examples: int) -> dict[str, Any]:
    pipeline = datamodule.pipeline
    dataset = ManifestDataset(_held_out_table(datamodule), pipeline.cine_transform(), label_column=None)
    evaluator = SaliencyEvaluator(sigma_px=sigma_px, n_splits=n_splits, seed=0)
    examples = []
    per_loop = max(1, keep_examples // len(dataset))
    for index in range(len(dataset)):
        item = dataset[index]
        maps = predict(item["clip"])
        points, valid = item["clip_fixations"], item["clip_fixations_valid"]
        evaluator.update(maps, points, valid, video_ids=[str(item["path"])] * len(maps))
        looked_at = torch.nonzero(valid.any(dim=1)).flatten()
        chosen = looked_at[_spread(looked_at.numel(), per_loop)] if looked_at.numel() else []
        for t in [int(t) for t in chosen][: keep_examples - len(examples)]:
            examples.append({"frame": item["clip"][0, t].numpy(), "map": maps[t].numpy(),
                             "fixations": points[t][valid[t]].numpy(), "path": str(item["path"]), "t": t})
    scores = evaluator.compute()
    return {"metrics": scores, "frames": len(evaluator), "examples": examples}


def _loader(dataset, batch_size: int):
    from torch.utils.data import DataLoader, default_collate

    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=default_collate)


@torch.no_grad()
def _features_and_labels(encode: Callable[[torch.Tensor], torch.Tensor], dataset, batch_size: int, device):
    features, labels = [], []
    for batch in _loader(dataset, batch_size):
        features.append(encode(batch["clip"].to(device)).cpu())
        labels.append(batch["label"])
    return torch.cat(features), torch.cat(labels)


def _test_clips(datamodule, table: pd.DataFrame | None = None) -> ManifestDataset:
    """Each video of ``table`` (default: the held-out ones) once, through the pipeline's
    evaluation chain (evenly spaced clips: deterministic)."""
    table = _held_out_table(datamodule) if table is None else table
    return ManifestDataset(table, datamodule.pipeline.val_transform(), label_column=datamodule.label_column)


def score_action(model, datamodule) -> dict[str, Any]:
    """Every held-out (test) video once, multi-clip averaged: accuracy, top-5 accuracy, macro F1."""
    model.eval()
    metrics = ClassificationMetrics(model.num_classes, model.class_names)
    hits = []
    with torch.no_grad():
        for batch in _loader(_test_clips(datamodule), datamodule.val_batch_size):
            probabilities = model.predict_proba(batch["clip"].to(_device_of(model))).cpu()
            target = batch["label"].long()
            metrics.update(probabilities, target)
            k = min(5, model.num_classes)
            hits.append((probabilities.topk(k, dim=1).indices == target[:, None]).any(dim=1))
    report = metrics.report()
    report["top5_accuracy"] = float(torch.cat(hits).float().mean()) if hits else float("nan")
    return {"metrics": {k: report[k] for k in TABLE_METRICS["action_recognition"]}, "report": report, "examples": []}


def knn_retrieval(encoder, datamodule, frozen_batch_size: int) -> dict[str, float]:
    """Recall@k of test clips retrieving training clips of their class (cosine similarity of
    the encoder's pooled features, multi-clip averaged)."""
    encoder.eval()
    train_table, _ = datamodule.split_tables()
    device = next(encoder.parameters()).device

    def encode(clips: torch.Tensor) -> torch.Tensor:
        b, n = clips.shape[:2]
        return encoder.forward_features(clips.flatten(0, 1)).reshape(b, n, -1).mean(dim=1)

    bank, bank_labels = _features_and_labels(encode, _test_clips(datamodule, train_table), frozen_batch_size, device)
    queries, query_labels = _features_and_labels(encode, _test_clips(datamodule), frozen_batch_size, device)
    recall = retrieval_recall_at_k(queries, query_labels, bank, bank_labels, ks=RETRIEVAL_KS)
    return {f"recall@{k}": v for k, v in recall.items()}


SCORERS: dict[str, Callable[..., dict[str, Any]]] = {
    "plane_detection": score_plane_detection, "saliency": score_saliency, "action_recognition": score_action,
}


# ---------------------------------------------------------------------------- running
def _trainer(trainer_config: Mapping[str, Any], folder: Path, progress: bool) -> L.Trainer:
    options = {k: v for k, v in trainer_config.items() if k not in ("logger", "callbacks", "default_root_dir",
                                                                      "enable_checkpointing")}
    options.setdefault("num_sanity_val_steps", 0)
    options.setdefault("log_every_n_steps", 1)
    return L.Trainer(
        **options, default_root_dir=str(folder), logger=CSVLogger(str(folder), name="", version=""),
        enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
    )


@contextlib.contextmanager
def _quiet_lightning(quiet: bool):
    """Hide Lightning's informational lines (accelerator summary, tips, stop reasons) and its
    warning about modules in evaluation mode: a frozen encoder or frozen BatchNorm statistics
    are meant to be."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
            yield
    finally:
        logger.setLevel(level)


def read_curves(folder: Path) -> dict[str, dict[str, list[float]]]:
    """``{column: {"step": [...], "value": [...]}}`` of a CSV training log (NaN rows dropped)."""
    path = folder / "metrics.csv"
    if not path.is_file():
        return {}
    table = pd.read_csv(path)
    curves = {}
    for column in table.columns:
        if column in ("step", "epoch"):
            continue
        rows = table[["step", column]].dropna()
        if len(rows):
            curves[column] = {"step": rows["step"].astype(float).tolist(), "value": rows[column].astype(float).tolist()}
    return curves


def run_arm(cfg: Mapping[str, Any], folder: Path, seed: int, progress: bool = False,
            save_model: bool = True) -> tuple[DownstreamModule, Any, dict]:
    """Train one run of a task config (and with ``save_model`` write it to
    ``folder/model.ckpt``); returns the model, its data module and its curves."""
    L.seed_everything(seed, workers=True, verbose=False)
    model = instantiate(cfg["model"])
    datamodule = instantiate(cfg["data"])
    model.pipeline_config = _json_safe(copy.deepcopy(cfg["data"]["init_args"]["pipeline"]))
    started = time.perf_counter()
    with _quiet_lightning(not progress):
        trainer = _trainer(cfg.get("trainer", {}), folder, progress)
        trainer.fit(model, datamodule=datamodule)
        if save_model:
            trainer.save_checkpoint(folder / "model.ckpt", weights_only=True)
    elapsed = time.perf_counter() - started
    run = {"curves": read_curves(folder), "seconds": elapsed, "steps": int(trainer.global_step)}
    if save_model:
        run["model"] = str(folder / "model.ckpt")
    if model.probe_fit is not None:
        fit = {k: v for k, v in model.probe_fit.as_dict().items() if k != "losses"}
        if model.solves_probe:  # solved by L-BFGS on frozen features: no SGD steps, no step curves
            run["probe"] = fit
            run["curves"] = {}
        else:
            run["head_from_probe"] = fit
    return model, datamodule, run


def evaluate_task(
    config: str | os.PathLike | Mapping[str, Any],
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    manifest: str | os.PathLike | None = None,
    protocols: Sequence[str] | None = None,
    max_steps: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = print,
    save_models: bool = True,
) -> dict[str, Any]:
    """Train and score one task from ``checkpoint`` and from random init, same budget.

    Args:
        config: the task config (path or dict).
        checkpoint: a pretraining checkpoint of any objective.
        out_dir: folder of this task's logs and figures.
        manifest: the data's manifest (overrides the config's).
        protocols: ``"linear"`` and/or ``"finetune"`` (default per task: :data:`DEFAULT_PROTOCOLS`).
        max_steps: the training budget in optimiser steps (overrides ``trainer.max_steps``).
        batch_size: overrides the config's batch size.
        seed: seed of both runs (default the config's ``seed_everything``, else 0).
        progress: show Lightning's progress bars.
        log: where progress lines go (None: silent).
        save_models: write every trained arm to ``<out_dir>/<protocol>_<init>/model.ckpt``.

    Returns:
        The task's entry of ``results.json``: ``budget``, ``rows`` (protocol, metric,
        pretrained, random_init, higher_is_better), ``details`` and ``figures``.
    """
    config = load_config(config)
    task = task_of(config)
    seed = int(config.get("seed_everything") or 0) if seed is None else int(seed)
    protocols = tuple(protocols or DEFAULT_PROTOCOLS[task])
    out_dir = Path(out_dir)
    _, info = load_pretrained_backbone(checkpoint)
    say = log or (lambda _: None)
    results: dict[str, dict[str, Any]] = {}
    arms: dict[str, dict[str, Any]] = {}
    budget: dict[str, Any] = {}
    for protocol in protocols:
        for init in INITS:
            cfg = arm_config(config, info, str(checkpoint), init, protocol, manifest=manifest, max_steps=max_steps,
                             batch_size=batch_size, seed=seed)
            solved = task_solves_probe(cfg)
            say(f"[{task}] {protocol} / {init}: " + ("solving the linear probe on the frozen features (L-BFGS)" if solved
                                                     else f"training {cfg['trainer'].get('max_steps')} steps"))
            folder = out_dir / f"{protocol}_{init}"
            model, datamodule, run = run_arm(cfg, folder, seed, progress, save_models)
            scored = SCORERS[task](model, datamodule)
            say(f"[{task}] {protocol} / {init}: " + ", ".join(f"{k} {v:.4f}" for k, v in scored["metrics"].items())
                + f"  ({run['seconds']:.0f} s)")
            results.setdefault(protocol, {})[init] = scored
            arms[f"{protocol}/{init}"] = run
            lr, probes = budget.get("lr", {}), budget.get("linear_probe", {})
            budget = {**_budget(cfg, datamodule, run), "lr": {**lr, protocol: cfg["model"]["init_args"].get("lr")}}
            if "probe" in run:
                budget["lr"].pop(protocol)
                probes[init] = run["probe"]
            if probes:
                budget["linear_probe"] = probes
    if task == "action_recognition":
        results["knn"] = {}
        for init in INITS:
            cfg = arm_config(config, info, str(checkpoint), init, protocols[0], manifest=manifest, seed=seed,
                             batch_size=batch_size)
            L.seed_everything(seed, workers=True, verbose=False)
            encoder, _ = build_encoder(str(checkpoint), "pretrained" if init == "pretrained" else "random", init_seed=seed)
            datamodule = instantiate(cfg["data"])
            recall = knn_retrieval(encoder, datamodule, datamodule.val_batch_size)
            results["knn"][init] = {"metrics": recall, "examples": []}
            say(f"[{task}] knn / {init}: " + ", ".join(f"{k} {v:.4f}" for k, v in recall.items()))
    reference = None
    if task == "saliency":  # model, datamodule: the last arm's (the data are the same for all arms)
        reference = {"name": "training gaze prior", "metrics": score_gaze_prior(model, datamodule)["metrics"]}
        say(f"[{task}] {reference['name']} (no model): "
            + ", ".join(f"{k} {v:.4f}" for k, v in reference["metrics"].items()))
    figures = draw_task_figures(task, results, arms, out_dir)
    rows = table_rows(task, results)
    if reference is not None:
        for row in rows:
            row["reference"] = _plain(reference["metrics"][row["metric"]])
    return {
        "budget": budget,
        **({"reference": reference["name"]} if reference is not None else {}),
        "rows": rows,
        "details": _details(results),
        "training": {name: {"seconds": run["seconds"], "steps": run["steps"],
                            **{k: _relative(run[k], out_dir) if k == "model" else run[k]
                               for k in ("probe", "head_from_probe", "model") if k in run}}
                     for name, run in arms.items()},
        "figures": [_relative(str(f), out_dir) for f in figures],
    }


def _relative(path: str, out_dir: Path) -> str:
    """``path`` relative to the results folder (``out_dir``'s parent) when inside it."""
    root = Path(out_dir).parent
    return str(Path(path).relative_to(root)) if root in Path(path).parents else str(path)


def _budget(cfg: Mapping[str, Any], datamodule, run: Mapping[str, Any]) -> dict[str, Any]:
    data = cfg["data"]["init_args"]
    return {
        "max_steps": cfg.get("trainer", {}).get("max_steps"),
        "steps_run": run["steps"],
        "batch_size": data.get("batch_size"),
        "train_videos": len(datamodule.train_set.dataset) if datamodule.train_set is not None else None,
        "held_out_videos": len(datamodule.val_set.dataset) if datamodule.val_set is not None else None,
        "seed": data.get("seed"),
    }


def table_rows(task: str, results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (protocol, metric): the pretrained and random-init values side by side."""
    rows = []
    for protocol, by_init in results.items():
        names = list(by_init[INITS[0]]["metrics"])
        for name in names:
            rows.append({
                "protocol": protocol, "metric": name,
                "pretrained": _plain(by_init["pretrained"]["metrics"][name]),
                "random_init": _plain(by_init["random_init"]["metrics"][name]),
                "higher_is_better": name not in LOWER_IS_BETTER,
            })
    return rows


def _plain(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _details(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for protocol, by_init in results.items():
        for init, scored in by_init.items():
            entry = {k: v for k, v in scored.items() if k not in ("examples", "metrics")}
            if entry:
                out.setdefault(protocol, {})[init] = _json_safe(entry)
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    return value


# ---------------------------------------------------------------------------- figures
def draw_task_figures(task: str, results: Mapping[str, Any], arms: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Training curves and the task's figures (confusion matrices, overlays)."""
    figures = []
    loss_series, metric_series = {}, {}
    metric_name = {"plane_detection": "val/macro_f1", "saliency": "val/NSS", "action_recognition": "val/accuracy"}[task]
    for name, run in arms.items():
        curves = run["curves"]
        loss = curves.get("train/loss_step") or curves.get("train/loss") or curves.get("train/loss_epoch")
        if loss:
            loss_series[name] = (loss["step"], loss["value"])
        if metric_name in curves:
            metric_series[name] = (curves[metric_name]["step"], curves[metric_name]["value"])
    if loss_series:
        figures.append(plots.line_plot(loss_series, out_dir / "training_loss.png", f"{task}: training loss",
                                       "step", "loss"))
    if metric_series:
        figures.append(plots.line_plot(metric_series, out_dir / "validation_metric.png",
                                       f"{task}: {metric_name} during training", "step", metric_name))
    for protocol, by_init in results.items():
        if protocol == "knn":
            continue
        reports = {init: scored.get("report") for init, scored in by_init.items()}
        if all(r is not None for r in reports.values()) and task in ("plane_detection", "action_recognition"):
            names = reports["pretrained"]["class_names"]
            figures.append(plots.confusion_matrix_image(
                {f"{init} ({protocol})": r["confusion"] for init, r in reports.items()}, names,
                out_dir / f"confusion_{protocol}.png", f"{task}: confusion matrices (rows true, columns predicted)"))
        examples = {init: scored.get("examples") or [] for init, scored in by_init.items()}
        if task == "saliency" and examples["pretrained"]:
            figures.append(_saliency_figure(examples, out_dir / f"saliency_overlays_{protocol}.png", protocol))
        if task == "plane_detection" and examples["pretrained"]:
            figures.append(_cam_figure(examples, out_dir / f"cam_overlays_{protocol}.png", protocol))
    return figures


def _gray(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame, dtype=np.float64)
    low, high = frame.min(), frame.max()
    scaled = ((frame - low) / (high - low) if high > low else np.zeros_like(frame)) * 255
    import cv2

    return cv2.cvtColor(scaled.astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _saliency_figure(examples: Mapping[str, list[dict]], path: Path, protocol: str) -> Path:
    rows, points, titles = [], [], []
    for i, example in enumerate(examples["pretrained"]):
        row = [_gray(example["frame"])]
        for init in INITS:
            row.append(plots.heat_overlay(example["frame"], examples[init][i]["map"]))
        rows.append(row)
        points.append(example["fixations"])
        titles.append(f"{Path(example['path']).stem} t={example['t']}")
    return plots.overlay_grid(rows, ["frame + gaze", "pretrained", "random init"], path, row_titles=titles,
                              points=points, title=f"saliency ({protocol}): predictions, green = fixations")


def _cam_figure(examples: Mapping[str, list[dict]], path: Path, protocol: str) -> Path:
    rows, titles = [], []
    for i, example in enumerate(examples["pretrained"]):
        row = [_gray(example["frame"])]
        for init in INITS:
            row.append(plots.heat_overlay(example["frame"], examples[init][i]["cam"]))
        rows.append(row)
        titles.append(f"{Path(example['path']).stem} t={example['t']} {example['true']}: "
                      f"{examples['pretrained'][i]['predicted']} / {examples['random_init'][i]['predicted']}")
    return plots.overlay_grid(rows, ["frame", "pretrained CAM", "random-init CAM"], path, row_titles=titles,
                              title=f"plane detection ({protocol}): class activation of the predicted class; "
                                    "rows: true: pretrained / random prediction")


# ---------------------------------------------------------------------------- results
def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    tasks: Sequence[str] | None = None,
    configs: Mapping[str, str | os.PathLike | Mapping[str, Any]] | None = None,
    manifest: str | os.PathLike | None = None,
    protocols: Mapping[str, Sequence[str]] | None = None,
    max_steps: int | Mapping[str, int] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run several tasks (default plane detection and saliency) and write ``results.json``
    and ``results.md`` into ``out_dir`` (rewritten after each task).

    ``configs`` maps a task to its config (default :func:`default_config_path`),
    ``protocols`` a task to its protocols (default :data:`DEFAULT_PROTOCOLS`); ``max_steps``
    is one budget for every task or one per task (default: each config's); ``options``
    (``batch_size``, ``seed``, ``progress``, ``log``, ``save_models``) go to :func:`evaluate_task`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = tuple(tasks or ("plane_detection", "saliency"))
    _, info = load_pretrained_backbone(checkpoint)
    results: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "objective": info.objective,
        "backbone": {"name": info.spec.name, "kwargs": info.spec.kwargs, "in_channels": info.spec.in_channels},
        "pretraining_step": info.global_step,
        "tasks": {},
    }
    for task in tasks:
        config = (configs or {}).get(task) or default_config_path(task)
        steps = max_steps.get(task) if isinstance(max_steps, Mapping) else max_steps
        results["tasks"][task] = evaluate_task(config, checkpoint, out_dir / task, manifest=manifest,
                                               protocols=(protocols or {}).get(task), max_steps=steps, **options)
        write_results(results, out_dir)
    return results


def write_results(results: Mapping[str, Any], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``results.json`` and ``results.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(_json_safe(results), indent=2) + "\n")
    md_path.write_text(format_markdown(results))
    return json_path, md_path


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def format_table(results: Mapping[str, Any]) -> str:
    """The results as a plain-text table (for the terminal)."""
    lines = []
    for task, entry in results["tasks"].items():
        budget = entry["budget"]
        probe = " (linear: L-BFGS probe to convergence)" if budget.get("linear_probe") else ""
        lines.append(f"{task}  (budget: {budget.get('max_steps')} steps x batch {budget.get('batch_size')}{probe}, "
                     f"{budget.get('train_videos')} training / {budget.get('held_out_videos')} held-out videos)")
        reference = entry.get("reference")
        head = f"  {'protocol':<9} {'metric':<15} {'pretrained':>10} {'random init':>12}"
        lines.append(head + (f"   {reference} (no model)" if reference else ""))
        for row in entry["rows"]:
            better = _better(row)
            mark = {"pretrained": " <", "random_init": "  >", None: ""}[better]
            line = (f"  {row['protocol']:<9} {row['metric']:<15} {_cell(row['pretrained']):>10} "
                    f"{_cell(row['random_init']):>12}{mark}")
            lines.append(line + (f"{'':<{3 - len(mark)}}{_cell(row.get('reference')):>12}" if reference else ""))
    return "\n".join(lines)


def _better(row: Mapping[str, Any]) -> str | None:
    a, b = row["pretrained"], row["random_init"]
    if a is None or b is None or round(a, 4) == round(b, 4):
        return None
    return "pretrained" if (a > b) == row["higher_is_better"] else "random_init"


def _lr_text(lr: Any) -> str:
    if isinstance(lr, Mapping):
        return ", ".join(f"{value} ({protocol})" for protocol, value in lr.items())
    return str(lr)


def _probe_text(budget: Mapping[str, Any]) -> str:
    probes = budget.get("linear_probe")
    if not probes:
        return ""
    first = next(iter(probes.values()))
    iterations = ", ".join(f"{p['iterations']} ({init}{'' if p['converged'] else ', stopped at the limit'})"
                           for init, p in probes.items())
    return (f" The linear probe is not trained for those steps: it is a logistic regression solved with "
            f"L-BFGS on the frozen features of {first['samples']} training samples (L2 {first['l2']:g}; "
            f"iterations {iterations}).")


def format_markdown(results: Mapping[str, Any]) -> str:
    """``results.md``: one table per task, pretrained beside random init, with the budget."""
    lines = ["# Downstream transfer: pretrained vs random init", "",
             f"Checkpoint: `{results['checkpoint']}`  ", f"Objective: {results.get('objective') or 'unknown'}  ",
             f"Backbone: {results['backbone']['name']} (in_channels {results['backbone']['in_channels']}), "
             f"pretrained for {results.get('pretraining_step')} steps", "",
             "Both columns train with the same budget, data order and seed; only the encoder's "
             "starting weights differ. KLD: lower is better; every other metric: higher is better. "
             "**Bold**: the better of the two."
             + (" The saliency table adds the training gaze prior: the mean fixation density of the training "
                "frames used as every frame's prediction, which a model must beat to make any use of the image."
                if any(entry.get("reference") for entry in results["tasks"].values()) else ""), ""]
    for task, entry in results["tasks"].items():
        budget = entry["budget"]
        reference = entry.get("reference")
        lines += [f"## {task}", "",
                  f"Budget: {budget.get('max_steps')} optimiser steps, batch {budget.get('batch_size')}, "
                  f"learning rate {_lr_text(budget.get('lr'))}, seed {budget.get('seed')}; "
                  f"{budget.get('train_videos')} training and "
                  f"{budget.get('held_out_videos')} held-out videos.{_probe_text(budget)}", "",
                  "| protocol | metric | pretrained | random init |" + (f" {reference} (no model) |" if reference else ""),
                  "| --- | --- | ---: | ---: |" + (" ---: |" if reference else "")]
        for row in entry["rows"]:
            better = _better(row)
            cells = [_cell(row[k]) for k in INITS]
            cells = [f"**{c}**" if better == k else c for c, k in zip(cells, INITS)]
            extra = f" {_cell(row.get('reference'))} |" if reference else ""
            lines.append(f"| {row['protocol']} | {row['metric']} | {cells[0]} | {cells[1]} |{extra}")
        if entry.get("figures"):
            lines += ["", "Figures: " + ", ".join(f"`{f}`" for f in entry["figures"])]
        lines.append("")
    return "\n".join(lines)


def run_downstream_demo(
    checkpoint: str | os.PathLike,
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    max_steps: int | Mapping[str, int] = 60,
    batch_size: int = 16,
    tasks: Sequence[str] = ("plane_detection", "saliency"),
    protocols: Mapping[str, Sequence[str]] | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """The demo's downstream step: transfer ``checkpoint`` to plane detection and saliency on
    the embedded sweeps (``manifest``), each beside random init with the same budget; print
    the table and write ``results.json`` / ``results.md`` (and figures) into ``out_dir``.

    ``max_steps`` is the budget of every SGD run (or ``{task: steps}``); linear probes of the
    classification tasks are solved to convergence instead (see
    :mod:`ultrassl.downstream.linear_probe`). ``make demo`` runs 150 steps of 16 clips for the
    demo's tiny3d encoder at 64 x 80, about 2 minutes on 2 CPU cores for the six runs and their
    scoring.

    Returns the results dict: ``results["tasks"][task]["rows"]`` (protocol, metric,
    pretrained, random_init, higher_is_better) and ``["budget"]`` per task.
    """
    results = evaluate_checkpoint(checkpoint, out_dir, tasks=tasks, manifest=manifest, protocols=protocols,
                                  max_steps=max_steps, batch_size=batch_size, seed=seed, log=log)
    if log is not None:
        log(format_table(results))
        log(f"results: {Path(out_dir) / 'results.json'}")
    return results


# ---------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    """``ultrassl evaluate``: transfer a checkpoint to downstream tasks beside random init."""
    import argparse
    import sys

    from ultrassl.errors import UltrasslError

    parser = argparse.ArgumentParser(
        prog="ultrassl evaluate",
        description="Train downstream tasks from a pretraining checkpoint and from random init with the same "
                    "budget; write results.json, results.md and PNG figures.",
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="pretraining checkpoint (any objective)")
    parser.add_argument("-c", "--config", action="append", type=Path, default=[],
                        help="task config (repeatable); default: configs/downstream/<task>.yaml of --tasks")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, help="tasks to run (default: plane_detection saliency)")
    parser.add_argument("--manifest", type=Path, help="data manifest (overrides the configs')")
    parser.add_argument("--out", type=Path, help="output folder (default runs/evaluate/<checkpoint name>)")
    parser.add_argument("--max-steps", type=int, help="training budget in optimiser steps (overrides the configs')")
    parser.add_argument("--batch-size", type=int, help="batch size (overrides the configs')")
    parser.add_argument("--protocols", nargs="+", choices=("linear", "finetune"),
                        help="protocols for every task (default per task)")
    parser.add_argument("--seed", type=int, help="seed of every run (default the config's seed_everything)")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--no-save-models", dest="save_models", action="store_false",
                        help="do not write the trained models (<out>/<task>/<protocol>_<init>/model.ckpt)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        configs = {}
        for path in args.config:
            configs[task_of(load_config(path))] = path
        tasks = tuple(args.tasks or configs or ("plane_detection", "saliency"))
        out = args.out or Path("runs") / "evaluate" / args.checkpoint.stem
        results = evaluate_checkpoint(
            args.checkpoint, out, tasks=tasks, configs=configs, manifest=args.manifest,
            protocols={task: args.protocols for task in tasks} if args.protocols else None,
            max_steps=args.max_steps, batch_size=args.batch_size, seed=args.seed, progress=args.progress,
            save_models=args.save_models,
        )
    except (UltrasslError, ValueError, FileNotFoundError, KeyError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(results))
    print(f"results: {out / 'results.json'}  {out / 'results.md'}")
    return 0
