"""Helpers of the downstream tests: pretraining checkpoints of every objective written by a
tiny Trainer fit, and small task batches.

Each objective trains two steps on hand-built batches whose records come from the real
samplers and transforms; the checkpoint is saved by the Trainer, as a run would save it.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from monai.transforms import Compose
from torch.utils.data import DataLoader, default_collate

from ultrassl.data.indexing import index_folder
from ultrassl.data.manifest import write_manifest
from ultrassl.synth import synthesize_fetal_sweeps
from ultrassl.transforms.pretext import RandPermuteFramesd
from ultrassl.transforms.spatial import RandAffineClipd, RandFlipClipd, RandResizedCropClipd
from ultrassl.transforms.temporal import PairSampler, SampleFramesd

SIZE = 32
TINY3D = {"backbone": "tiny3d", "backbone_kwargs": {"channels": [4, 8, 8]}}
SONONET = {"backbone": "sononet16"}


def _clip(generator: torch.Generator, channels: int = 1, frames: int = 4) -> torch.Tensor:
    return torch.rand(channels, frames, SIZE, SIZE, generator=generator)


def order_geometry_samples(n: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    shuffle = RandPermuteFramesd("order_clip", num_frames=4).set_random_state(seed)
    affine = RandAffineClipd("geometry_clip", rotate_range_deg=30).set_random_state(seed + 1)
    samples = []
    for _ in range(n):
        clip = _clip(generator)
        samples.append(affine(shuffle({"order_clip": clip, "geometry_clip": clip})))
    return samples


def pair_samples(n: int, seed: int) -> list[dict]:
    views = ("view1", "view2")
    chain = Compose([SampleFramesd(PairSampler(4, 2), views),
                     *[RandResizedCropClipd(v, SIZE) for v in views], *[RandFlipClipd(v) for v in views]])
    chain.set_random_state(seed)
    generator = torch.Generator().manual_seed(seed)
    return [chain({"n_frames": 60, "fps": 25.0, "view1": _clip(generator), "view2": _clip(generator)}) for _ in range(n)]


def triplet_samples(n: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    return [{"anchor": _clip(generator), "positive": _clip(generator), "negative": _clip(generator),
             "negative_params": {"temporal": {"negative_far_enough": True}}} for _ in range(n)]


def window_samples(n: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    return [{view: _clip(generator) for view in ("past", "current", "future", "instance")} for _ in range(n)]


def segment_samples(n: int, seed: int) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    return [{"visual": torch.stack([_clip(generator) for _ in range(2)]),
             "audio": torch.randn(2, 1, 16, 12, generator=generator), "path": f"clip{i}.mp4"} for i in range(n)]


def _order_geometry(**backbone):
    from ultrassl.objectives.order_geometry import OrderGeometry

    return OrderGeometry(head_hidden=16, **backbone), order_geometry_samples


def _cvrl(**backbone):
    from ultrassl.objectives.cvrl import CVRL

    return CVRL(head_hidden=16, projection_dim=8, **backbone), pair_samples


def _vtdl(**backbone):
    from ultrassl.objectives.vtdl import VTDL

    return VTDL(head_hidden=16, projection_dim=8, queue_size=8, **backbone), triplet_samples


def _cate(**backbone):
    from ultrassl.objectives.cate import CATE

    return CATE(head_dim=16, head_heads=2, projection_dim=8, **backbone), pair_samples


def _cep(**backbone):
    from ultrassl.objectives.cep import CEP

    return CEP(head_hidden=16, projection_dim=8, queue_size=8, **backbone), window_samples


def _av_transformer(**backbone):
    from ultrassl.objectives.av_transformer import AudioVisualTransformer

    return AudioVisualTransformer(width=16, depth=1, heads=2, rank=4, num_segments=2, audio_channels=(4, 8),
                                  num_negatives=2, **backbone), segment_samples


#: every pretraining objective: name -> builder(**backbone) -> (module, sample maker)
OBJECTIVES = {"order_geometry": _order_geometry, "cvrl": _cvrl, "vtdl": _vtdl, "cate": _cate, "cep": _cep,
              "av_transformer": _av_transformer}


def write_pretrain_checkpoint(path: Path, objective: str = "order_geometry", backbone: dict | None = None,
                              steps: int = 2, seed: int = 0) -> Path:
    """Fit ``objective`` for ``steps`` steps on 4-sample batches and save its checkpoint."""
    torch.manual_seed(seed)
    module, make_samples = OBJECTIVES[objective](**(backbone or TINY3D))
    loader = DataLoader(make_samples(4 * steps, seed), batch_size=4, collate_fn=default_collate)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, loader)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)
    return path


# ---------------------------------------------------------------------------- task batches
def plane_batch(n: int = 6, frames: int = 3, classes: int = 4, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"clip": torch.rand(n, 1, frames, SIZE, SIZE, generator=generator),
            "clip_frame_labels": torch.randint(0, classes, (n, frames), generator=generator)}


def saliency_batch(n: int = 4, frames: int = 3, k: int = 3, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    points = torch.tensor(rng.uniform(2, SIZE - 3, size=(n, frames, k, 2)), dtype=torch.float32)
    valid = torch.tensor(rng.random((n, frames, k)) < 0.7)
    valid[:, :, 0] = True
    return {"clip": torch.rand(n, 1, frames, SIZE, SIZE, generator=generator), "clip_fixations": points,
            "clip_fixations_valid": valid, "path": [f"video{i % 2}" for i in range(n)]}


def action_batch(n: int = 6, clips: int | None = None, classes: int = 3, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    shape = (n, 1, 4, SIZE, SIZE) if clips is None else (n, clips, 1, 4, SIZE, SIZE)
    return {"clip": torch.rand(*shape, generator=generator), "label": torch.arange(n) % classes}


def loader_of(batch: dict, repeats: int = 2) -> DataLoader:
    """A loader yielding ``batch`` ``repeats`` times."""
    return DataLoader([batch] * repeats, batch_size=None)


def quick_trainer(max_steps: int = 2, **options) -> L.Trainer:
    return L.Trainer(max_steps=max_steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **options)


def make_fetal_manifest(root: Path, n_sweeps: int = 4, n_frames: int = 24, size: tuple[int, int] = (48, 64)) -> Path:
    """Simulated sweeps (DICOM and mp4 alternating, one sweep per subject, subject-level
    train/val split) under ``root``; returns their manifest."""
    synthesize_fetal_sweeps(root, n_sweeps=n_sweeps, n_frames=n_frames, size=size, workers=1, sweeps_per_subject=1)
    manifest = index_folder(root, annotations=root / "annotations.csv", progress=False)
    return write_manifest(manifest, root / "manifest.csv")


def make_motion_manifest(root: Path, n_per_class: int = 3, n_frames: int = 12, size: tuple[int, int] = (32, 32)) -> Path:
    """The embedded motion clips (UCF101 layout, official-style split 1) indexed into a manifest."""
    from ultrassl.data.splits import ucf101_annotations
    from ultrassl.synth import synthesize_motion

    synthesize_motion(root, n_per_class=n_per_class, n_frames=n_frames, size=size, clips_per_group=1)
    manifest = index_folder(root, annotations=ucf101_annotations(root / "splits", 1), match="stem", progress=False)
    return write_manifest(manifest, root / "manifest.csv")
