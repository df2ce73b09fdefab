"""Pretraining throughput of a config: training clips per second on this machine's devices.

Generates a small simulated fetal-sweep set, then runs ``ultrassl fit`` in-process with the
given config, unchanged but for the data path, the accelerator/precision given here and a short
budget, and prints clips/s over the timed steps (the first steps, which include worker start-up
and kernel selection, are not timed). Run it once per device to compare, e.g.::

    python benchmarks/training_throughput.py                                   # CPU, fp32
    python benchmarks/training_throughput.py --accelerator gpu --precision bf16-mixed

Several precisions run one after the other on the same data, and each prints its speed as a
ratio to the first's (one machine, one run: the ratio is what to compare across machines)::

    python benchmarks/training_throughput.py --config configs/pretrain/cvrl.yaml \
        --precision 32-true bf16-mixed
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import lightning as L

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ultrassl.data.indexing import index_folder, write_index  # noqa: E402
from ultrassl.engine.cli import UltrasslCLI  # noqa: E402
from ultrassl.engine.batch import batch_size_of  # noqa: E402
from ultrassl.synth import synthesize_fetal_sweeps  # noqa: E402


class ClipsPerSecond(L.Callback):
    """Counts clips and wall time over training steps after ``warmup_steps``."""

    def __init__(self, warmup_steps: int):
        self.warmup_steps = warmup_steps
        self.clips = 0
        self.start: float | None = None
        self.elapsed = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup_steps:
            _synchronise(pl_module)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.start is not None:
            self.clips += batch_size_of(batch)
            _synchronise(pl_module)
            self.elapsed = time.perf_counter() - self.start


def _synchronise(module: L.LightningModule) -> None:
    import torch

    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/pretrain/order_geometry.yaml")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", nargs="+", default=["32-true"], help="one or more Lightning precisions")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps")
    parser.add_argument("--warmup-steps", type=int, default=5)
    parser.add_argument("--sweeps", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=None, help="override the config's loader workers")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "sweeps"
        synthesize_fetal_sweeps(data, n_sweeps=args.sweeps, n_frames=64, seed=0)
        manifest, _ = write_index(index_folder(data, annotations=data / "annotations.csv", progress=False),
                                  data / "manifest.csv")
        first = None
        for precision in args.precision:
            speed = _clips_per_second(args, manifest, precision, Path(tmp) / f"run-{precision}")
            first = first or speed
            ratio = f"; {speed / first:.2f} x {args.precision[0]}" if precision != args.precision[0] else ""
            print(f"{args.config} on {_device(args.accelerator)} ({precision}): {speed:.1f} clips/s{ratio}")


def _clips_per_second(args: argparse.Namespace, manifest: Path, precision: str, folder: Path) -> float:
    counter = ClipsPerSecond(args.warmup_steps)
    cli_args = [
        "fit", "-c", args.config,
        f"--data.init_args.manifest={manifest}",
        f"--trainer.accelerator={args.accelerator}",
        f"--trainer.precision={precision}",
        f"--trainer.max_steps={args.warmup_steps + args.steps}",
        "--trainer.max_epochs=-1",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={folder}",
    ]
    if args.num_workers is not None:
        cli_args.append(f"--data.init_args.num_workers={args.num_workers}")
    UltrasslCLI(cli_args, trainer_defaults={"callbacks": [counter]})
    return counter.clips / counter.elapsed


def _device(accelerator: str) -> str:
    if accelerator == "gpu":
        import torch

        return torch.cuda.get_device_name(0)
    return accelerator


if __name__ == "__main__":
    main()
