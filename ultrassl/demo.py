"""The main job on the embedded default data: ``make demo``.

Runs the demo profile of the transfer benchmark (``configs/benchmark/demo.yaml``):

1. simulates fetal-ultrasound sweeps (multi-frame DICOM and mp4, with plane labels and gaze
   fixations), indexes and validates them through the same readers as clinical data, and
   splits the subjects into an unlabelled pretraining pool, a labelled pool and held-out
   test subjects;
2. for each seed, pretrains anatomy-aware order + geometry with ``ultrassl fit`` on the
   shipped config ``configs/pretrain/order_geometry.yaml`` (the same code path and file as a
   user's run), then transfers it to standard plane detection beside random initialisation
   with the same backbone, budget, labels and seed, the supervised ceiling and the raw-pixel
   probe;
3. prints the held-out order accuracy against chance, the results table (mean over the
   seeds with 95 % intervals, and the paired difference from random init) and where the
   results, checkpoints and logs are.

A rerun into the same folder resumes: finished runs are reused.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ultrassl.errors import UltrasslError

#: the benchmark profile ``make demo`` runs
DEMO_PROFILE = Path(__file__).resolve().parents[1] / "configs" / "benchmark" / "demo.yaml"


def pretext_lines(results: dict) -> list[str]:
    """One line per objective with an order head: its held-out order accuracy over the seeds
    against chance."""
    from ultrassl.benchmark.report import interval_text
    from ultrassl.benchmark.stats import mean_interval

    lines = []
    for objective, by_seed in results["pretraining"].items():
        accuracy = [entry["val_metrics"].get("val/order_acc") for entry in by_seed.values()]
        classes = {entry.get("order_classes") for entry in by_seed.values()} - {None}
        if not classes or not any(a is not None for a in accuracy):
            continue
        k = classes.pop()
        steps = sorted({entry["steps"] for entry in by_seed.values()})
        lines.append(f"{objective}: held-out order accuracy {interval_text(mean_interval(accuracy))} over "
                     f"{len(by_seed)} seeds ({'/'.join(map(str, steps))} steps) against chance 1/{k} = {1 / k:.3f}")
    return lines


def run_demo(out: Path, profile: str | Path = DEMO_PROFILE, sim_seed: int = 0, seeds: int | None = None,
             progress: bool = False) -> dict:
    """Run (or resume) the demo profile into ``out``; returns the benchmark's results."""
    from ultrassl.benchmark.cli import run_benchmark
    from ultrassl.benchmark.profile import load_profile, select
    from ultrassl.benchmark.report import format_table
    from ultrassl.benchmark.runner import Runner
    from ultrassl.engine.cli import summary_line

    chosen = select(load_profile(profile), seeds)
    objectives = ", ".join(o.name for o in chosen.objectives_of_tasks()) or "no objective"
    started = time.perf_counter()
    print(f"[1/3] simulating, indexing and splitting the data of profile {chosen.name!r} into {out / 'data'}",
          flush=True)
    Runner(chosen, out, sim_seed).prepare_data()
    print(f"      done in {time.perf_counter() - started:.0f} s", flush=True)
    print(f"[2/3] for each of {len(chosen.seeds)} seeds: pretraining {objectives}, then transfer to "
          f"{', '.join(chosen.tasks)} beside random init with the same budget", flush=True)
    results = run_benchmark(chosen, out, sim_seed, progress=progress,
                            log=lambda line: print(line, flush=True))
    print("[3/3] results (mean over the seeds [95% interval]; bold differences exclude 0)", flush=True)
    print(format_table(results, results.get("baseline_names")), flush=True)
    for line in pretext_lines(results):
        print(line, flush=True)
    print(f"results: {out / 'results.md'}  {out / 'results.json'}  figures: {out / 'figures'}", flush=True)
    print(f"total {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    last = [entry for by_seed in results["pretraining"].values() for entry in by_seed.values()]
    if last:
        logs = str(Path(last[-1]["checkpoint"]).parents[1])
        print(summary_line({"checkpoint": last[-1]["checkpoint"], "logs": logs}), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ultrassl.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder (a rerun resumes it)")
    parser.add_argument("--profile", default=str(DEMO_PROFILE), help="benchmark profile (name or YAML file)")
    parser.add_argument("--sim-seed", type=int, default=0, help="the simulator's seed")
    parser.add_argument("--seeds", type=int, help="number of seeds (default: the profile's)")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        run_demo(args.out, args.profile, args.sim_seed, args.seeds, args.progress)
    except (UltrasslError, ValueError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
