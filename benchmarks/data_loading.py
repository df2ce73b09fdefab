"""Data-loading throughput: does the loader keep up with the decoder, and does a clip cost a clip?

Prints, from one run on this machine (ratios, because absolute times are noisy):

1. For a multi-frame JPEG-baseline ultrasound DICOM and an H.264 mp4 holding the same frames:
   DataLoader clips/s (sample + decode + clip-consistent augmentation + collate, num_workers
   workers) over decode-only clips/s (``read_clip`` of exactly the same frames, in one process).
2. For a long cine loop in each format: the time to read one 16-frame clip at a random position
   against the time to decode the whole loop.

Usage::

    python benchmarks/data_loading.py [--frames 600] [--size 256x320] [--clips 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from monai.transforms import Compose

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ultrassl.data.datasets import ManifestDataset  # noqa: E402
from ultrassl.io import probe_clip, read_clip  # noqa: E402
from ultrassl.synth.writers import FakeIdentity, UltrasoundRegion, write_mp4, write_ultrasound_dicom  # noqa: E402
from ultrassl.transforms.io import LoadClipd  # noqa: E402
from ultrassl.transforms.spatial import RandFlipClipd, RandResizedCropClipd  # noqa: E402
from ultrassl.transforms.temporal import SampleFramesd, UniformClipSampler, frame_indices_key  # noqa: E402

CLIP_FRAMES = 16
STRIDE = 2


def speckle_cine(n_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W) frames of drifting speckle: compresses like real B-mode, not like noise."""
    rng = np.random.default_rng(seed)
    field = rng.rayleigh(1.0, size=(height, width + n_frames)).astype(np.float32)
    tissue = np.linspace(1.0, 0.3, height, dtype=np.float32)[:, None]
    frames = np.stack([field[:, t : t + width] * tissue for t in range(n_frames)])
    return np.clip(frames * 70.0, 0, 255).astype(np.uint8)


def write_cines(folder: Path, n_frames: int, height: int, width: int) -> dict[str, Path]:
    frames = speckle_cine(n_frames, height, width)
    region = UltrasoundRegion(bounds=(0, 0, width - 1, height - 1), spacing_cm=(0.03, 0.03), reference_pixel=(width // 2, 0))
    dicom = write_ultrasound_dicom(folder / "cine.dcm", frames, 25.0, region, FakeIdentity(), uid_seed=[1])
    mp4 = write_mp4(folder / "cine.mp4", frames, 25.0)
    return {"JPEG DICOM": dicom, "H.264 mp4": mp4}


def loader_pipeline(size: int) -> Compose:
    return Compose(
        [
            SampleFramesd(UniformClipSampler(CLIP_FRAMES, stride=STRIDE)),
            LoadClipd(),
            RandResizedCropClipd("clip", size=(size, size)),
            RandFlipClipd("clip"),
        ]
    )


def bench_loader(path: Path, n_clips: int, workers: int, batch_size: int, size: int) -> tuple[float, list[np.ndarray]]:
    """clips/s through a DataLoader, and the frame indices it read (to decode the same frames)."""
    info = probe_clip(path)
    rows = pd.DataFrame([{"path": str(path), "format": info.format, "n_frames": info.n_frames, "fps": info.fps}] * n_clips)
    dataset = ManifestDataset(rows, transform=loader_pipeline(size))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, persistent_workers=False)
    indices: list[np.ndarray] = []
    # The clock starts at the first batch: worker start-up is paid once per run, not per clip.
    start, timed = 0.0, 0
    for i, batch in enumerate(loader):
        indices.extend(np.asarray(batch[frame_indices_key("clip")]))
        if i == 0:
            start = time.perf_counter()
        else:
            timed += len(batch[frame_indices_key("clip")])
    return timed / (time.perf_counter() - start), indices


def bench_decode_only(path: Path, indices: list[np.ndarray]) -> float:
    info = probe_clip(path)
    start = time.perf_counter()
    for clip_indices in indices:
        read_clip(path, clip_indices, info=info)
    return len(indices) / (time.perf_counter() - start)


def bench_long_loop(path: Path, repeats: int = 5) -> tuple[float, float]:
    """(median seconds for one random 16-frame clip, seconds to decode the whole loop)."""
    info = probe_clip(path)
    rng = np.random.default_rng(0)
    clip_times = []
    for _ in range(repeats * 2):
        start_frame = int(rng.integers(0, info.n_frames - CLIP_FRAMES * STRIDE))
        t0 = time.perf_counter()
        read_clip(path, np.arange(start_frame, start_frame + CLIP_FRAMES * STRIDE, STRIDE))
        clip_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    read_clip(path)
    whole = time.perf_counter() - t0
    return statistics.median(clip_times), whole


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=600, help="frames in the long cine loop")
    parser.add_argument("--size", default="256x320", help="frame size HxW")
    parser.add_argument("--clips", type=int, default=160, help="clips per loader measurement")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=int, default=112, help="output size of the random resized crop")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        files = write_cines(Path(tmp), args.frames, height, width)
        print(f"{args.frames}-frame {height}x{width} cine loops; clips of {CLIP_FRAMES} frames, stride {STRIDE}; "
              f"loader: batch {args.batch_size}, {args.workers} workers, crop {args.crop}")
        print(f"{'format':<12} {'loader clips/s':>15} {'decode-only clips/s':>20} {'ratio':>7}   "
              f"{'clip read':>10} {'whole loop':>11} {'ratio':>7}")
        for name, path in files.items():
            loader_rate, indices = bench_loader(path, args.clips, args.workers, args.batch_size, args.crop)
            decode_rate = bench_decode_only(path, indices)
            clip_s, whole_s = bench_long_loop(path)
            print(f"{name:<12} {loader_rate:15.1f} {decode_rate:20.1f} {loader_rate / decode_rate:7.2f}   "
                  f"{clip_s * 1000:8.1f}ms {whole_s:10.2f}s {whole_s / clip_s:6.0f}x")


if __name__ == "__main__":
    main()
