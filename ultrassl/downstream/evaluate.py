"""Transfer a pretraining checkpoint to the downstream tasks, beside a random-init baseline.

For every task and protocol two arms train with the same budget (same config, steps, batch
size, data order and seed; only the encoder's starting weights differ): ``pretrained``
starts from the checkpoint's encoder (:class:`~ultrassl.models.encoders.PretrainedEncoder`),
``random_init`` from the same architecture freshly initialised
(:class:`~ultrassl.models.encoders.RandomEncoder`, built from the architecture the
checkpoint names, read once: that arm opens no file). The linear probes of the
classification tasks are solved to convergence on the frozen features (L-BFGS,
:mod:`ultrassl.downstream.protocols.linear`) rather than stepped, so that the comparison
measures the features and not how fast each arm's probe converges; with the shipped
plane-detection config the fine-tune's head starts from that probe (LP-FT). Protocols that
score an encoder as it starts (action recognition's kNN retrieval) run for both arms too.
Then each trained model is scored on the held-out videos by its task
(:meth:`~ultrassl.downstream.task.Task.score`), and a task's model-free baseline (the
saliency task's training gaze prior) is scored beside them.

What each task scores, and how, lives with the task (:mod:`ultrassl.downstream.tasks` lists
them); this module is the loop over tasks, protocols and arms. Task configs are
LightningCLI-style YAML (``configs/downstream/<task>.yaml``: ``trainer``, ``model``,
``data`` with ``class_path``/``init_args``), built by the parser of ``ultrassl fit``
(:mod:`ultrassl.downstream.arms`), so one arm can also be trained with ``ultrassl fit -c
configs/downstream/<task>.yaml --model.init_args.checkpoint=...``. The budget is
``trainer.max_steps``. What the checkpoint dictates is set by the task
(:meth:`~ultrassl.downstream.task.Task.prepare`): the pipeline's ``in_channels`` (the
encoder's), ``clip_frames`` (1 for frame backbones) and the class list.

Writes into the output folder (:mod:`ultrassl.downstream.report`): ``results.json``,
``results.md``, per task and arm the CSV training log (``<task>/<protocol>_<init>/metrics.csv``)
and the trained model (``<task>/<protocol>_<init>/model.ckpt``, weights and
hyperparameters: load it with :func:`~ultrassl.downstream.base.load_task_model`), and PNG
figures: training curves, confusion matrices, saliency overlays (prediction vs fixations),
class-activation maps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ultrassl.downstream.arms import arm_config, build_arm, load_config, solves_probe, train_arm
from ultrassl.downstream.protocols import ENCODER_PROTOCOLS
from ultrassl.downstream.report import (budget_of, details, draw_task_figures, format_table, left_out_text, left_out_videos,
                                        relative, table_rows, write_results)
from ultrassl.downstream.task import INITS
from ultrassl.downstream.tasks import DEFAULT_TASKS, TASKS, get_task, task_of_config
from ultrassl.models.encoders import EncoderSpec, PretrainedEncoder, RandomEncoder
from ultrassl.plain import plain


def default_config_path(task: str) -> Path:
    """``configs/downstream/<task>.yaml`` of the source tree."""
    return get_task(task).default_config_path()


def comparison_encoders(checkpoint: str | os.PathLike, seed: int) -> tuple[dict[str, EncoderSpec], Any]:
    """The two arms' encoders, ``{"pretrained": ..., "random_init": ...}``, and what the
    checkpoint holds (its hyperparameters are read once; the random arm's spec names the
    same architecture and opens no file)."""
    pretrained = PretrainedEncoder(checkpoint)
    info = pretrained.describe()
    return {"pretrained": pretrained, "random_init": RandomEncoder.like(info, seed=seed)}, info


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
        protocols: ``"linear"`` and/or ``"finetune"`` (default: the task's ``default_protocols``).
        max_steps: the training budget in optimiser steps (overrides ``trainer.max_steps``).
        batch_size: overrides the config's batch size.
        seed: seed of both runs (default the config's ``seed_everything``, else 0).
        progress: show Lightning's progress bars.
        log: where progress lines go (None: silent).
        save_models: write every trained arm to ``<out_dir>/<protocol>_<init>/model.ckpt``.

    Returns:
        The task's entry of ``results.json`` (see :mod:`ultrassl.downstream.report`).
    """
    config = load_config(config)
    task = task_of_config(config)
    seed = int(config.get("seed_everything") or 0) if seed is None else int(seed)
    protocols = tuple(protocols or task.default_protocols)
    out_dir = Path(out_dir)
    encoders, info = comparison_encoders(checkpoint, seed)
    say = log or (lambda _: None)
    results: dict[str, dict[str, Any]] = {}
    arms: dict[str, dict[str, Any]] = {}
    budget: dict[str, Any] = {}
    last = None
    for protocol in protocols:
        for init in INITS:
            cfg = arm_config(config, encoders[init], protocol, seed=seed, info=info, manifest=manifest,
                             max_steps=max_steps, batch_size=batch_size)
            say(f"[{task.name}] {protocol} / {init}: " + (
                "solving the linear probe on the frozen features (L-BFGS)" if solves_probe(cfg)
                else f"training {cfg['trainer'].get('max_steps')} steps"))
            last = train_arm(cfg, out_dir / f"{protocol}_{init}", progress, save_models)
            scored = task.score(last.model, last.datamodule)
            run = last.run
            say(f"[{task.name}] {protocol} / {init}: " + ", ".join(f"{k} {v:.4f}" for k, v in scored["metrics"].items())
                + f"  ({run['seconds']:.0f} s)" + left_out_text(scored))
            results.setdefault(protocol, {})[init] = scored
            arms[f"{protocol}/{init}"] = run
            lr, probes = budget.get("lr", {}), budget.get("linear_probe", {})
            budget = {**budget_of(cfg, last.datamodule, run), "lr": {**lr, protocol: cfg["model"]["init_args"].get("lr")}}
            if "probe" in run:
                budget["lr"].pop(protocol)
                probes[init] = run["probe"]
            if probes:
                budget["linear_probe"] = probes
    for protocol in task.encoder_protocols:
        results[protocol] = {}
        for init in INITS:
            # the encoder as it starts, in a model of the first protocol (never trained)
            cfg = arm_config(config, encoders[init], protocols[0], seed=seed, info=info, manifest=manifest,
                             batch_size=batch_size)
            arm = build_arm(cfg, quiet=not progress)
            results[protocol][init] = ENCODER_PROTOCOLS[protocol]().evaluate(arm.model, arm.datamodule)
            say(f"[{task.name}] {protocol} / {init}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in results[protocol][init]["metrics"].items())
                + left_out_text(results[protocol][init]))
    reference = task.baseline(last.datamodule, last.config) if last is not None else None  # the data are every arm's
    if reference is not None:
        say(f"[{task.name}] {reference['name']} (no model): "
            + ", ".join(f"{k} {v:.4f}" for k, v in reference["metrics"].items()) + left_out_text(reference))
    figures = draw_task_figures(task, results, arms, out_dir)
    rows = table_rows(task, results)
    if reference is not None:
        for row in rows:  # a baseline scores the trained protocols' metrics, not an encoder protocol's
            value = reference["metrics"].get(row["metric"])
            row["reference"] = None if value is None else plain(float(value))
    unreadable = left_out_videos([*(scored for by_init in results.values() for scored in by_init.values()),
                                  *([reference] if reference is not None else [])])
    return {
        "budget": budget,
        **({"reference": reference["name"]} if reference is not None else {}),
        **({"left_out": unreadable} if unreadable else {}),
        "rows": rows,
        "details": details(results),
        "training": {name: {"seconds": run["seconds"], "steps": run["steps"],
                            **{k: relative(run[k], out_dir) if k == "model" else run[k]
                               for k in ("probe", "head_from_probe", "model", "replaced_clips") if k in run}}
                     for name, run in arms.items()},
        "figures": [relative(str(f), out_dir) for f in figures],
    }


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
    """Run several tasks (default :data:`~ultrassl.downstream.tasks.DEFAULT_TASKS`) and write
    ``results.json`` and ``results.md`` into ``out_dir`` (rewritten after each task).

    ``configs`` maps a task to its config (default the task's shipped one), ``protocols`` a
    task to its protocols (default the task's); ``max_steps`` is one budget for every task or
    one per task (default: each config's); ``options`` (``batch_size``, ``seed``,
    ``progress``, ``log``, ``save_models``) go to :func:`evaluate_task`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = tuple(tasks or DEFAULT_TASKS)
    info = PretrainedEncoder(checkpoint).describe()
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


def run_downstream_demo(
    checkpoint: str | os.PathLike,
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    max_steps: int | Mapping[str, int] = 60,
    batch_size: int = 16,
    tasks: Sequence[str] = DEFAULT_TASKS,
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

    from jsonargparse import ArgumentError

    from ultrassl.errors import UltrasslError

    parser = argparse.ArgumentParser(
        prog="ultrassl evaluate",
        description="Train downstream tasks from a pretraining checkpoint and from random init with the same "
                    "budget; write results.json, results.md and PNG figures.",
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="pretraining checkpoint (any objective)")
    parser.add_argument("-c", "--config", action="append", type=Path, default=[],
                        help="task config (repeatable); default: configs/downstream/<task>.yaml of --tasks")
    parser.add_argument("--tasks", nargs="+", choices=tuple(TASKS),
                        help=f"tasks to run (default: {' '.join(DEFAULT_TASKS)})")
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
            configs[task_of_config(load_config(path)).name] = path
        tasks = tuple(args.tasks or configs or DEFAULT_TASKS)
        out = args.out or Path("runs") / "evaluate" / args.checkpoint.stem
        results = evaluate_checkpoint(
            args.checkpoint, out, tasks=tasks, configs=configs, manifest=args.manifest,
            protocols={task: args.protocols for task in tasks} if args.protocols else None,
            max_steps=args.max_steps, batch_size=args.batch_size, seed=args.seed, progress=args.progress,
            save_models=args.save_models,
        )
    except (UltrasslError, ArgumentError, ValueError, FileNotFoundError, KeyError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(results))
    print(f"results: {out / 'results.json'}  {out / 'results.md'}")
    return 0
