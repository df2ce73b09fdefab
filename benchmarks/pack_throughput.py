"""Pretraining throughput from packed shards against decoding the source files every epoch.

Writes cine loops of drifting speckle as JPEG-baseline ultrasound DICOM and as H.264 mp4, indexes
each set, packs it (``ultrassl data pack``, keeping the source's frame size, so the batches are
the same) and again at the config's training size (64x80), and fits the shipped order + geometry
config for a few epochs on each manifest with the same seed and loader settings. Prints, from one
run on this machine, the training clips per second of every epoch after the first (worker
start-up and the per-process sector detection fall in the first) and the ratios packed / source
for each format; also the one-off cost of packing and the bytes on disk.

Usage::

    python benchmarks/pack_throughput.py [--loops 4] [--frames 240] [--size 256x320] [--epochs 4] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.data_loading import speckle_cine  # noqa: E402
from data_tools.pack import pack_part  # noqa: E402
from ultrassl.data.indexing import index_folder  # noqa: E402
from ultrassl.data.manifest import write_manifest  # noqa: E402
from ultrassl.engine.cli import UltrasslCLI  # noqa: E402
from ultrassl.synth.writers import FakeIdentity, UltrasoundRegion, write_mp4, write_ultrasound_dicom  # noqa: E402

#: the config's pipeline size: a pack at this size skips the per-clip resize (batches then differ
#: from the source's by the order of resizing and masking)
TRAINING_SIZE = (64, 80)
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pretrain" / "order_geometry.yaml"


class EpochClock(L.Callback):
    """Wall time and clips of every training epoch."""

    def __init__(self):
        self.epochs: list[tuple[float, int]] = []
        self._start = 0.0
        self._clips = 0

    def on_train_epoch_start(self, trainer, pl_module):
        self._start, self._clips = time.perf_counter(), 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._clips += int(batch["order_clip"].shape[0])

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append((time.perf_counter() - self._start, self._clips))


def write_loops(folder: Path, kind: str, n_loops: int, n_frames: int, height: int, width: int) -> Path:
    region = UltrasoundRegion(bounds=(0, 0, width - 1, height - 1), spacing_cm=(0.03, 0.03),
                              reference_pixel=(width // 2, 0))
    for i in range(n_loops):
        frames = speckle_cine(n_frames, height, width, seed=i)
        if kind == "dicom":
            write_ultrasound_dicom(folder / f"loop_{i}.dcm", frames, 25.0, region, FakeIdentity(), uid_seed=[i])
        else:
            write_mp4(folder / f"loop_{i}.mp4", frames, 25.0)
    return write_manifest(index_folder(folder, progress=False), folder / "manifest.csv")


def fit_rate(manifest: Path, root: Path, epochs: int, workers: int) -> float:
    """Training clips per second over the epochs after the first."""
    clock = EpochClock()
    with contextlib.redirect_stdout(io.StringIO()):  # the fit's own summary lines
        fit(manifest, root, epochs, workers, clock)
    timed = clock.epochs[1:]
    return sum(c for _, c in timed) / sum(t for t, _ in timed)


def loader_rate(manifest: Path, root: Path, epochs: int, workers: int) -> float:
    """Clips per second of the same training data loader alone (no model), epochs after the first."""
    with contextlib.redirect_stdout(io.StringIO()):
        cli = fit(manifest, root, epochs, workers, None)
    module = cli.datamodule
    module.setup("fit")
    loader = module.train_dataloader()  # persistent workers: started once, kept across epochs
    clips, seconds = 0, 0.0
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        start, count = time.perf_counter(), 0
        for batch in loader:
            count += int(batch["order_clip"].shape[0])
        if epoch:
            clips, seconds = clips + count, seconds + time.perf_counter() - start
    return clips / seconds


def fit(manifest: Path, root: Path, epochs: int, workers: int, clock: EpochClock | None) -> UltrasslCLI:
    """The shipped config with small-model overrides: fitted with ``clock``, or only built without."""
    args = [
        "-c", str(CONFIG), f"--data.init_args.manifest={manifest}", f"--trainer.default_root_dir={root}",
        f"--trainer.max_epochs={epochs}", "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", "--trainer.logger=false",
        "--model.init_args.backbone_kwargs.channels=[8,16,16]", "--model.init_args.head_hidden=32",
        "--data.init_args.batch_size=8", "--data.init_args.clips_per_video=16",
        f"--data.init_args.num_workers={workers}", "--data.init_args.holdout_fraction=0",
    ]
    if clock is None:
        return UltrasslCLI(args=args, run=False)
    return UltrasslCLI(args=["fit", *args], trainer_defaults={"callbacks": [clock]})


def folder_bytes(folder: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loops", type=int, default=4, help="loops per format")
    parser.add_argument("--frames", type=int, default=240, help="frames per loop")
    parser.add_argument("--size", default="256x320", help="frame size HxW")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per fit (the first is not timed)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first is not timed)")
    height, width = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(1)
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"{args.loops} loops per format of {args.frames} frames {height}x{width}; order + geometry fit, "
              f"{args.epochs} epochs (first untimed), batch 8, {args.workers} workers, 1 thread per process")
        for kind, label in (("dicom", "JPEG DICOM"), ("mp4", "H.264 mp4")):
            folder = tmp / kind
            folder.mkdir()
            manifest = write_loops(folder, kind, args.loops, args.frames, height, width)
            start = time.perf_counter()
            packed = pack_part(manifest, tmp / f"{kind}_packed").manifest
            pack_s = time.perf_counter() - start
            small = pack_part(manifest, tmp / f"{kind}_small", size=TRAINING_SIZE).manifest
            print(f"{label:<12} pack {pack_s:.1f} s; {folder_bytes(folder, 'loop_*') / 2**20:.1f} MB of files, "
                  f"{folder_bytes(packed.parent / 'shards', '*.tar') / 2**20:.1f} MB of shards "
                  f"({folder_bytes(small.parent / 'shards', '*.tar') / 2**20:.1f} MB at 64x80)")
            for what, measure in (("pretraining", fit_rate), ("loader only", loader_rate)):
                rates = [measure(m, tmp / f"{kind}_{what[:3]}_{i}", args.epochs, args.workers)
                         for i, m in enumerate((manifest, packed, small))]
                print(f"  {what:<12} clips/s: source {rates[0]:6.1f}   packed {rates[1]:6.1f} "
                      f"({rates[1] / rates[0]:.1f}x)   packed at 64x80 {rates[2]:6.1f} ({rates[2] / rates[0]:.1f}x)")

if __name__ == "__main__":
    main()
