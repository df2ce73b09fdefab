"""The results of ``ultrassl evaluate``: ``results.json``, ``results.md``, the terminal table,
and the figures every task has (training curves); a task's own figures are its
(:meth:`~ultrassl.downstream.task.Task.figures`).

A task's entry of ``results.json``: ``budget`` (steps, batch, learning rates, videos, seed,
the L-BFGS probes), ``rows`` (protocol, metric, pretrained, random_init, higher_is_better,
and ``reference`` when the task has a model-free baseline, named by ``reference``),
``details`` (per protocol and arm, what scoring reported beyond the table), ``training``
(per arm: seconds, steps, probe, saved model, and ``replaced_clips``: the training reads
that failed and were replaced), ``left_out`` (only when some video could not be read: each
such video once, ``{"path", "error", "split"}``, left out of every score) and ``figures``
(paths relative to the results folder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ultrassl.atomic import write_text_atomically
from ultrassl.downstream import plots
from ultrassl.downstream.task import INITS, Task
from ultrassl.downstream.tasks import TASKS
from ultrassl.plain import plain


def _direction_text() -> str:
    lower = sorted({metric for task in TASKS.values() for metric in task.lower_is_better})
    if not lower:
        return "Every metric: higher is better."
    return f"{', '.join(lower)}: lower is better; every other metric: higher is better."


def write_results(results: Mapping[str, Any], out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``results.json`` and ``results.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    write_text_atomically(json_path, json.dumps(plain(results), indent=2) + "\n")
    write_text_atomically(md_path, format_markdown(results))
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
        if entry.get("left_out"):
            lines.append(f"  left out of scoring, unreadable: {len(entry['left_out'])} videos (listed in results.md)")
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


def left_out_videos(scored: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Every video the scored results (a task's arms and baseline) left out because it could
    not be read, once each: ``{"path", "error", "split"}`` (``held-out`` or ``training``)."""
    found: dict[str, dict[str, str]] = {}
    for entry in scored:
        for key, split in (("left_out", "held-out"), ("left_out_training", "training")):
            for video in entry.get(key) or ():
                found.setdefault(video["path"], {**video, "split": split})
    return list(found.values())


def left_out_text(scored: Mapping[str, Any]) -> str:
    """``"; 2 held-out videos left out (unreadable)"`` for a progress line, or ""."""
    parts = [f"{len(scored[key])} {what} video{'s' if len(scored[key]) != 1 else ''} left out (unreadable)"
             for key, what in (("left_out", "held-out"), ("left_out_training", "training")) if scored.get(key)]
    return "; " + "; ".join(parts) if parts else ""


def _left_out_lines(entry: Mapping[str, Any]) -> list[str]:
    videos = entry.get("left_out") or []
    if not videos:
        return []
    return ["", f"Left out of scoring, unreadable ({len(videos)}): every figure above is over the other videos.", ""] + [
        f"- `{video['path']}` ({video['split']}): {video['error']}" for video in videos]


def _replaced_text(entry: Mapping[str, Any]) -> str:
    replaced = {name: len(run["replaced_clips"]) for name, run in (entry.get("training") or {}).items()
                if run.get("replaced_clips")}
    if not replaced:
        return ""
    return (" Training replaced clips that failed to read by other clips (listed in each arm's bad_clips.csv): "
            + ", ".join(f"{name} {n}" for name, n in replaced.items()) + ".")


def format_markdown(results: Mapping[str, Any]) -> str:
    """``results.md``: one table per task, pretrained beside random init, with the budget."""
    lines = ["# Downstream transfer: pretrained vs random init", "",
             f"Checkpoint: `{results['checkpoint']}`  ", f"Objective: {results.get('objective') or 'unknown'}  ",
             f"Backbone: {results['backbone']['name']} (in_channels {results['backbone']['in_channels']}), "
             f"pretrained for {results.get('pretraining_step')} steps", "",
             "Both columns train with the same budget, data order and seed; only the encoder's "
             f"starting weights differ. {_direction_text()} **Bold**: the better of the two."
             + "".join(f" {TASKS[task].reference_note}" for task, entry in results["tasks"].items()
                       if entry.get("reference") and task in TASKS and TASKS[task].reference_note), ""]
    for task, entry in results["tasks"].items():
        budget = entry["budget"]
        reference = entry.get("reference")
        lines += [f"## {task}", "",
                  f"Budget: {budget.get('max_steps')} optimiser steps, batch {budget.get('batch_size')}, "
                  f"learning rate {_lr_text(budget.get('lr'))}, seed {budget.get('seed')}; "
                  f"{budget.get('train_videos')} training and "
                  f"{budget.get('held_out_videos')} held-out videos.{_probe_text(budget)}{_replaced_text(entry)}", "",
                  "| protocol | metric | pretrained | random init |" + (f" {reference} (no model) |" if reference else ""),
                  "| --- | --- | ---: | ---: |" + (" ---: |" if reference else "")]
        for row in entry["rows"]:
            better = _better(row)
            cells = [_cell(row[k]) for k in INITS]
            cells = [f"**{c}**" if better == k else c for c, k in zip(cells, INITS)]
            extra = f" {_cell(row.get('reference'))} |" if reference else ""
            lines.append(f"| {row['protocol']} | {row['metric']} | {cells[0]} | {cells[1]} |{extra}")
        lines += _left_out_lines(entry)
        if entry.get("figures"):
            lines += ["", "Figures: " + ", ".join(f"`{f}`" for f in entry["figures"])]
        lines.append("")
    return "\n".join(lines)


def relative(path: str, out_dir: Path) -> str:
    """``path`` relative to the results folder (``out_dir``'s parent) when inside it."""
    root = Path(out_dir).parent
    return str(Path(path).relative_to(root)) if root in Path(path).parents else str(path)


def budget_of(cfg: Mapping[str, Any], datamodule, run: Mapping[str, Any]) -> dict[str, Any]:
    data = cfg["data"]["init_args"]
    return {
        "max_steps": cfg.get("trainer", {}).get("max_steps"),
        "steps_run": run["steps"],
        "batch_size": data.get("batch_size"),
        "train_videos": len(datamodule.train_set.dataset) if datamodule.train_set is not None else None,
        "held_out_videos": len(datamodule.val_set.dataset) if datamodule.val_set is not None else None,
        "seed": data.get("seed"),
    }


def table_rows(task: Task, results: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (protocol, metric): the pretrained and random-init values side by side."""
    rows = []
    for protocol, by_init in results.items():
        names = list(by_init[INITS[0]]["metrics"])
        for name in names:
            rows.append({
                "protocol": protocol, "metric": name,
                "pretrained": plain(float(by_init["pretrained"]["metrics"][name])),
                "random_init": plain(float(by_init["random_init"]["metrics"][name])),
                "higher_is_better": task.higher_is_better(name),
            })
    return rows


def details(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for protocol, by_init in results.items():
        for init, scored in by_init.items():
            entry = {k: v for k, v in scored.items() if k not in ("examples", "metrics")}
            if entry:
                out.setdefault(protocol, {})[init] = plain(entry)
    return out


def draw_task_figures(task: Task, results: Mapping[str, Any], arms: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Training curves (loss, and the task's validation metric) and the task's figures."""
    figures = []
    loss_series, metric_series = {}, {}
    metric_name = task.curve_metric
    for name, run in arms.items():
        curves = run["curves"]
        loss = curves.get("train/loss_step") or curves.get("train/loss") or curves.get("train/loss_epoch")
        if loss:
            loss_series[name] = (loss["step"], loss["value"])
        if metric_name is not None and metric_name in curves:
            metric_series[name] = (curves[metric_name]["step"], curves[metric_name]["value"])
    if loss_series:
        figures.append(plots.line_plot(loss_series, out_dir / "training_loss.png", f"{task.name}: training loss",
                                       "step", "loss"))
    if metric_series:
        figures.append(plots.line_plot(metric_series, out_dir / "validation_metric.png",
                                       f"{task.name}: {metric_name} during training", "step", metric_name))
    return figures + task.figures(results, out_dir)
