"""Do the encoders of a motion benchmark tell which way a motion runs, or only what kind it is?

The motion classes come in pairs that are time reversals of each other (Expanding and
Contracting, MoveLeft and MoveRight, ...). A linear probe can be wrong in two ways: it takes a
motion for another kind (a move for a rotation), or it gets the kind right and the direction
wrong. This script refits the benchmark's linear probe (the task config, labels and budget of
its runs, at one label fraction, first label draw) on every encoder of a finished motion
benchmark folder (each objective's pretrained encoder and random init, every seed), scores the
held-out clips, and splits the probe's accuracy into

* kind accuracy: the predicted class is in the true class's pair (chance 1/4);
* direction accuracy: of those, the fraction with the right direction (chance 1/2);

as mean [95 % t-interval] over the seeds, and each objective minus random init paired by seed.
The probes are fitted in a temporary folder; of the benchmark folder only the pool manifests
are written again, as the benchmark itself writes them (the same bytes).

Usage::

    ultrassl benchmark --out runs/benchmark/motion --profile motion --sim-seed 0
    python benchmarks/motion_directions.py runs/benchmark/motion [--fraction 1.0]

(or a quick-profile folder run with ``--tasks action_recognition``)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ultrassl.benchmark.profile import load_profile, select  # noqa: E402
from ultrassl.benchmark.report import interval_text  # noqa: E402
from ultrassl.benchmark.runner import RECORD, Runner  # noqa: E402
from ultrassl.benchmark.stats import mean_interval, paired_difference  # noqa: E402
from ultrassl.benchmark.store import read_json  # noqa: E402
from ultrassl.downstream.arms import train_arm  # noqa: E402
from ultrassl.downstream.tasks import get_task  # noqa: E402
from ultrassl.synth.motion import MOTION_PAIRS  # noqa: E402

TASK = "action_recognition"


def kind_and_direction(confusion: np.ndarray, class_names: list[str]) -> dict[str, float]:
    """Accuracy, kind accuracy and direction accuracy (given the kind) of a confusion matrix
    ``(K, K)`` (true x predicted) over the motion classes."""
    pair_of = {name: i for i, pair in enumerate(MOTION_PAIRS) for name in pair}
    kinds = np.array([pair_of[name] for name in class_names])
    total = confusion.sum()
    same_kind = kinds[:, None] == kinds[None, :]
    right_kind = confusion[same_kind].sum()
    right = np.trace(confusion)
    return {"accuracy": right / total, "kind_accuracy": right_kind / total,
            "direction_accuracy": right / right_kind if right_kind else float("nan")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a finished benchmark folder with the action_recognition task")
    parser.add_argument("--fraction", type=float, default=1.0, help="label fraction of the probe (default 1.0)")
    args = parser.parse_args(argv)
    saved = read_json(args.out / "benchmark.json")
    if saved is None:
        parser.error(f"{args.out}: no benchmark.json (not a benchmark folder)")
    profile = load_profile(saved["profile"])
    if TASK not in profile.tasks:
        parser.error(f"{args.out}: the benchmark has no {TASK} task")
    # the objectives of the task's domain that were pretrained in this folder
    pretrained = [o.name for o in profile.objectives_of(profile.tasks[TASK].domain)
                  if (args.out / "pretrain" / o.name).is_dir()]
    profile = select(profile, objectives=pretrained, tasks=[TASK])
    runner = Runner(profile, args.out, int(saved["sim_seed"]), log=lambda _: None)
    runner.prepare_data()  # reuses the simulated data and pools of the folder
    plan = profile.tasks[TASK]
    linear = next(p for p in plan.protocols if p.name == "linear")
    task = get_task(TASK)
    scores: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for seed in profile.seeds:
            checkpoints = {o.name: read_json(args.out / "pretrain" / o.name / f"seed{seed}" / RECORD)
                           for o in profile.objectives_of(plan.domain)}
            if missing := [name for name, record in checkpoints.items() if record is None]:
                parser.error(f"{args.out}: seed {seed} of {', '.join(missing)} was not pretrained")
            for name, encoder in runner.encoders(plan, seed, checkpoints).items():
                cfg = runner.arm_cfg(plan, encoder, "linear", seed, args.fraction, linear.max_steps, linear.batch_size)
                arm = train_arm(cfg, Path(scratch) / f"{name}_seed{seed}", save_model=False)
                report = task.score(arm.model, arm.datamodule)["report"]
                scores.setdefault(name, {})[seed] = kind_and_direction(np.array(report["confusion"]),
                                                                       list(report["class_names"]))
                print(f"seed {seed} {name:>24}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores[name][seed].items()),
                      flush=True)
    reference = scores.pop("random_init")
    metrics = ("accuracy", "kind_accuracy", "direction_accuracy")
    print(f"\nlinear probe at {args.fraction:.0%} of the labels, {len(profile.seeds)} seeds; "
          "chance: accuracy 1/8, kind 1/4, direction 1/2")
    print(f"| arm | {' | '.join(metrics)} |\n|---|{'---:|' * len(metrics)}")
    for name, by_seed in [("random_init", reference), *scores.items()]:
        cells = [mean_interval(v[m] for v in by_seed.values()) for m in metrics]
        print(f"| {name} | " + " | ".join(interval_text(c) for c in cells) + " |")
    for name, by_seed in scores.items():
        cells = [paired_difference({s: v[m] for s, v in by_seed.items()}, {s: v[m] for s, v in reference.items()})
                 for m in metrics]
        print(f"| {name} − random init | " + " | ".join(interval_text(c, signed=True) for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
