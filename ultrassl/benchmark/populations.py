"""Across simulated populations: does a gain hold whichever subjects the simulator draws?

A benchmark folder answers for one simulated population (``--sim-seed``): its intervals count
seeds, so they say whether a difference is larger than the seeds' spread *on those subjects*.
Whether an objective helps "with any seed of the simulator" is a question over populations.
``ultrassl benchmark populations DIR [DIR ...]`` reads the ``results.json`` of folders run on
different simulator seeds and, for every comparison they hold (task, protocol, label fraction,
metric, objective against random init), gives

* each population's paired difference with its interval over seeds (as its own report gives it);
* how many populations put that interval above 0, below 0, or across it (``better``,
  ``worse``, ``within noise``, in the direction the metric improves);
* the mean of the populations' differences with a Student-t interval over the populations:
  each population is one value, so this interval counts populations, and what it measures is
  whether the gain is there from one draw of subjects to the next. Where every population's
  gain is about the same, it is much narrower than one population's interval over five seeds;
  where the gain depends on the population, it is wide.

Populations are counted once: two folders with the same simulator seed are refused, as are
folders without a finished report. A population pools only with those run under the same
profile settings (those recorded in ``results.json``, whatever ``--seeds``, ``--objectives``,
``--tasks``, label draws or random-init networks ran of them): a ceiling of 150 steps and one
of 1,000 are not one quantity, so folders of the demo and of the quick profile, or of a
profile edited between runs, are summarised side by side, each group on its own. The report
names each folder's profile, finished seeds and machine. Populations run with the same seeds
share random init's networks (their weights follow from the seed alone), so the interval over
populations holds for those networks; a profile that averages several per seed
(``random_inits``) takes most of their luck out.

    ultrassl benchmark populations runs/quick_s97 runs/quick_s131 runs/quick_s173 --metrics macro_f1
    ultrassl benchmark populations runs/*/ --out runs/populations.md    # also writes populations.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ultrassl.atomic import write_text_atomically
from ultrassl.benchmark.pools import fraction_text
from ultrassl.benchmark.report import interval_text
from ultrassl.benchmark.runner import config_digest
from ultrassl.benchmark.stats import CONFIDENCE, mean_interval, verdict
from ultrassl.benchmark.store import read_json, write_json
from ultrassl.errors import UltrasslError

VERDICTS = ("better", "within noise", "worse")


class PopulationError(UltrasslError):
    """A folder that cannot be one population of the comparison (no report, or a simulator
    seed another folder already holds)."""


@dataclass(frozen=True)
class Population:
    """One benchmark folder's results: a simulated population under one profile."""

    folder: Path
    sim_seed: int
    profile: str
    seeds: tuple[int, ...]
    machine: str
    results: Mapping[str, Any]


def read_population(folder: str | Path) -> Population:
    """The finished report of one benchmark folder."""
    folder = Path(folder)
    try:
        results = read_json(folder / "results.json")
    except (ValueError, OSError) as exc:  # a truncated or unreadable report
        raise PopulationError(f"{folder / 'results.json'}: cannot be read ({exc})") from exc
    if not isinstance(results, dict) or not {"tasks", "sim_seed", "profile"} <= set(results):
        raise PopulationError(f"{folder}: no benchmark report (results.json) here; run or resume the benchmark "
                              "into this folder first")
    machine = results.get("machine") or {}
    described = ", ".join(str(v) for v in (machine.get("cpu"), f"{machine.get('cores')} cores"
                                           if machine.get("cores") else None) if v)
    return Population(folder, int(results["sim_seed"]), str(results["profile"]["name"]),
                      tuple(int(s) for s in results.get("seeds", [])), described or "unknown machine", results)


def read_populations(folders: Iterable[str | Path]) -> list[Population]:
    """The folders' reports, in the order given; each simulator seed once."""
    populations: list[Population] = []
    for folder in folders:
        population = read_population(folder)
        same = [p for p in populations if p.sim_seed == population.sim_seed]
        if same:
            raise PopulationError(
                f"{population.folder} and {same[0].folder} both hold simulator seed {population.sim_seed}: a "
                "population counts once (give one of them)")
        populations.append(population)
    if not populations:
        raise PopulationError("no benchmark folders given")
    return populations


def _settings_digest(results: Mapping[str, Any]) -> str:
    settings = dict(results["profile"].get("settings") or {})
    for key in ("name", "seeds"):  # the seeds run say how much was run, not how
        settings.pop(key, None)
    return config_digest(_without_repeats(settings))


def _without_repeats(node: Any) -> Any:
    """The settings without any ``label_draws`` or ``random_inits``: like the seeds, the label
    draws and random-init networks per seed say how precisely a population's difference was
    measured, not what was measured."""
    if isinstance(node, Mapping):
        return {k: _without_repeats(v) for k, v in node.items() if k not in ("label_draws", "random_inits")}
    if isinstance(node, list):
        return [_without_repeats(v) for v in node]
    return node


def profile_groups(populations: Sequence[Population]) -> dict[int, str]:
    """Each population's group: populations pool only with those run under the same profile
    settings. A group is named by its profile; a profile met with other settings (edited between
    runs) gets ``name (settings 2)``."""
    digests: dict[str, str] = {}
    named: dict[str, int] = {}
    groups = {}
    for population in populations:
        digest = _settings_digest(population.results)
        if digest not in digests:
            named[population.profile] = named.get(population.profile, 0) + 1
            count = named[population.profile]
            digests[digest] = population.profile + (f" (settings {count})" if count > 1 else "")
        groups[population.sim_seed] = digests[digest]
    return groups


def _across(per_population: Mapping[str, Mapping[str, Any]], groups: Mapping[int, str],
            higher_is_better: bool | None) -> dict[str, Any]:
    """Per group, the counts of the populations' verdicts and the interval over their means."""
    found = {}
    for group in dict.fromkeys(groups.values()):
        members = [v for s, v in per_population.items() if groups[int(s)] == group]
        if not members:
            continue
        interval = mean_interval(m["mean"] for m in members)
        entry: dict[str, Any] = interval.as_dict()
        if higher_is_better is not None:
            entry["counts"] = {v: sum(m.get("verdict") == v for m in members) for v in VERDICTS}
            entry["verdict"] = verdict(interval, higher_is_better)
        found[group] = entry
    return found


def summarize(populations: Sequence[Population], metrics: Sequence[str] | None = None,
              tasks: Sequence[str] | None = None) -> dict[str, Any]:
    """Every comparison and arm of the populations' reports, per population and, per group of
    populations run under one profile's settings, across them (see the module docstring).
    ``metrics`` and ``tasks`` keep only those."""
    groups = profile_groups(populations)
    comparisons: dict[tuple, dict[str, Any]] = {}
    arms: dict[tuple, dict[str, Any]] = {}
    for population in populations:
        for task, entry in population.results["tasks"].items():
            if tasks and task not in tasks:
                continue
            for row in entry["rows"]:
                if metrics and row["metric"] not in metrics:
                    continue
                head = {"task": task, "protocol": row["protocol"], "fraction": float(row["fraction"]),
                        "metric": row["metric"]}
                for arm, value in row.get("arms", {}).items():
                    found = arms.setdefault((*head.values(), arm), {**head, "arm": arm, "populations": {}})
                    found["populations"][str(population.sim_seed)] = {key: value.get(key)
                                                                      for key in ("mean", "low", "high", "n")}
                for objective, difference in row.get("differences", {}).items():
                    found = comparisons.setdefault((*head.values(), objective), {
                        **head, "objective": objective, "higher_is_better": bool(row["higher_is_better"]),
                        "populations": {}})
                    found["populations"][str(population.sim_seed)] = {
                        key: difference.get(key) for key in ("mean", "low", "high", "n", "verdict")
                    } | {"draws": int(row.get("draws", 1))}
    for found in comparisons.values():
        found["across"] = _across(found["populations"], groups, found["higher_is_better"])
    for found in arms.values():
        found["across"] = _across(found["populations"], groups, None)
    # tasks, protocols, metrics, objectives and arms in the order the reports first name them;
    # label fractions from the fewest labels up
    keys = [*arms, *comparisons]
    first_seen = [list(dict.fromkeys(key[i] for key in keys)) for i in range(5)]

    def order(key: tuple) -> tuple:
        return tuple(key[i] if i == 2 else first_seen[i].index(key[i]) for i in range(5))

    finished = {p.sim_seed: max([int(c["populations"][str(p.sim_seed)]["n"] or 0) for c in comparisons.values()
                                 if str(p.sim_seed) in c["populations"]] or [0]) for p in populations}
    return {
        "confidence": CONFIDENCE,
        "populations": [{"folder": str(p.folder), "sim_seed": p.sim_seed, "profile": p.profile,
                         "group": groups[p.sim_seed], "seeds": list(p.seeds), "seeds_finished": finished[p.sim_seed],
                         "machine": p.machine} for p in populations],
        "groups": list(dict.fromkeys(groups.values())),
        "comparisons": [comparisons[key] for key in sorted(comparisons, key=order)],
        "arms": [arms[key] for key in sorted(arms, key=order)],
    }


def _cell(entry: Mapping[str, Any] | None, bold: bool = False) -> str:
    if entry is None:
        return ""
    text = interval_text(entry, signed="verdict" in entry)
    return f"**{text}**" if bold and text and text != "n/a" else text


def format_markdown(summary: Mapping[str, Any]) -> str:
    """The report: the populations, then per task its comparisons and its arms."""
    populations = summary["populations"]
    groups = summary["groups"]
    # populations side by side, a group's together
    ordered = [p for g in groups for p in populations if p["group"] == g]
    seeds = [str(p["sim_seed"]) for p in ordered]
    lines = ["# Across simulated populations", "",
             "| simulator seed | profile | seeds with results | machine | folder |",
             "| ---: | --- | ---: | --- | --- |"]
    lines += [f"| {p['sim_seed']} | {p['group']} | {p['seeds_finished']} of {len(p['seeds'])} | {p['machine']} "
              f"| `{p['folder']}` |" for p in ordered]
    lines += ["", f"Each population's cell is its paired difference objective − random init, mean over its seeds "
              f"with the {summary['confidence']:.0%} Student-t interval over those seeds, as its own report gives "
              "it (**bold**: the interval excludes 0). Populations pool only with those run under the same "
              "profile settings: per profile, *better / within / worse* counts the populations whose interval "
              "lies on the improving side of 0, across it, or on the other side, and *across* is the mean of "
              "the populations' differences with a t-interval over the populations (each population one "
              "value): **bold** where the gain, or the loss, is there from one draw of subjects to the next.", ""]
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for comparison in summary["comparisons"]:
        by_task.setdefault(comparison["task"], []).append(comparison)
    for task, comparisons in by_task.items():
        lines += [f"## {task}", "",
                  "| protocol | labels | metric | objective | " + " | ".join(f"seed {s}" for s in seeds) + " | "
                  + " | ".join(f"better / within / worse, {g} | across, {g}" for g in groups) + " |",
                  "| --- | --- | --- | --- |" + " ---: |" * len(seeds) + " :---: | ---: |" * len(groups)]
        for c in comparisons:
            cells = [_cell(c["populations"].get(s), c["populations"].get(s, {}).get("verdict") != "within noise")
                     for s in seeds]
            for g in groups:
                a = c["across"].get(g)
                cells += ["", ""] if a is None else [" / ".join(str(a["counts"][v]) for v in VERDICTS),
                                                     _cell(a, a["verdict"] != "within noise")]
            lines.append(f"| {c['protocol']} | {fraction_text(c['fraction'])} | {c['metric']} | {c['objective']} | "
                         + " | ".join(cells) + " |")
        lines.append("")
        rows = [a for a in summary["arms"] if a["task"] == task]
        if rows:
            lines += [f"Every arm of {task}: mean over each population's seeds [interval], and per profile the mean "
                      "over its populations [interval over the populations]:", "",
                      "| protocol | labels | metric | arm | " + " | ".join(f"seed {s}" for s in seeds) + " | "
                      + " | ".join(f"across, {g}" for g in groups) + " |",
                      "| --- | --- | --- | --- |" + " ---: |" * (len(seeds) + len(groups))]
            for a in rows:
                lines.append(f"| {a['protocol']} | {fraction_text(a['fraction'])} | {a['metric']} | {a['arm']} | "
                             + " | ".join(_cell(a["populations"].get(s)) for s in seeds) + " | "
                             + " | ".join(_cell(a["across"].get(g)) for g in groups) + " |")
            lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ultrassl benchmark populations", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="benchmark output folders, one per simulator seed")
    parser.add_argument("--metrics", nargs="+", help="only these metrics (e.g. macro_f1 top1)")
    parser.add_argument("--tasks", nargs="+", help="only these tasks")
    parser.add_argument("--out", type=Path,
                        help="write the report here (Markdown) and its numbers beside it (.json)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        summary = summarize(read_populations(args.folders), args.metrics, args.tasks)
    except UltrasslError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not summary["comparisons"]:
        print("error: the folders hold no comparison with random init"
              + (" for the metrics or tasks asked" if args.metrics or args.tasks else ""), file=sys.stderr)
        return 2
    text = format_markdown(summary)
    print(text)
    if args.out:
        write_text_atomically(args.out, text + "\n")
        write_json(args.out.with_suffix(".json"), summary)
        print(f"populations: {args.out}  {args.out.with_suffix('.json')}")
    return 0
