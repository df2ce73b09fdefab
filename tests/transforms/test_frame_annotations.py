"""Per-frame label and fixation sidecars, and attaching them to the sampled frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from ultrassl.transforms.annotations import LoadFrameAnnotationsd, read_fixations, read_frame_labels
from ultrassl.errors import ManifestError
from ultrassl.transforms.temporal import PairSampler, SampleFramesd, UniformClipSampler

PLANES = ["background", "abdomen", "brain", "femur"]


def write_labels(path, labels, column="plane", order=None):
    order = range(len(labels)) if order is None else order
    path.write_text("frame," + column + "\n" + "".join(f"{t},{labels[t]}\n" for t in order))
    return path


def write_fixations(path, points):
    path.write_text("frame,x,y\n" + "".join(f"{t},{x},{y}\n" for t, x, y in points))
    return path


def test_frame_labels_by_name_or_integer_in_any_row_order(tmp_path):
    names = [PLANES[t % 4] for t in range(10)]
    path = write_labels(tmp_path / "a.csv", names, order=[9, 3, 0, 1, 2, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(read_frame_labels(path, 10, PLANES), np.arange(10) % 4)
    ints = write_labels(tmp_path / "b.csv", [t % 3 for t in range(6)], column="label")
    labels = read_frame_labels(ints, 6)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, [0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize(
    "text, classes, message",
    [
        ("frame,plane\n0,brain\n1,brain\n", PLANES, "1 of 3 frames have no label (frames 2)"),
        ("frame,plane\n0,brain\n1,brain\n1,femur\n2,brain\n", PLANES, "frame 1 is labelled more than once"),
        ("frame,plane\n0,brain\n1,heart\n2,brain\n", PLANES, "line 3: unknown class 'heart'"),
        ("frame,plane\n0,brain\n1,brain\n2,brain\n3,brain\n", PLANES, "frame 3 is outside the clip's 3 frames"),
        ("frame,label\n0,1\n1,7\n2,1\n", PLANES, "line 3: label 7 outside 0..3"),
        ("frame,label\n0,brain\n1,brain\n2,brain\n", None, "no class names were given"),
        ("frame,what\n0,1\n", None, "needs a 'plane' or 'label' column"),
        ("frame,plane\nfirst,brain\n", PLANES, "'frame' must hold 0-based integer indices; line 2"),
    ],
)
def test_bad_frame_labels_name_the_file_and_problem(tmp_path, text, classes, message):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        read_frame_labels(path, 3, classes)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_fixations_group_by_frame(tmp_path):
    path = write_fixations(tmp_path / "f.csv", [(2, 10.5, 4), (0, 1, 2), (2, 11, 5.25)])
    fixations = read_fixations(path)
    assert sorted(fixations) == [0, 2]
    np.testing.assert_allclose(fixations[2], [[10.5, 4], [11, 5.25]])
    np.testing.assert_allclose(fixations[0], [[1, 2]])
    write_fixations(path, [(0, "nan", 2)])
    with pytest.raises(ManifestError, match="line 2: coordinates must be finite"):
        read_fixations(path)


def _sample(tmp_path, n_frames=20):
    labels = write_labels(tmp_path / "labels.csv", [PLANES[(t // 5) % 4] for t in range(n_frames)])
    # Frame t has t % 3 fixations at (t, 100 + k).
    points = [(t, float(t), 100.0 + k) for t in range(n_frames) for k in range(t % 3)]
    fixations = write_fixations(tmp_path / "fix.csv", points)
    return {"path": str(tmp_path / "clip.mp4"), "n_frames": n_frames, "fps": 25.0,
            "frame_labels": str(labels), "fixations": str(fixations)}


def test_attaches_annotations_of_exactly_the_sampled_frames(tmp_path):
    sample = _sample(tmp_path)
    sampler = SampleFramesd(PairSampler(num_frames=4, stride=2), view_keys=("view1", "view2"))
    load = LoadFrameAnnotationsd(view_keys=("view1", "view2"), classes=PLANES, max_fixations=4)
    for seed in range(5):
        out = load(sampler.set_random_state(seed)(sample))
        for view in ("view1", "view2"):
            indices = out[f"{view}_frame_indices"]
            assert out[f"{view}_frame_labels"].dtype == torch.int64
            assert out[f"{view}_frame_labels"].tolist() == [(t // 5) % 4 for t in indices]
            fix, valid, count = out[f"{view}_fixations"], out[f"{view}_fixations_valid"], out[f"{view}_fixations_count"]
            assert fix.shape == (4, 4, 2) and fix.dtype == torch.float32 and valid.shape == (4, 4)
            for row, t in enumerate(indices.tolist()):
                assert count[row] == t % 3 and valid[row].sum() == t % 3
                expected = [[t, 100.0 + k] for k in range(t % 3)]
                assert fix[row, : t % 3].tolist() == expected
                assert not fix[row, t % 3 :].any()  # zero padding
    assert "view1_frame_labels" not in sample  # input left alone


def test_samples_collate_and_sidecars_are_parsed_once(tmp_path, monkeypatch):
    sample = _sample(tmp_path)
    chain = [SampleFramesd(UniformClipSampler(num_frames=6)).set_random_state(0), LoadFrameAnnotationsd(classes=PLANES)]
    calls = []
    import ultrassl.transforms.annotations as module

    original = module.read_frame_labels
    monkeypatch.setattr(module, "read_frame_labels", lambda *a, **k: calls.append(a) or original(*a, **k))
    batch = []
    for _ in range(3):
        item = sample
        for transform in chain:
            item = transform(item)
        batch.append(item)
    collated = default_collate(batch)
    assert collated["clip_frame_labels"].shape == (3, 6)
    assert collated["clip_fixations"].shape == (3, 6, 8, 2)  # default K = 8
    assert len(calls) == 1


def test_missing_sidecar_and_too_many_fixations_are_clear(tmp_path):
    sample = _sample(tmp_path)
    sampled = SampleFramesd(UniformClipSampler(num_frames=4)).set_random_state(0)(sample)
    with pytest.raises(ManifestError, match="has no 'frame_labels' sidecar") as caught:
        LoadFrameAnnotationsd(classes=PLANES)({**sampled, "frame_labels": ""})
    assert sample["path"] in str(caught.value)
    with pytest.raises(ManifestError, match="frame 2 has 2 fixations, more than max_fixations=1"):
        LoadFrameAnnotationsd(frame_labels_key=None, max_fixations=1)(sampled)
    with pytest.raises(KeyError, match="run SampleFramesd first"):
        LoadFrameAnnotationsd(classes=PLANES)(sample)
