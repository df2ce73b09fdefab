"""Where building a pretraining batch spends its time, and what two of its steps cost next to
the library calls they replace.

Prints, from one run on this machine (ratios, because absolute times are noisy):

1. For the pretraining pipeline of a benchmark profile's objective (default: the demo's order +
   geometry, 48 x 60, batch 16, read in process as the demo reads it), on a few simulated
   sweeps: milliseconds per batch in each step of the pipeline and in all of it, after the
   loops are in the loop cache (so decoding is not timed), beside one training step of the
   objective's model on such a batch (forward, backward and AdamW step).
2. The affine warp of a 4 x 48 x 60 clip: MONAI ``Affine`` against
   :func:`ultrassl.transforms.spatial.warp_frames` (the same output, bit for bit).
3. Seeding a random step: a new ``np.random.RandomState(seed)`` (MONAI's
   ``set_random_state``) against reseeding the transform's own generator
   (:class:`ultrassl.transforms.base.Reseedable`; the same stream).

Usage::

    python benchmarks/pipeline_overhead.py [--profile demo] [--objective order_geometry] [--batches 40]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ultrassl.benchmark.profile import load_profile  # noqa: E402
from ultrassl.benchmark.runner import cli_value, pretrain_settings  # noqa: E402
from ultrassl.data.indexing import index_folder, write_index  # noqa: E402
from ultrassl.engine.cli import UltrasslCLI  # noqa: E402
from ultrassl.engine.quiet import quiet_lightning  # noqa: E402
from ultrassl.synth import synthesize_fetal_sweeps  # noqa: E402
from ultrassl.transforms.spatial import RandAffineClip, affine_matrix, warp_frames  # noqa: E402


def _per_call(fn, repeats: int) -> float:
    """Seconds per call of ``fn``, after two untimed calls."""
    fn(), fn()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def pipeline_steps(profile_name: str, objective_name: str, batches: int, folder: Path) -> None:
    profile = load_profile(profile_name)
    objective = profile.objectives[objective_name]
    domain = profile.domains[objective.domain]
    data = folder / "sweeps"
    synthesize_fetal_sweeps(data, n_sweeps=6, n_frames=64, seed=0)
    manifest, _ = write_index(index_folder(data, annotations=data / "annotations.csv", progress=False),
                              data / "manifest.csv")
    settings = {
        "model.init_args.backbone": domain.backbone["name"],
        "model.init_args.backbone_kwargs": domain.backbone["kwargs"],
        "data.init_args.pipeline.init_args.in_channels": domain.in_channels,
        **pretrain_settings(profile, objective),
        "data.init_args.manifest": str(manifest),
        "trainer.default_root_dir": str(folder / "run"),
    }
    args = ["-c", str(objective.config), "--seed_everything=0",
            *[f"--{key}={cli_value(value)}" for key, value in settings.items()]]
    with quiet_lightning():
        cli = UltrasslCLI(args=args, run=False)
    module, datamodule = cli.model, cli.datamodule
    datamodule.setup("fit")
    loader = datamodule.train_dataloader()
    compose = loader.dataset.dataset.transform

    spent: collections.Counter[str] = collections.Counter()
    for step in compose.transforms:  # time each step where it is called
        name, call = type(step).__name__, type(step).__call__

        def timed(self, *a, _call=call, _name=name, **k):
            started = time.perf_counter()
            try:
                return _call(self, *a, **k)
            finally:
                spent[_name] += time.perf_counter() - started

        step.__class__ = type(name, (type(step),), {"__call__": timed})

    def next_batch(iterator=[iter(loader)]):  # noqa: B006 - one iterator, renewed at the epoch's end
        try:
            return next(iterator[0])
        except StopIteration:
            iterator[0] = iter(loader)
            return next(iterator[0])

    for _ in range(len(loader) + 2):  # every loop decoded once, into the loop cache
        next_batch()
    spent.clear()
    started = time.perf_counter()
    for _ in range(batches):
        batch = next_batch()
    total = (time.perf_counter() - started) / batches * 1000

    optimiser = torch.optim.AdamW(module.parameters(), lr=1e-3)
    module.train()

    def train_step():
        loss = module.objective_step(batch, "train")["loss"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    model_ms = _per_call(train_step, 10) * 1000
    print(f"{profile_name} / {objective_name}: building a batch of {datamodule.batch_size} clips, "
          f"{batches} batches from the loop cache, {torch.get_num_threads()} torch threads")
    for name, seconds in spent.most_common():
        print(f"  {name:28s} {seconds / batches * 1000:7.1f} ms/batch")
    print(f"  {'the whole batch':28s} {total:7.1f} ms/batch (with sampling, seeding and collation)")
    print(f"  {'a training step of the model':28s} {model_ms:7.1f} ms  (batch / model {total / model_ms:.2f})")


def affine_ratio() -> None:
    from monai.transforms import Affine

    transform = RandAffineClip(rotate_range_deg=10, scale_range=0.1, translate_range=0.05).set_random_state(0)
    stack = torch.rand(4, 48, 60)
    inverse = np.linalg.inv(affine_matrix(transform.draw((1, 4, 48, 60), True), (48, 60)))
    reference = Affine(affine=inverse, mode="bilinear", padding_mode="zeros", image_only=True)
    monai_s = _per_call(lambda: reference(stack), 300)
    ours_s = _per_call(lambda: warp_frames(stack, inverse), 300)
    same = torch.equal(reference(stack).as_tensor(), warp_frames(stack, inverse))
    print(f"affine warp of a 4 x 48 x 60 clip: MONAI Affine {monai_s * 1e3:.3f} ms, warp_frames "
          f"{ours_s * 1e3:.3f} ms: {monai_s / ours_s:.1f} x faster, equal bit for bit: {same}")


def seeding_ratio() -> None:
    generator = np.random.RandomState(0)
    seeds = iter(range(10**9))
    new_s = _per_call(lambda: np.random.RandomState(next(seeds)), 2000)
    reseed_s = _per_call(lambda: generator.seed(next(seeds)), 2000)
    print(f"seeding a random step: new RandomState {new_s * 1e6:.1f} us, reseeding one {reseed_s * 1e6:.1f} us: "
          f"{new_s / reseed_s:.0f} x faster")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo", help="a benchmark profile (configs/benchmark/<name>.yaml)")
    parser.add_argument("--objective", default="order_geometry", help="an objective of the profile")
    parser.add_argument("--batches", type=int, default=40, help="timed batches")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_steps(args.profile, args.objective, args.batches, Path(tmp))
    affine_ratio()
    seeding_ratio()


if __name__ == "__main__":
    main()
