"""The main job on the embedded default data: ``make demo``.

1. simulates fetal-ultrasound sweeps (multi-frame DICOM and mp4, with plane labels, gaze
   fixations and a subject-level train/val split);
2. indexes and validates them through the same readers as clinical data;
3. pretrains anatomy-aware order + geometry with ``ultrassl fit`` on the shipped config
   ``configs/pretrain/order_geometry.yaml`` (the same code path and file as a user's run);
4. prints the held-out order accuracy against chance and where the checkpoint and logs are,
   and writes the key numbers to ``<out>/pretrain/pretrain_summary.json``;
5. transfers the checkpoint to plane detection and gaze-saliency prediction on the same sweeps,
   each beside random initialisation trained with the same budget, prints the table and writes
   it to ``<out>/results.json`` and ``<out>/results.md`` (with figures).

Options after ``--`` go to ``ultrassl fit`` (e.g. ``-- --trainer.max_epochs=2``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from ultrassl.errors import UltrasslError

#: the shipped config the demo trains with
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pretrain" / "order_geometry.yaml"


def make_data(out: Path, n_sweeps: int, n_frames: int, seed: int) -> Path:
    """Simulate and index the sweeps; returns the manifest."""
    from ultrassl.data.indexing import index_folder
    from ultrassl.data.manifest import write_manifest
    from ultrassl.synth import synthesize_fetal_sweeps

    data_dir = out / "data" / "fetal_sweeps"
    t0 = time.perf_counter()
    print(f"[1/4] simulating {n_sweeps} fetal-ultrasound sweeps into {data_dir}", flush=True)
    synthesize_fetal_sweeps(data_dir, n_sweeps=n_sweeps, n_frames=n_frames, seed=seed)
    print(f"      done in {time.perf_counter() - t0:.1f} s", flush=True)

    t0 = time.perf_counter()
    manifest_path = data_dir / "manifest.csv"
    print(f"[2/4] indexing and validating {data_dir}", flush=True)
    manifest = index_folder(data_dir, annotations=data_dir / "annotations.csv")
    write_manifest(manifest, manifest_path)
    ok = manifest["status"] == "ok"
    print(
        f"      {int(ok.sum())} clips ok, {int((~ok).sum())} refused, "
        f"{int(manifest.loc[ok, 'n_frames'].sum())} frames in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    print(f"      manifest: {manifest_path}", flush=True)
    return manifest_path


def pretrain(manifest: Path, run_dir: Path, config: Path, extra_args: list[str]) -> dict:
    """``ultrassl fit -c config`` on the demo manifest; returns the numbers of the run."""
    from ultrassl.engine.cli import UltrasslCLI, summary_line

    args = ["fit", "-c", str(config), f"--data.init_args.manifest={manifest}",
            f"--trainer.default_root_dir={run_dir}", *extra_args]
    print(f"[3/4] pretraining order + geometry: ultrassl {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    cli = UltrasslCLI(args=args)
    wall = time.perf_counter() - t0

    trainer, datamodule = cli.trainer, cli.datamodule
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    classes = getattr(cli.model, "num_order_classes", None)
    best = getattr(trainer.checkpoint_callback, "best_model_score", None)
    val_set = getattr(datamodule, "val_set", None)
    summary = {
        "val_order_acc": metrics.get("val/order_acc", math.nan),
        "best_val_order_acc": float(best) if best is not None else math.nan,
        "chance": 1.0 / classes if classes else math.nan,
        "order_classes": classes,
        "val_clips": len(val_set) if val_set is not None else 0,
        "val_sweeps": len(val_set.dataset) if val_set is not None else 0,
        "val_geometry_mae": metrics.get("val/geometry_mae", math.nan),
        "steps": int(trainer.global_step),
        "epochs": int(trainer.current_epoch),
        "wall_time_s": round(wall, 1),
        **cli.summary,
        "manifest": str(manifest.resolve()),
        "config": str(config.resolve()),
    }
    (run_dir / "pretrain_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"held-out order accuracy: {summary['val_order_acc']:.3f} (best {summary['best_val_order_acc']:.3f}) "
        f"on {summary['val_clips']} clips of {summary['val_sweeps']} sweeps from held-out subjects; "
        f"chance 1/{classes} = {summary['chance']:.3f}",
        flush=True,
    )
    print(f"{summary['steps']} steps in {wall / 60:.1f} min; numbers in {run_dir / 'pretrain_summary.json'}")
    print(summary_line(cli.summary), flush=True)
    return summary


def transfer(checkpoint: Path, manifest: Path, out: Path, steps: int, seed: int) -> dict:
    """Plane detection and saliency from ``checkpoint`` beside random init; writes ``results.json``."""
    from ultrassl.downstream.evaluate import run_downstream_demo

    print(f"[4/4] transfer to plane detection and saliency, {steps} steps per run, "
          "beside random init with the same budget", flush=True)
    t0 = time.perf_counter()
    results = run_downstream_demo(checkpoint, manifest, out, max_steps=steps, seed=seed)
    print(f"      done in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
    return results


def run_demo(out: Path, n_sweeps: int, n_frames: int, seed: int, train: bool = True,
             config: Path = DEMO_CONFIG, extra_args: list[str] | None = None,
             downstream_steps: int = 150) -> Path:
    """Make the data, pretrain (with ``train``) and transfer (``downstream_steps`` > 0).

    Returns the manifest path.
    """
    manifest = make_data(out, n_sweeps, n_frames, seed)
    if train:
        summary = pretrain(manifest, out / "pretrain", config, list(extra_args or []))
        if downstream_steps > 0:
            transfer(Path(summary["checkpoint"]), manifest, out, downstream_steps, seed)
            from ultrassl.engine.cli import summary_line

            print(f"results: {out / 'results.json'}")
            print(summary_line(summary), flush=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(prog="python -m ultrassl.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    parser.add_argument("--sweeps", type=int, default=24, help="number of simulated sweeps")
    parser.add_argument("--frames", type=int, default=64, help="frames per sweep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help="ultrassl fit config")
    parser.add_argument("--no-train", dest="train", action="store_false", help="only make the data")
    parser.add_argument("--downstream-steps", type=int, default=150,
                        help="training steps of each downstream run (0 skips the transfer step)")
    args = parser.parse_args(own)
    try:
        run_demo(args.out, args.sweeps, args.frames, args.seed, args.train, args.config, extra,
                 args.downstream_steps)
    except UltrasslError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
