"""Where a plane detector of a benchmark run errs on the simulated sweeps: which planes it
confuses, and how its errors on Background frames depend on how near a standard plane they lie.

The simulator labels a frame with a plane only when its slice lies within the plane's tolerance
(:func:`ultrassl.synth.fetal_sweep.plane_offsets` gives every frame's offset in tolerances), so a
Background frame at 1.5 tolerances looks much like the plane. For every plane-detection model
of a ``ultrassl benchmark`` output folder (default: the supervised ceiling of each seed) this
runs the model on the held-out sweeps and prints, with the project's metrics:

1. macro-F1 on every held-out frame (the benchmark's figure);
2. the plane frames it gets right, calls Background, or calls another plane, and the pairs of
   planes it confuses most;
3. the share of Background frames it calls a plane, by offset from the nearest plane;
4. macro-F1 without the Background frames within ``--guard`` tolerances of a plane: what the
   frames next to the planes cost.

Usage::

    python benchmarks/plane_errors.py runs/benchmark/quick_planes [--models GLOB] [--guard 2]
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ultrassl.data.planes import BACKGROUND  # noqa: E402
from ultrassl.downstream.inference import LoopPredictor  # noqa: E402
from ultrassl.metrics.classification import classification_report  # noqa: E402
from ultrassl.synth.fetal_sweep import plan_fetal_sweeps, plane_offsets  # noqa: E402

BUCKETS = ((0.0, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0), (3.0, np.inf))


def held_out_frames(run: Path) -> tuple[list[Path], list[np.ndarray], list[np.ndarray]]:
    """The held-out sweeps of a run, their frames' labels and their frames' plane offsets."""
    data = run / "data" / "fetal_sweeps"
    simulated = json.loads((data / "simulated.json").read_text())
    if simulated.get("simulator") != "fetal_sweep":
        raise SystemExit(f"{data}: not simulated fetal sweeps")
    options = simulated["options"]
    test = set(json.loads((data / "pools.json").read_text())["pools"]["test"])
    table = pd.read_csv(data / "annotations.csv")
    plans = plan_fetal_sweeps(len(table), options["n_frames"], tuple(options["size"]), simulated["sim_seed"],
                              options["sweeps_per_subject"])
    paths, labels, offsets = [], [], []
    for row, plan in zip(table.itertuples(), plans):
        if row.subject not in test:
            continue
        written = pd.read_csv(data / row.frame_labels).plane.tolist()
        if written != plan.labels:
            raise SystemExit(f"{data / row.frame_labels}: the labels differ from the simulator's plan")
        paths.append(data / row.path)
        labels.append(np.array(written))
        offsets.append(plane_offsets(plan))
    return paths, labels, offsets


def errors_of(model: Path, paths: list[Path], labels: list[np.ndarray], offsets: list[np.ndarray],
              guard: float) -> dict:
    predictor = LoopPredictor(model)
    predicted, names = [], []
    for path in paths:
        out = predictor.predict(path)
        names = list(out.class_names)
        predicted.append(np.array([names[k] for k in np.asarray(out.predicted)]))
    truth, guess, offset = np.concatenate(labels), np.concatenate(predicted), np.concatenate(offsets)
    index = {name: k for k, name in enumerate(names)}
    target = torch.tensor([index[name] for name in truth])
    preds = torch.tensor([index[name] for name in guess])
    background = truth == BACKGROUND
    near = background & (offset <= guard)
    plane = ~background
    confusions = collections.Counter((t, g) for t, g in zip(truth[plane], guess[plane]) if g != t and g != BACKGROUND)
    return {
        "macro_f1": classification_report(preds, target, len(names), names)["macro_f1"],
        "macro_f1_without_near": classification_report(preds, torch.where(torch.from_numpy(near), -1, target),
                                                       len(names), names)["macro_f1"],
        "near": int(near.sum()), "background": int(background.sum()), "planes": int(plane.sum()),
        "plane_right": float(np.mean(guess[plane] == truth[plane])),
        "plane_as_background": float(np.mean(guess[plane] == BACKGROUND)),
        "confusions": confusions.most_common(4),
        "background_as_plane": [
            (lo, hi, int(m.sum()), float(np.mean(guess[m] != BACKGROUND)) if m.any() else float("nan"))
            for lo, hi in BUCKETS for m in [background & (offset > lo) & (offset <= hi)]
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="an ultrassl benchmark output folder with simulated fetal sweeps")
    parser.add_argument("--models", default="runs/plane_detection/supervised/seed*/model.ckpt",
                        help="plane-detection checkpoints, a glob under the run folder")
    parser.add_argument("--guard", type=float, default=2.0, help="tolerances around a plane left out in 4.")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    models = sorted(args.run.glob(args.models))
    if not models:
        raise SystemExit(f"no checkpoints match {args.run / args.models}")
    paths, labels, offsets = held_out_frames(args.run)
    results = []
    for model in models:
        r = errors_of(model, paths, labels, offsets, args.guard)
        results.append(r)
        print(f"{model.relative_to(args.run)}: macro-F1 {r['macro_f1']:.3f}; without the {r['near']} of "
              f"{r['background']} Background frames within {args.guard:g} tolerances of a plane "
              f"{r['macro_f1_without_near']:.3f}")
        print(f"  plane frames ({r['planes']}): right {r['plane_right']:.2f}, called Background "
              f"{r['plane_as_background']:.2f}; most confused: "
              + ", ".join(f"{t} as {g} ({n})" for (t, g), n in r["confusions"]))
        print("  Background frames called a plane, by offset from the nearest plane (tolerances): "
              + ", ".join(f"({lo:g}, {hi:g}] {share:.2f} of {n}" for lo, hi, n, share in r["background_as_plane"]))
    if len(results) > 1:
        mean = {key: np.mean([r[key] for r in results]) for key in ("macro_f1", "macro_f1_without_near")}
        print(f"mean over {len(results)} models: macro-F1 {mean['macro_f1']:.3f}, without the near Background "
              f"frames {mean['macro_f1_without_near']:.3f}")


if __name__ == "__main__":
    main()
