"""Can ``tiny3d`` learn the motion clips' directions at all? A supervised fit, with and without
frame differences as input.

The motion classes are time reversals of each other, so only motion tells them apart. This
trains ``tiny3d`` supervised on the training groups of a motion folder, in memory and without
augmentation (the most favourable setting: it isolates what the network can find in the
frames), on raw frames and with ``frame_differences=True``, and prints training and held-out
accuracy (chance 1/8) as it goes. Clips: 8 frames 2 apart from a random start, 56 x 56; the
held-out score uses each clip's centre window. One seed; CPU.

Usage::

    ultrassl data synth runs/data/motion_big --kind motion --n 60 --seed 3
    python benchmarks/motion_learnability.py runs/data/motion_big [--steps 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ultrassl.io import read_clip  # noqa: E402
from ultrassl.models.backbones import create_backbone  # noqa: E402
from ultrassl.transforms.spatial import resize_frames  # noqa: E402

FRAMES, STRIDE, SIZE, BATCH = 8, 2, (56, 56), 16
SPAN = FRAMES * STRIDE  # source frames a window covers


def load(folder: Path, paths: pd.Series) -> torch.Tensor:
    """Every frame of every clip, float (N, 3, T, 56, 56) in [0, 1]."""
    frames = np.stack([read_clip(folder / p).frames for p in paths])  # (N, T, H, W, 3)
    clips = torch.from_numpy(frames).float().div(255).permute(0, 4, 1, 2, 3)
    return torch.stack([resize_frames(clip, SIZE, "bilinear") for clip in clips])


def windows(clips: torch.Tensor, starts: list[int]) -> torch.Tensor:
    return torch.stack([clip[:, s:s + SPAN:STRIDE] for clip, s in zip(clips, starts)])


def fit(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
        frame_differences: bool, steps: int, seed: int = 0) -> None:
    torch.manual_seed(seed)
    net = create_backbone("tiny3d", in_channels=3, channels=(16, 32, 64), frame_differences=frame_differences)
    head = nn.Linear(net.num_features, int(train_labels.max()) + 1)
    optimizer = torch.optim.AdamW([*net.parameters(), *head.parameters()], lr=3e-3, weight_decay=1e-4)
    centre = (train.shape[2] - SPAN) // 2
    name = "frame differences" if frame_differences else "raw frames"
    start = time.time()
    for step in range(1, steps + 1):
        index = torch.randint(0, len(train), (BATCH,))
        starts = torch.randint(0, train.shape[2] - SPAN + 1, (BATCH,)).tolist()
        loss = F.cross_entropy(head(net(windows(train[index], starts))), train_labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % max(1, steps // 5) == 0:
            net.eval()
            with torch.no_grad():
                scores = [(head(net(windows(x, [centre] * len(x)))).argmax(1) == y).float().mean().item()
                          for x, y in ((train, train_labels), (test, test_labels))]
            net.train()
            print(f"{name:>17}  step {step:>5}: training accuracy {scores[0]:.2f}, held out {scores[1]:.2f}"
                  f"  ({time.time() - start:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a motion folder written by `ultrassl data synth --kind motion`")
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args(argv)
    manifest = pd.read_csv(args.folder / "manifest.csv")
    manifest = manifest[manifest.status == "ok"]
    train, test = manifest[manifest.split == "train"], manifest[manifest.split != "train"]
    print(f"{len(train)} training clips ({train.group.nunique()} groups), {len(test)} held out "
          f"({test.group.nunique()} other groups); chance 1/{manifest.label.nunique()}")
    data = [load(args.folder, train.path), torch.tensor(train.label.to_numpy()),
            load(args.folder, test.path), torch.tensor(test.label.to_numpy())]
    mean = data[0].mean(dim=(0, 2, 3, 4), keepdim=True)
    std = data[0].std(dim=(0, 2, 3, 4), keepdim=True)
    data[0], data[2] = (data[0] - mean) / std, (data[2] - mean) / std
    for frame_differences in (False, True):
        fit(*data, frame_differences=frame_differences, steps=args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
