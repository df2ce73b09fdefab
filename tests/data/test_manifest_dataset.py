"""ManifestDataset: items from manifest rows, typed errors through MONAI, probe cache."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
import torch
from monai.transforms import Compose, Lambda
from torch.utils.data import DataLoader

from ultrassl.data.indexing import index_folder
from tests.data.clip_files import write_video
from tests.media import decode_frame_index
from ultrassl.data.datasets import ManifestDataset
from ultrassl.data.manifest import write_manifest
from ultrassl.errors import CorruptFileError, ManifestError
from ultrassl.transforms.io import LoadClipd
from ultrassl.transforms.temporal import SampleFramesd, UniformClipSampler


@pytest.fixture(scope="module")
def manifest_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for name in ("a", "b", "c"):
        write_video(root / f"{name}.mp4", n_frames=12)
    annotations = root / "annotations.csv"
    annotations.write_text("path,label,split\na.mp4,1,train\nb.mp4,0,test\nc.mp4,,train\n")
    return write_manifest(index_folder(root, annotations=annotations, progress=False), root / "manifest.csv")


def test_items_carry_the_row_fields(manifest_path):
    dataset = ManifestDataset(manifest_path)
    assert len(dataset) == 3
    item = dataset[0]
    assert item["path"] == str(manifest_path.parent / "a.mp4")
    assert item["n_frames"] == 12 and isinstance(item["n_frames"], int)
    assert item["fps"] == pytest.approx(25.0) and isinstance(item["fps"], float)
    assert item["label"] == 1 and item["split"] == "train" and item["format"] == "video"
    assert math.isnan(item["spacing_row_mm"]) and item["has_audio"] is False
    assert "status" not in item and "error" not in item and "clip_info" not in item
    assert dataset[2]["label"] == -1  # unlabelled row


def test_split_filter_and_errors(manifest_path):
    assert [os.path.basename(i["path"]) for i in ManifestDataset(manifest_path, split="train")] == ["a.mp4", "c.mp4"]
    with pytest.raises(ManifestError, match="no clips with status ok with split 'val'"):
        ManifestDataset(manifest_path, split="val")
    with pytest.raises(ManifestError, match="label column 'plane' is not in the manifest"):
        ManifestDataset(manifest_path, label_column="plane")
    no_split = pd.read_csv(manifest_path).drop(columns=["split"])
    with pytest.raises(ManifestError, match="no 'split' column"):
        ManifestDataset(no_split, split="train")


def test_clips_load_and_collate_in_worker_processes(manifest_path):
    chain = [SampleFramesd(UniformClipSampler(num_frames=4, stride=2)), LoadClipd()]
    dataset = ManifestDataset(manifest_path, transform=chain, split="train")
    loader = DataLoader(dataset, batch_size=2, num_workers=2, timeout=30)
    batch = next(iter(loader))
    assert batch["clip"].shape == (2, 3, 4, 32, 64) and batch["clip"].dtype == torch.float32
    assert batch["label"].tolist() == [1, -1]
    # The frames are the ones sampled: each carries its index as a bar code.
    for b in range(2):
        frames = (batch["clip"][b].permute(1, 2, 3, 0).numpy() * 255).round().astype(np.uint8)
        assert [decode_frame_index(f) for f in frames] == batch["clip_frame_indices"][b].tolist()


def _raise_corrupt(d):
    raise CorruptFileError("damaged in a test", d["path"])


def test_typed_errors_leave_the_monai_wrapper(manifest_path):
    nested = Compose([Lambda(lambda d: d), Compose([Lambda(_raise_corrupt)])])
    dataset = ManifestDataset(manifest_path, transform=nested, cache_info=False)
    with pytest.raises(CorruptFileError, match="a.mp4: damaged in a test"):
        dataset[0]
    # Other failures keep MONAI's wrapper: they are bugs to read in full, not bad files.
    failing = ManifestDataset(manifest_path, transform=Lambda(lambda d: d["nope"]), cache_info=False)
    with pytest.raises(RuntimeError, match="applying transform"):
        failing[0]


def test_probe_is_cached_until_the_file_changes(manifest_path, monkeypatch, tmp_path):
    import ultrassl.data.datasets as module

    calls = []
    original = module.probe_clip
    monkeypatch.setattr(module, "probe_clip", lambda path, format=None: calls.append(path) or original(path, format))
    chain = [SampleFramesd(UniformClipSampler(num_frames=2)), LoadClipd()]
    dataset = ManifestDataset(manifest_path, transform=chain)
    for _ in range(3):
        assert dataset[1]["clip"].shape == (3, 2, 32, 64)
    assert len(calls) == 1
    path = dataset.data[1]["path"]
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    dataset[1]
    assert len(calls) == 2
