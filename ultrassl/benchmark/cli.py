"""``ultrassl benchmark``: does pretraining with objective X help on task Y, by how much,
beyond the noise of the seeds?

    ultrassl benchmark --out runs/benchmark/quick --profile quick --sim-seed 0
    ultrassl benchmark --out runs/bench --profile my_profile.yaml --sim-seed 1 --seeds 5 --tasks plane_detection
    ultrassl benchmark --out runs/benchmark/quick --profile quick --sim-seed 0 --report-only
    ultrassl benchmark --out runs/benchmark/quick --profile quick --sim-seed 0 --label-draws 9   # more label subsets
    ultrassl benchmark populations runs/bench_s0 runs/bench_s1 runs/bench_s2    # across simulator seeds

Writes ``results.json``, ``results.md`` and ``figures/`` into the output folder, after every
seed; a rerun into the same folder resumes (finished runs are skipped) and refuses other
settings. ``ultrassl benchmark populations`` reads several such folders, one per simulator
seed, and says whether each gain holds across them (:mod:`ultrassl.benchmark.populations`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ultrassl.benchmark.profile import Profile, load_profile, select
from ultrassl.benchmark.report import format_table, write_report
from ultrassl.benchmark.runner import Runner


def run_benchmark(profile: str | Path | Profile, out: str | Path, sim_seed: int = 0, *, seeds: int | None = None,
                  objectives: Sequence[str] | None = None, tasks: Sequence[str] | None = None,
                  label_draws: int | None = None, random_inits: int | None = None,
                  log: Callable[[str], None] = print, progress: bool = False, report_only: bool = False,
                  figures: bool = True) -> dict[str, Any]:
    """Run (or resume) a profile into ``out`` and write its report; returns ``results.json``'s content."""
    profile = profile if isinstance(profile, Profile) else load_profile(profile)
    profile = select(profile, seeds, objectives, tasks, label_draws, random_inits)
    out = Path(out)
    started = time.perf_counter()
    runner = Runner(profile, out, sim_seed, log, progress)

    def report(_: Runner) -> None:  # the tables after every seed; the figures once, at the end
        write_report(profile, out, sim_seed, figures=False)
        log(f"      report: {out / 'results.md'}")

    if not report_only:
        runner.run(on_seed_done=report)
    results = write_report(profile, out, sim_seed, figures)
    log(f"{runner.trained} runs done, {runner.reused} reused, in {(time.perf_counter() - started) / 60:.1f} min")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    from jsonargparse import ArgumentError

    from ultrassl.errors import UltrasslError

    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "populations":
        from ultrassl.benchmark.populations import main as populations_main

        return populations_main(args[1:])
    parser = argparse.ArgumentParser(prog="ultrassl benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output folder (a rerun resumes it)")
    parser.add_argument("--profile", required=True,
                        help="demo, quick, full (configs/benchmark/<name>.yaml) or a profile YAML file")
    parser.add_argument("--sim-seed", type=int, default=0, help="the simulator's seed: the data and the pools")
    parser.add_argument("--seeds", type=int, help="run this many seeds (default: the profile's list)")
    parser.add_argument("--label-draws", type=int,
                        help="label subsets per seed below 100 %% of the labels (default: the profile's; "
                             "a protocol that sets its own keeps it)")
    parser.add_argument("--random-inits", type=int,
                        help="random-init networks averaged per seed and label draw (default: the profile's; "
                             "a protocol that sets its own keeps it)")
    parser.add_argument("--objectives", nargs="+", help="only these objectives of the profile")
    parser.add_argument("--tasks", nargs="+", help="only these tasks of the profile")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from the finished runs")
    parser.add_argument("--no-figures", dest="figures", action="store_false", help="skip the PNG figures")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(args)
    try:
        results = run_benchmark(args.profile, args.out, args.sim_seed, seeds=args.seeds, objectives=args.objectives,
                                tasks=args.tasks, label_draws=args.label_draws, random_inits=args.random_inits,
                                progress=args.progress, report_only=args.report_only, figures=args.figures)
    except (UltrasslError, ArgumentError, ValueError, FileNotFoundError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    print(format_table(results, results.get("baseline_names")))
    print(f"results: {args.out / 'results.json'}  {args.out / 'results.md'}")
    return 0
