"""The benchmark's results: ``results.json``, ``results.md``, the terminal table, and the
checks that make a run trustworthy (equal budgets, no constant or missing metric).

Everything is built from the records in the output folder (:mod:`ultrassl.benchmark.runner`),
so a report can be rebuilt at any time, from a finished run or a partial one.

``results.json``: ``profile``, ``sim_seed``, ``seeds``, ``machine`` (CPU model, cores,
platform, Python, torch, GPU), ``wall_seconds`` (per kind of unit, summed over the records),
``data`` (per domain the pools and each seed's label subsets), ``pretraining`` (per objective
and seed: steps, budget, held-out pretext metrics, checkpoint), and per task:

* ``rows``: one per (protocol, fraction, metric) with ``draws`` (label draws per seed) and,
  per arm, ``per_seed`` values and ``mean``, ``low``, ``high``, ``n`` (95 % t-interval,
  :mod:`ultrassl.benchmark.stats`), and ``differences``: per objective, the paired difference
  objective - random init with its interval and ``excludes_zero``. With several label draws
  a seed's value is the mean over its draws (``per_draw`` keeps each), and a difference
  pairs the draws both arms have before it pairs the seeds: the seed stays the unit the
  interval counts, the draws only make each seed's value less dependent on which subjects
  were labelled;
* ``per_class``: the same summaries of the per-class F1 (classification tasks);
* ``budgets``: per (protocol, fraction, seed, draw) each arm's budget and whether they are equal;

and ``defects``: every comparison whose arms had unequal budgets, and every metric that is
missing (None/NaN) for some arm or identical across every arm and seed of a task's protocol.
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ultrassl.atomic import write_text_atomically
from ultrassl.benchmark.pools import data_folder, fraction_text
from ultrassl.benchmark.profile import Profile
from ultrassl.benchmark.runner import BASELINE, RANDOM, RECORD, SUPERVISED
from ultrassl.benchmark.stats import (
    CONFIDENCE,
    Interval,
    NoiseSplit,
    finite,
    mean_interval,
    noise_split,
    paired_difference,
    verdict,
)
from ultrassl.benchmark.store import read_json, write_json
from ultrassl.downstream.tasks import get_task

#: the budget entries every arm of one comparison must share
BUDGET_KEYS = ("protocol", "max_steps", "steps_run", "batch_size", "seed", "data_seed", "manifest_sha256",
               "train_subjects", "held_out_subjects", "train_videos")


# ---------------------------------------------------------------------------- collecting
def read_records(out: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of an output folder (pretraining and downstream)."""
    out = Path(out)
    found = []
    for folder in ("pretrain", "runs"):
        if (out / folder).exists():
            found += [r for p in sorted((out / folder).rglob(RECORD)) if (r := read_json(p)) is not None]
    return found


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU model, cores, platform, Python, torch, the GPU if any."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def arm_order(profile: Profile, domain: str) -> list[str]:
    """The columns of a task's tables: its objectives, random init, the ceiling, the baseline."""
    names = [o.name for o in profile.objectives_of(domain)]
    names += [arm for arm in (RANDOM, SUPERVISED, BASELINE) if arm in profile.arms]
    return names


#: ``{seed: {label draw: value}}``: one arm's values in one comparison
Draws = Mapping[int, Mapping[int, Any]]


def draw_mean(values: Mapping[int, float | None]) -> float | None:
    """A seed's value: the mean over its label draws; None where a draw has no value (a
    missing value stays visible instead of being averaged away)."""
    kept = finite(values.values())
    return sum(kept) / len(kept) if kept and len(kept) == len(values) else None


def summary(per_draw: Draws) -> dict[str, Any]:
    """Mean and interval over the seeds of each seed's mean over its draws."""
    per_seed = {s: draw_mean(v) for s, v in sorted(per_draw.items())}
    found = {"per_seed": {str(s): v for s, v in per_seed.items()}, **mean_interval(per_seed.values()).as_dict()}
    if any(len(v) > 1 for v in per_draw.values()):
        found["per_draw"] = {str(s): {str(d): x for d, x in sorted(v.items())} for s, v in sorted(per_draw.items())}
    return found


def paired_by_draw(arm: Draws, reference: Draws) -> tuple[dict[int, float], dict[int, float]]:
    """Per seed, both arms' means over the draws where both have a value."""
    mine, theirs = {}, {}
    for seed in arm:
        common = [d for d in arm[seed] if d in reference.get(seed, {})
                  and len(finite([arm[seed][d], reference[seed][d]])) == 2]
        if common:
            mine[seed] = sum(float(arm[seed][d]) for d in common) / len(common)
            theirs[seed] = sum(float(reference[seed][d]) for d in common) / len(common)
    return mine, theirs


def difference(arm: Draws, reference: Draws, higher_is_better: bool) -> dict[str, Any]:
    mine, theirs = paired_by_draw(arm, reference)
    interval = paired_difference(mine, theirs)
    per_seed = {str(s): mine[s] - theirs[s] if s in mine else None for s in sorted(s for s in arm if s in reference)}
    found = {"per_seed": per_seed, **interval.as_dict(), "excludes_zero": interval.excludes(0.0),
             "verdict": verdict(interval, higher_is_better)}
    split = noise_split({s: {d: arm[s][d] - reference[s][d] for d in arm[s] if d in reference[s]
                             and len(finite([arm[s][d], reference[s][d]])) == 2}
                         for s in arm if s in reference})
    if split is not None:
        found["noise"] = split.as_dict()
    return found


def build_results(profile: Profile, out: str | os.PathLike, sim_seed: int,
                  records: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """``results.json``'s content (see the module docstring) from the records of ``out``."""
    out = Path(out)
    records = list(read_records(out) if records is None else records)
    seeds = list(profile.seeds)
    results: dict[str, Any] = {
        "profile": {"name": profile.name, "source": str(profile.source) if profile.source else None,
                    "settings": profile.raw},
        "sim_seed": int(sim_seed), "seeds": seeds, "confidence": CONFIDENCE, "machine": machine(),
        "wall_seconds": wall_seconds(records, out),
        "data": {name: read_json(data_folder(out, profile.domains[name]) / "pools.json")
                 for name in profile.used_domains()},
        "pretraining": pretraining_summary(records, profile),
        "tasks": {}, "defects": [],
    }
    for plan in profile.tasks.values():
        entry = task_results(profile, plan, [r for r in records if r.get("task") == plan.name and r["seed"] in seeds
                                             and asked_for(plan, r)])
        results["tasks"][plan.name] = entry
        results["defects"] += entry["defects"]
    return results


def mean_of(found: Sequence[Any]) -> Any:
    """One run's value, or the mean of several runs' ``{name: value}`` (random init's networks):
    per name over the runs with a finite value (None where none has one)."""
    if len(found) == 1:
        return found[0]
    names = list(dict.fromkeys(k for one in found for k in one))
    means = {}
    for name in names:
        values = finite(one.get(name) for one in found)
        means[name] = sum(values) / len(values) if values else None
    return means


def asked_for(plan: Any, record: Mapping[str, Any]) -> bool:
    """Whether the profile asks for ``record``'s label draw and random-init network: as with the
    seeds, a folder may hold more (run with ``--label-draws`` or ``--random-inits``) than a
    report of fewer shows. The baseline and the encoder protocols run the task's draws and one
    network."""
    protocol = next((p for p in plan.protocols if p.name == record.get("protocol")), None)
    if record.get("kind") != "arm" or protocol is None:
        draws, networks = plan.label_draws, 1
    else:
        draws, networks = protocol.label_draws, protocol.random_inits
    return int(record.get("draw", 0)) < draws and int(record.get("network", 0)) < networks


def wall_seconds(records: Iterable[Mapping[str, Any]], out: Path) -> dict[str, float]:
    totals: dict[str, float] = {}
    for record in records:
        if record.get("same_run_as"):
            continue
        totals[record["kind"]] = totals.get(record["kind"], 0.0) + float(record.get("seconds") or 0.0)
    for marker in (out / "data").glob("*/simulated.json") if (out / "data").exists() else []:
        totals["simulation"] = totals.get("simulation", 0.0) + float((read_json(marker) or {}).get("seconds", 0.0))
    totals["total"] = sum(totals.values())
    return totals


def pretraining_summary(records: Iterable[Mapping[str, Any]], profile: Profile) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for record in records:
        if record["kind"] != "pretrain" or record["objective"] not in profile.objectives:
            continue
        found.setdefault(record["objective"], {})[str(record["seed"])] = {
            k: record[k] for k in ("steps", "epochs", "seconds", "val_metrics", "order_classes", "budget",
                                   "checkpoint", "command", "backbone")}
    return found


def task_results(profile: Profile, plan: Any, records: list[Mapping[str, Any]]) -> dict[str, Any]:
    task = get_task(plan.name)
    arms = arm_order(profile, plan.domain)
    objectives = [o.name for o in profile.objectives_of(plan.domain)]
    protocols = [p.name for p in plan.protocols] + list(task.encoder_protocols)
    fractions = {p.name: list(p.fractions) for p in plan.protocols}
    fractions.update({p: list(plan.fractions) for p in task.encoder_protocols})

    def runs(protocol: str, fraction: float, arm: str, key: str = "metrics") -> dict[int, dict[int, dict[int, Any]]]:
        """``{seed: {label draw: {network: metrics}}}`` of one arm in one comparison (the ceiling
        and the baseline stand beside every fraction's arms: the ceiling's labels are all of
        them); network 0 alone for every arm but random init."""
        found: dict[int, dict[int, dict[int, Any]]] = {}
        for r in records:
            if r["arm"] != arm:
                continue
            if arm == BASELINE:
                match = r["fraction"] == fraction and protocol in [p.name for p in plan.protocols]
            elif arm == SUPERVISED and r["kind"] == "arm":
                match = protocol in [p.name for p in plan.protocols]
            else:
                match = r.get("protocol") == protocol and r["fraction"] == fraction
            if match and r.get(key) is not None:
                by_network = found.setdefault(int(r["seed"]), {}).setdefault(int(r.get("draw", 0)), {})
                by_network[int(r.get("network", 0))] = r[key]
        return found

    def values(protocol: str, fraction: float, arm: str, key: str = "metrics") -> dict[int, dict[int, Any]]:
        """``{seed: {label draw: metrics}}``, random init's the mean over its networks."""
        return {s: {d: mean_of(list(found.values())) for d, found in by_draw.items()}
                for s, by_draw in runs(protocol, fraction, arm, key).items()}

    rows, per_class, budgets, defects = [], [], [], []
    for protocol in protocols:
        for fraction in fractions[protocol]:
            by_arm = {arm: values(protocol, fraction, arm) for arm in arms}
            # the draws are those of the compared arms: a protocol may run fewer than its task
            # (the quick profile's fine-tunes one), and the baseline beside it then stands on
            # the same draws, not on every draw the task's baseline was computed for
            compared = [arm for arm in arms if arm not in (BASELINE, SUPERVISED) and by_arm[arm]]
            if compared and by_arm.get(BASELINE):
                used = {s: {d for arm in compared for d in by_arm[arm].get(s, {})} for s in by_arm[BASELINE]}
                by_arm[BASELINE] = {s: {d: m for d, m in by_draw.items() if d in used[s]}
                                    for s, by_draw in by_arm[BASELINE].items() if used[s]}
            metric_names = list(dict.fromkeys(m for arm in arms for seed in by_arm[arm].values()
                                              for draw in seed.values() for m in draw))
            draws = max([len(seed) for arm in (compared or arms) for seed in by_arm[arm].values()] or [1])
            networks = max([len(found) for seed in runs(protocol, fraction, RANDOM).values()
                            for found in seed.values()] or [1])
            for metric in metric_names:
                higher = task.higher_is_better(metric)
                per_arm = {arm: {s: {d: m.get(metric) for d, m in by_draw.items() if metric in m}
                                 for s, by_draw in by_arm[arm].items()} for arm in arms}
                per_arm = {arm: {s: v for s, v in by_seed.items() if v} for arm, by_seed in per_arm.items()}
                row = {"protocol": protocol, "fraction": fraction, "metric": metric, "higher_is_better": higher,
                       "draws": draws, "random_inits": networks,
                       "arms": {arm: summary(v) for arm, v in per_arm.items() if v},
                       "differences": {}}
                if per_arm.get(RANDOM):
                    for name in objectives:
                        if per_arm.get(name):
                            row["differences"][name] = difference(per_arm[name], per_arm[RANDOM], higher)
                rows.append(row)
            classes = {arm: values(protocol, fraction, arm, "per_class") for arm in arms}
            names = list(dict.fromkeys(c for arm in arms for seed in classes[arm].values()
                                       for draw in seed.values() for c in draw))
            if names:
                per_class.append({"protocol": protocol, "fraction": fraction, "metric": "F1", "classes": {
                    c: {arm: summary({s: {d: v.get(c) for d, v in by_draw.items()}
                                      for s, by_draw in classes[arm].items()}) for arm in arms if classes[arm]}
                    for c in names}})
            budgets += budget_checks(plan.name, protocol, fraction, records, objectives + [RANDOM])
            if networks > 1:  # a collapsed network would hide in random init's mean
                defects += [f"{plan.name} / {protocol} / {fraction_text(fraction)} / {RANDOM} network {k}, "
                            f"{_run_text(seed, draw)}: predicts one class for every held-out sample"
                            for seed, by_draw in runs(protocol, fraction, RANDOM, "per_class").items()
                            for draw, found in by_draw.items() for k, scores in sorted(found.items())
                            if predicts_one_class(finite(scores.values()))]
    defects += [f"{plan.name} / {b['protocol']} / {fraction_text(b['fraction'])} / {_run_text(b['seed'], b['draw'])}: "
                f"the arms' budgets differ in {', '.join(b['differs_in'])}" for b in budgets if not b["equal"]]
    collapsed = collapsed_runs(per_class)
    defects += metric_defects(plan.name, rows, [a for a in arms if a != BASELINE], collapsed)
    defects += collapse_defects(plan.name, collapsed)
    return {"domain": plan.domain, "arms": arms, "objectives": objectives, "lower_is_better": sorted(task.lower_is_better),
            "reference_note": task.reference_note, "rows": rows, "per_class": per_class, "budgets": budgets,
            "defects": defects}


def budget_checks(task: str, protocol: str, fraction: float, records: Iterable[Mapping[str, Any]],
                  arms: Sequence[str]) -> list[dict[str, Any]]:
    """Per seed and label draw: the budgets of the arms of one comparison and whether they agree."""
    by_run: dict[tuple[int, int], dict[str, Any]] = {}
    for r in records:
        if r.get("protocol") == protocol and r.get("fraction") == fraction and r["arm"] in arms and r.get("budget"):
            by_run.setdefault((int(r["seed"]), int(r.get("draw", 0))), {})[r["arm"]] = r["budget"]
    checks = []
    for (seed, draw), budgets in sorted(by_run.items()):
        differs = [k for k in BUDGET_KEYS if len({json.dumps(b.get(k)) for b in budgets.values()}) > 1]
        checks.append({"protocol": protocol, "fraction": fraction, "seed": seed, "draw": draw, "equal": not differs,
                       "differs_in": differs, "arms": budgets})
    return checks


def _run_text(seed: Any, draw: Any = 0) -> str:
    return f"seed {seed}" + (f", label draw {draw}" if int(draw) else "")


def metric_defects(task: str, rows: Iterable[Mapping[str, Any]], arms: Sequence[str],
                   collapsed: Collection[tuple[str, float, str, str, str]] = ()) -> list[str]:
    """Metrics that cannot be right: missing (None/NaN) for an arm and seed, or one value for
    every arm, seed and fraction of a protocol (a metric that does not depend on the model).

    The second check passes over a metric whose every run is in ``collapsed`` ((protocol,
    fraction, arm, seed, draw), :func:`collapsed_runs`): models that each predict one class for
    a balanced test set all score 1/K, which :func:`collapse_defects` reports as what it is."""
    defects = []
    collapsed_seeds = {run[:4] for run in collapsed}
    pooled: dict[tuple[str, str], list[Any]] = {}
    learned: set[tuple[str, str]] = set()  # metrics with at least one run that did not collapse
    for row in rows:
        for arm in arms:
            summary_ = row["arms"].get(arm)
            if summary_ is None:
                continue
            for seed, value in summary_["per_seed"].items():
                key = (row["protocol"], row["metric"])
                pooled.setdefault(key, []).append(value)
                if (row["protocol"], row["fraction"], arm, str(seed)) not in collapsed_seeds:
                    learned.add(key)
                if value is None or not math.isfinite(float(value)):
                    defects.append(f"{task} / {row['protocol']} / {fraction_text(row['fraction'])} / "
                                   f"{row['metric']}: no value for {arm}, seed {seed}")
    for (protocol, metric), found in pooled.items():
        values = finite(found)
        if len(values) >= 2 and len(set(values)) == 1 and (protocol, metric) in learned:
            defects.append(f"{task} / {protocol} / {metric}: the same value {values[0]:.6g} for every arm and seed "
                           "(the metric does not depend on the model)")
    return defects


# ---------------------------------------------------------------------------- text
def collapsed_runs(per_class: Iterable[Mapping[str, Any]]) -> list[tuple[str, float, str, str, str]]:
    """(protocol, fraction, arm, seed, label draw) of the runs that predict a single class for
    every held-out sample (every other class's F1 is 0): a collapsed model or degenerate features."""
    runs = []
    for entry in per_class:
        by_run: dict[tuple[str, str, str], list[float]] = {}
        for by_arm in entry["classes"].values():
            for arm, summary_ in by_arm.items():
                summary_ = summary_ or {}
                per_draw = summary_.get("per_draw") or {s: {"0": v} for s, v in summary_.get("per_seed", {}).items()}
                for seed, draws in per_draw.items():
                    for draw, value in draws.items():
                        if value is not None and math.isfinite(float(value)):
                            by_run.setdefault((arm, str(seed), str(draw)), []).append(float(value))
        for (arm, seed, draw), scores in sorted(by_run.items()):
            if predicts_one_class(scores):
                runs.append((entry["protocol"], entry["fraction"], arm, seed, draw))
    return runs


def predicts_one_class(scores: Sequence[float]) -> bool:
    """Whether a run's per-class F1 says it predicts a single class for every held-out sample
    (every other class's F1 is 0)."""
    return len(scores) > 2 and sum(v > 0 for v in scores) <= 1


def collapse_defects(task: str, collapsed: Iterable[tuple[str, float, str, str, str]]) -> list[str]:
    """The runs of :func:`collapsed_runs` as defects: not results to compare."""
    return [f"{task} / {protocol} / {fraction_text(fraction)} / {arm}, {_run_text(seed, draw)}: predicts one class "
            "for every held-out sample" for protocol, fraction, arm, seed, draw in collapsed]


def interval_text(entry: Mapping[str, Any] | Interval | None, signed: bool = False, digits: int = 3) -> str:
    """``mean [low, high]`` (``n/a`` without a mean; no interval with one seed)."""
    if entry is None:
        return ""
    get = entry.get if isinstance(entry, Mapping) else (lambda k: getattr(entry, k))
    mean = get("mean")
    if mean is None:
        return "n/a"
    form = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    if get("low") is None:
        return form.format(mean)
    return f"{form.format(mean)} [{form.format(get('low'))}, {form.format(get('high'))}]"


def labels_text(row: Mapping[str, Any]) -> str:
    """The labels cell of a table row: ``20%``, or ``20% (3 draws)`` where each seed's value
    averages several label draws (and says so where random init averages several networks)."""
    draws, networks = int(row.get("draws", 1)), int(row.get("random_inits", 1))
    notes = [f"{draws} draws"] if draws > 1 else []
    notes += [f"random init over {networks} networks"] if networks > 1 else []
    return fraction_text(row["fraction"]) + (f" ({', '.join(notes)})" if notes else "")


def arm_title(arm: str, baseline_name: str | None = None) -> str:
    """A column title: objectives by name; the others in words."""
    return {RANDOM: "random init", SUPERVISED: "supervised, 100% labels",
            BASELINE: baseline_name or "baseline (no model)"}.get(arm, arm)


def _baseline_name(profile: Profile, out: Path, task: str) -> str | None:
    for path in sorted((out / "runs" / task / BASELINE).rglob(RECORD)) if (out / "runs" / task / BASELINE).exists() else []:
        record = read_json(path)
        if record:
            return f"{record['name']} (no model)"
    return None


def tables(results: Mapping[str, Any], task: str, baseline_name: str | None = None) -> list[str]:
    """The markdown tables of one task: per protocol, every arm's mean [interval], then every
    objective's paired difference from random init."""
    entry = results["tasks"][task]
    lines: list[str] = []
    for protocol in dict.fromkeys(r["protocol"] for r in entry["rows"]):
        rows = [r for r in entry["rows"] if r["protocol"] == protocol]
        arms = [a for a in entry["arms"] if any(a in r["arms"] for r in rows)]
        lines += [f"### {task}: {protocol}", "",
                  "| labels | metric | " + " | ".join(arm_title(a, baseline_name) for a in arms) + " |",
                  "| --- | --- |" + " ---: |" * len(arms)]
        for row in rows:
            arrow = "" if row["higher_is_better"] else " (lower is better)"
            lines.append(f"| {labels_text(row)} | {row['metric']}{arrow} | "
                         + " | ".join(interval_text(row["arms"].get(a)) for a in arms) + " |")
        compared = [o for o in entry["objectives"] if any(o in r["differences"] for r in rows)]
        if compared:
            lines += ["", "| labels | metric | " + " | ".join(f"{o} − random init" for o in compared) + " |",
                      "| --- | --- |" + " ---: |" * len(compared)]
            for row in rows:
                cells = []
                for name in compared:
                    d = row["differences"].get(name)
                    text = interval_text(d, signed=True)
                    cells.append(f"**{text}**" if d and d["excludes_zero"] else text)
                lines.append(f"| {labels_text(row)} | {row['metric']} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def noise_lines(results: Mapping[str, Any], task: str) -> list[str]:
    """Where the noise of each difference with several label draws per seed comes from (the
    first metric of each protocol and fraction), and the half-width of its interval that more
    draws or more seeds would give (:class:`~ultrassl.benchmark.stats.NoiseSplit`)."""
    entry = results["tasks"][task]
    seen, lines = set(), []
    for row in entry["rows"]:
        if (row["protocol"], row["fraction"]) in seen:
            continue
        seen.add((row["protocol"], row["fraction"]))
        for name, found in row["differences"].items():
            if not found.get("noise"):
                continue
            split = NoiseSplit(**found["noise"])
            draws, seeds = split.draws, split.seeds
            lines.append(f"| {row['protocol']}, {labels_text(row)} | {row['metric']} | {name} | {split.draw_sd:.3f} | "
                         f"{split.seed_sd:.3f} | ±{split.half_width(draws, seeds):.3f} | "
                         f"±{split.half_width(3 * draws, seeds):.3f} | ±{split.half_width(draws, 2 * seeds):.3f} |")
    if not lines:
        return []
    return [f"Where the noise of the differences comes from ({task}): a draw's difference varies about its "
            "seed's mean by the draws' sd (which labelled subjects a draw holds), and the seeds' means by the "
            "seeds' sd beyond what the draws put into them. From these, the interval's half-width as run, with "
            "three times the label draws (`--label-draws`) and with twice the seeds (`--seeds`):", "",
            "| labels | metric | objective − random init | draws' sd | seeds' sd | half-width as run "
            "| 3 x the draws | 2 x the seeds |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |", *lines, ""]


def format_markdown(results: Mapping[str, Any], baseline_names: Mapping[str, str | None] | None = None) -> str:
    """``results.md``."""
    machine_ = results["machine"]
    wall = results["wall_seconds"]
    lines = [f"# Transfer benchmark: profile {results['profile']['name']}", "",
             f"Simulator seed {results['sim_seed']}, seeds {', '.join(map(str, results['seeds']))}. "
             f"Machine: {machine_['cpu'] or 'unknown CPU'}, {machine_['cores']} cores"
             + (f", {machine_['gpu']}" if machine_.get("gpu") else "") + f"; torch {machine_['torch']}, "
             f"{machine_['platform']}. Compute: {wall.get('total', 0) / 60:.1f} min in the runs recorded "
             f"({', '.join(f'{k} {v / 60:.1f} min' for k, v in wall.items() if k != 'total')}).", "",
             f"Every cell is the mean over the seeds with its {results['confidence']:.0%} Student-t interval "
             "`mean [low, high]`. Arms of one comparison share the backbone, the training budget, the labelled "
             "subjects and the seed; only the encoder's start differs. A difference table gives, per objective, "
             "the paired difference objective − random init (seed by seed) with its interval; **bold**: the "
             "interval excludes 0, so the difference is larger than the seeds' spread explains. For metrics "
             "where lower is better a negative difference is the improvement. Where a row says `(k draws)`, "
             "every seed was run on k subsets of the labelled subjects and its value is their mean (the same "
             "subsets for every arm); the interval still counts seeds.", ""]
    if results["defects"]:
        lines += ["## Defects", "", *[f"- {d}" for d in results["defects"]], ""]
    else:
        lines += ["No defects: every comparison's arms had equal budgets, and no metric is missing or constant "
                  "across arms and seeds.", ""]
    if results["pretraining"]:
        lines += ["## Pretraining", "", "| objective | seed | steps | batch | minutes | held-out pretext metrics |",
                  "| --- | ---: | ---: | ---: | ---: | --- |"]
        for objective, by_seed in results["pretraining"].items():
            for seed, entry in by_seed.items():
                metrics = ", ".join(f"{k} {v:.3f}" for k, v in entry["val_metrics"].items())
                lines.append(f"| {objective} | {seed} | {entry['steps']} | {entry['budget']['batch_size']} | "
                             f"{entry['seconds'] / 60:.1f} | {metrics} |")
        lines.append("")
    for task, entry in results["tasks"].items():
        lines += [f"## {task}", ""]
        if entry["reference_note"]:
            lines += [entry["reference_note"], ""]
        lines += tables(results, task, (baseline_names or {}).get(task))
        lines += noise_lines(results, task)
        for block in entry["per_class"]:
            arms = [a for a in entry["arms"] if any(a in by_arm for by_arm in block["classes"].values())]
            lines += [f"Per-class F1, {block['protocol']}, {fraction_text(block['fraction'])} of the labels:", "",
                      "| class | " + " | ".join(arm_title(a, (baseline_names or {}).get(task))
                                                for a in arms) + " |",
                      "| --- |" + " ---: |" * len(arms)]
            for name, by_arm in block["classes"].items():
                lines.append(f"| {name} | " + " | ".join(interval_text(by_arm.get(a)) for a in arms) + " |")
            lines.append("")
    if results.get("figures"):
        lines += ["## Figures", "", *[f"- `{f}`" for f in results["figures"]], ""]
    return "\n".join(lines)


def format_table(results: Mapping[str, Any], baseline_names: Mapping[str, str | None] | None = None) -> str:
    """The results tables for the terminal (the tables of ``results.md``, without per-class F1)."""
    lines = []
    for task in results["tasks"]:
        lines += tables(results, task, (baseline_names or {}).get(task))
    if results["defects"]:
        lines += ["defects:", *[f"  - {d}" for d in results["defects"]]]
    return "\n".join(lines)


def write_report(profile: Profile, out: str | os.PathLike, sim_seed: int, figures: bool = True) -> dict[str, Any]:
    """Build the results from ``out``'s records and write ``results.json``, ``results.md`` and
    the figures (``figures/*.png``)."""
    out = Path(out)
    results = build_results(profile, out, sim_seed)
    names = {task: _baseline_name(profile, out, task) for task in results["tasks"]}
    if figures:
        from ultrassl.benchmark.figures import draw_figures

        results["figures"] = [str(p.relative_to(out)) for p in draw_figures(results, out / "figures", names)]
    write_json(out / "results.json", results)
    text = format_markdown(results, names)
    write_text_atomically(out / "results.md", text)
    results["baseline_names"] = names
    return results
