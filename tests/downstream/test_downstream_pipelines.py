"""Plane-detection, saliency and action pipelines on simulated sweeps and motion clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ultrassl.transforms.annotations import read_fixations, read_frame_labels
from ultrassl.data.datasets import ManifestDataset
from ultrassl.data.manifest import read_manifest
from ultrassl.transforms.fixations import scale_fixations
from ultrassl.pipelines.action import ActionPipeline
from ultrassl.pipelines.plane_detection import AllFramesSampler, PlaneDetectionPipeline, read_class_names
from ultrassl.pipelines.saliency import SaliencyPipeline
from ultrassl.synth import PLANE_CLASSES
from ultrassl.transforms.fixations import ResizeFixationsd


def test_all_frames_sampler_takes_every_frame():
    sampling = AllFramesSampler()(5, 25.0)
    assert sampling.indices.tolist() == [[0, 1, 2, 3, 4]]
    assert sampling.params[0]["num_frames"] == 5 and sampling.params[0]["video_frames"] == 5
    assert AllFramesSampler(stride=2)(5, None).indices.tolist() == [[0, 2, 4]]


def test_class_names_from_a_list_a_file_or_the_default(tmp_path):
    assert read_class_names(None) == list(PLANE_CLASSES)
    (tmp_path / "planes.txt").write_text("Background\nHead\n\nHeart\n")
    assert read_class_names(str(tmp_path / "planes.txt")) == ["Background", "Head", "Heart"]
    assert read_class_names(["a", "b"]) == ["a", "b"]


@pytest.mark.parametrize("clip_frames", [1, 3])
def test_plane_items_carry_the_labels_of_their_frames(fetal_manifest, clip_frames):
    pipeline = PlaneDetectionPipeline(size=(24, 32), clip_frames=clip_frames, intensity_prob=1.0)
    row = read_manifest(fetal_manifest).iloc[0]
    labels = read_frame_labels(row["frame_labels"], int(row["n_frames"]), PLANE_CLASSES)
    dataset = ManifestDataset(fetal_manifest, pipeline.train_transform(), label_column=None)
    for seed in range(3):
        dataset.transform.set_random_state(seed)
        item = dataset[0]
        assert item["clip"].shape == (1, clip_frames, 24, 32) and item["clip"].dtype == torch.float32
        np.testing.assert_array_equal(item["clip_frame_labels"].numpy(), labels[item["clip_frame_indices"]])
    loop = ManifestDataset(fetal_manifest, pipeline.cine_transform(), label_column=None)[0]
    assert loop["clip"].shape == (1, int(row["n_frames"]), 24, 32)
    np.testing.assert_array_equal(loop["clip_frame_labels"].numpy(), labels)


def test_plane_affine_moves_the_training_pixels_and_keeps_the_labels(fetal_manifest):
    options = dict(size=(24, 32), intensity_prob=0.0)
    plain = PlaneDetectionPipeline(**options)
    moved = PlaneDetectionPipeline(**options, affine_prob=1.0, rotate_range_deg=20.0, scale_range=0.2,
                                   translate_range=0.1)
    row = read_manifest(fetal_manifest).iloc[0]
    labels = read_frame_labels(row["frame_labels"], int(row["n_frames"]), PLANE_CLASSES)
    for seed in range(3):
        items = []
        for pipeline in (plain, moved):
            dataset = ManifestDataset(fetal_manifest, pipeline.train_transform(), label_column=None)
            dataset.transform.set_random_state(seed)
            items.append(dataset[0])
        a, b = items
        np.testing.assert_array_equal(a["clip_frame_indices"], b["clip_frame_indices"])  # the same frame
        np.testing.assert_array_equal(b["clip_frame_labels"].numpy(), labels[b["clip_frame_indices"]])
        assert "affine" not in a.get("clip_params", {})
        assert b["clip_params"]["affine"]["rotation_deg"] != 0.0
        assert float((a["clip"] - b["clip"]).abs().mean()) > 0.01
    evaluated = ManifestDataset(fetal_manifest, moved.val_transform(), label_column=None)[0]
    assert "affine" not in evaluated.get("clip_params", {})  # held-out frames are never warped
    with pytest.raises(ValueError, match="affine_prob"):
        PlaneDetectionPipeline(affine_prob=1.5)


def test_saliency_items_carry_fixations_in_pixels_of_the_resized_frame(fetal_manifest):
    pipeline = SaliencyPipeline(size=(24, 32))
    row = read_manifest(fetal_manifest).iloc[0]
    fixations = read_fixations(row["fixations"])
    loop = ManifestDataset(fetal_manifest, pipeline.cine_transform(), label_column=None)[0]
    points, valid = loop["clip_fixations"], loop["clip_fixations_valid"]
    assert points.shape == (int(row["n_frames"]), 8, 2)
    for frame in range(int(row["n_frames"])):
        stored = fixations.get(frame, np.zeros((0, 2), np.float32))
        assert int(valid[frame].sum()) == len(stored)
        expected = scale_fixations(torch.from_numpy(stored), (int(row["height"]), int(row["width"])), (24, 32))
        assert torch.allclose(points[frame][valid[frame]], expected)
        assert float(points[frame][~valid[frame]].abs().sum()) == 0.0  # padding stays at zero


def test_resize_fixations_needs_the_fixations():
    with pytest.raises(KeyError, match="LoadFrameAnnotationsd"):
        ResizeFixationsd("clip", (8, 8))({"clip": torch.zeros(1, 1, 4, 4)})


def test_action_items_train_on_one_clip_and_evaluate_on_several(motion_manifest):
    pipeline = ActionPipeline(size=(24, 24), num_frames=4, stride=2, num_test_clips=3)
    table = read_manifest(motion_manifest)
    train = ManifestDataset(table[table["split"] == "train"], pipeline.train_transform())
    train.transform.set_random_state(0)
    item = train[0]
    assert item["clip"].shape == (3, 4, 24, 24) and item["label"] == int(table[table["split"] == "train"].iloc[0]["label"])
    test = ManifestDataset(table[table["split"] == "test"], pipeline.val_transform())
    item = test[0]
    assert item["clip"].shape == (3, 3, 4, 24, 24)
    starts = [item[f"clip{i}_params"]["temporal"]["start_frame"] for i in range(3)]
    assert starts == sorted(starts) and starts[0] == 0 and starts[-1] == int(table.iloc[0]["n_frames"]) - 7


def test_auto_class_weights_come_from_the_training_frames_labels(fetal_manifest):
    from tests.downstream.helpers import TINY3D, quick_trainer
    from ultrassl.data.datamodule import ManifestDataModule
    from ultrassl.downstream.plane_detection import PlaneDetection

    datamodule = ManifestDataModule(fetal_manifest, PlaneDetectionPipeline(size=(24, 32)), batch_size=4,
                                    label_column=None, seed=0)
    model = PlaneDetection(init="random", class_weight_power=0.5, **TINY3D)
    quick_trainer(1, limit_val_batches=0).fit(model, datamodule=datamodule)
    train, _ = datamodule.split_tables()
    counts = np.zeros(len(PLANE_CLASSES))
    for path, n in zip(train["frame_labels"], train["n_frames"]):
        counts += np.bincount(read_frame_labels(path, int(n), PLANE_CLASSES), minlength=len(PLANE_CLASSES))
    present = counts > 0
    balanced = np.ones_like(counts)
    balanced[present] = counts.sum() / (present.sum() * counts[present])
    np.testing.assert_allclose(model.class_weight.numpy(), np.sqrt(balanced), rtol=1e-6)
    assert model.class_weight[0] < 1 < model.class_weight[present].max()  # Background weighs least
