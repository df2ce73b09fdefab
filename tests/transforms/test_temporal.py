"""Temporal samplers: shapes, bounds, strides, distributions, short videos, records."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from ultrassl.io.types import ClipInfo
from ultrassl.transforms.temporal import (
    ClipSampling,
    MultiClipSampler,
    MultiSegmentSampler,
    PairSampler,
    PastCurrentFutureSampler,
    SampleFramesd,
    SpacedFramesSampler,
    TripletSampler,
    UniformClipSampler,
)

COMMON_FIELDS = {
    "view", "start_frame", "end_frame", "stride", "num_frames", "start_time_s", "fps",
    "video_frames", "stride_reduced", "padded",
}


def samplers(short_clip="reduce_stride"):
    """One of each sampler with the number of views it makes."""
    s = {"short_clip": short_clip}
    return [
        (UniformClipSampler(8, 2, **s), 1),
        (UniformClipSampler(8, 2, random=False, **s), 1),
        (MultiClipSampler(3, 8, 2, **s), 3),
        (PairSampler(8, 2, **s), 2),
        (PairSampler(8, 2, gap="uniform", **s), 2),
        (PairSampler(8, 2, gap="increasing", **s), 2),
        (PairSampler(8, 2, strides=(1, 2, 4), **s), 2),
        (TripletSampler(8, 2, **s), 3),
        (PastCurrentFutureSampler(4, 2, **s), 3),
        (PastCurrentFutureSampler(4, 2, with_instance_view=True, **s), 4),
        (SpacedFramesSampler(4, 4, **s), 1),
        (MultiSegmentSampler(3, 4, 2, **s), 3),
        (MultiSegmentSampler(3, 4, 2, segment_length=12, **s), 3),
    ]


def ids(value):
    return type(value).__name__ if not isinstance(value, int) else str(value)


@pytest.mark.parametrize("sampler,n_views", samplers("reduce_stride") + samplers("pad"), ids=ids)
@pytest.mark.parametrize("n_frames", [3, 16, 30, 57, 300])
def test_shapes_bounds_and_fields(sampler, n_views, n_frames):
    """Every sampler, every length: (V, T) int64 in range, the recorded stride, plain fields.

    Short lengths exercise the fallbacks: 16 frames needs a lower stride for most samplers,
    3 frames is shorter than T and only padding can sample it.
    """
    if n_frames == 3 and sampler.short_clip != "pad":
        with pytest.raises(ValueError, match="too short .* even at stride 1"):
            sampler(n_frames, 30.0)
        return
    sampler.set_random_state(0)
    fields = None
    for _ in range(50):
        out = sampler(n_frames, 30.0)
        assert isinstance(out, ClipSampling)
        assert out.indices.dtype == np.int64
        assert out.indices.shape == (n_views, sampler.num_frames)
        assert out.indices.min() >= 0 and out.indices.max() < n_frames
        assert len(out.params) == n_views
        for view, (row, p) in enumerate(zip(out.indices, out.params)):
            assert COMMON_FIELDS <= set(p)
            assert p["view"] == view
            assert p["start_frame"] == row[0] and p["end_frame"] == row[-1]
            assert p["video_frames"] == n_frames and p["num_frames"] == sampler.num_frames
            assert p["start_time_s"] == pytest.approx(row[0] / 30.0)
            if not p["padded"]:
                # every view is T frames at exactly the recorded stride
                assert np.all(np.diff(row) == p["stride"])
            for value in p.values():
                assert type(value) in (int, float, bool)
        # the same fields on every call (including short-video fallbacks) so batches collate
        keys = [sorted(p) for p in out.params]
        fields = fields or keys
        assert keys == fields


def test_requested_stride_is_kept_when_the_video_is_long_enough():
    out = UniformClipSampler(8, 3)(100, 25.0)
    assert out.params[0]["stride"] == 3 and not out.params[0]["stride_reduced"]
    np.testing.assert_array_equal(np.diff(out.indices[0]), 3)


def test_uniform_random_start_covers_every_valid_start_and_centred_start():
    sampler = UniformClipSampler(8, 2).set_random_state(1)
    starts = {int(sampler(40).indices[0, 0]) for _ in range(2000)}
    assert starts == set(range(40 - 15 + 1))  # span 15 frames: starts 0..25
    centred = UniformClipSampler(8, 2, random=False)
    np.testing.assert_array_equal(centred(40).indices[0], 12 + 2 * np.arange(8))
    np.testing.assert_array_equal(centred(40).indices, centred(40).indices)


def test_multi_clip_sampler_is_evenly_spaced_and_deterministic():
    sampler = MultiClipSampler(5, 4, 2)
    out = sampler(47)  # span 7, last valid start 40
    np.testing.assert_array_equal(out.indices[:, 0], [0, 10, 20, 30, 40])
    assert out.indices[-1, -1] == 46
    assert [p["clip_index"] for p in out.params] == list(range(5))
    np.testing.assert_array_equal(MultiClipSampler(5, 4, 2).set_random_state(9)(47).indices, out.indices)
    np.testing.assert_array_equal(MultiClipSampler(1, 4, 2)(47).indices[0, 0], 20)


# ------------------------------------------------------------------------- pairs


def _pair_gaps(gap: str, n_frames: int, n_draws: int, seed: int = 0):
    sampler = PairSampler(8, 2, gap=gap).set_random_state(seed)
    gaps, swapped = [], []
    for _ in range(n_draws):
        out = sampler(n_frames, 30.0)
        a, b = out.indices[:, 0]
        p = out.params[0]
        pair_fields = ("gap_frames", "gap_s", "swapped", "independent", "stride")
        assert [p[k] for k in pair_fields] == [out.params[1][k] for k in pair_fields]
        assert p["gap_frames"] == abs(b - a) and p["gap_s"] == pytest.approx(abs(b - a) / 30.0)
        assert not p["independent"]
        # view 0 is the later clip exactly when swapped
        assert (a > b) == bool(p["swapped"]) or a == b
        gaps.append(abs(b - a))
        swapped.append(p["swapped"])
    return np.array(gaps), np.array(swapped)


def test_pair_decreasing_gap_follows_the_linear_density():
    n_frames = 200
    max_start = n_frames - 15  # 8 frames at stride 2 span 15 frames
    n_draws = 20000
    gaps, swapped = _pair_gaps("decreasing", n_frames, n_draws)
    assert gaps.min() >= 0 and gaps.max() <= max_start
    # density 2 (M - g) / M^2: mean M / 3 (up to the discretisation)
    assert gaps.mean() == pytest.approx(max_start / 3, rel=0.03)
    counts, _ = np.histogram(gaps, bins=5, range=(0, max_start + 1))
    assert np.all(np.diff(counts) < 0)
    # Kolmogorov-Smirnov distance to the discrete CDF P(gap <= g) = 1 - (1 - (g + 1) / (M + 1))^2
    g = np.arange(max_start + 1)
    expected = 1.0 - (1.0 - (g + 1) / (max_start + 1)) ** 2
    empirical = np.searchsorted(np.sort(gaps), g, side="right") / n_draws
    assert np.abs(empirical - expected).max() < 1.63 / math.sqrt(n_draws) * 1.2  # ~1 % level
    assert swapped.mean() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize("gap,mean_fraction", [("uniform", 1 / 2), ("increasing", 2 / 3)])
def test_pair_uniform_and_increasing_gaps(gap, mean_fraction):
    gaps, _ = _pair_gaps(gap, 200, 8000)
    assert gaps.mean() == pytest.approx(185 * mean_fraction, rel=0.04)
    counts, _ = np.histogram(gaps, bins=4, range=(0, 186))
    if gap == "increasing":
        assert np.all(np.diff(counts) > 0)
    else:
        assert counts.max() / counts.min() < 1.15


def test_pair_first_start_is_uniform_below_max_minus_gap():
    # with the gap fixed by the draw, the earlier start covers [0, M - gap]
    sampler = PairSampler(4, 1, gap="uniform").set_random_state(3)
    seen = {}
    for _ in range(4000):
        out = sampler(12, None)
        early = int(out.indices[:, 0].min())
        seen.setdefault(out.params[0]["gap_frames"], set()).add(early)
    max_start = 12 - 4
    for gap, earlies in seen.items():
        assert earlies == set(range(max_start - gap + 1))


def test_pair_max_gap_keeps_the_views_near_each_other():
    """The gap keeps its density over [0, max_gap]; the pair still moves over the whole video;
    0 gives the same frames twice; at target_fps the bound scales like a stride."""
    sampler = PairSampler(4, 1, gap="uniform", max_gap=5).set_random_state(0)
    outs = [sampler(100, None) for _ in range(3000)]
    gaps = np.array([out.params[0]["gap_frames"] for out in outs])
    assert set(gaps.tolist()) == set(range(6))  # every gap up to the bound, none beyond
    assert gaps.mean() == pytest.approx(2.5, abs=0.15)
    earliest = {int(out.indices[:, 0].min()) for out in outs}
    assert min(earliest) == 0 and max(earliest) >= 90  # not only the video's start
    same = PairSampler(4, 2, max_gap=0).set_random_state(1)
    for _ in range(50):
        out = same(60, 25.0)
        np.testing.assert_array_equal(out.indices[0], out.indices[1])
        assert out.params[0]["gap_frames"] == 0
    at_fps = PairSampler(4, 1, gap="increasing", max_gap=4, target_fps=25.0).set_random_state(2)
    assert max(at_fps(400, 50.0).params[0]["gap_frames"] for _ in range(500)) == 8
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match="max_gap"):
            PairSampler(4, 1, max_gap=bad)


def test_pair_short_video_draws_independent_starts():
    sampler = PairSampler(8, 4).set_random_state(0)  # needs 29 frames
    outs = [sampler(20, 25.0) for _ in range(200)]
    for out in outs:
        assert all(p["independent"] and p["stride_reduced"] for p in out.params)
        assert out.params[0]["stride"] == 2  # 8 frames at stride 2 fit in 20
        assert out.indices.max() < 20
    assert len({tuple(out.indices[:, 0]) for out in outs}) > 10


def test_pair_per_view_strides_vary_and_both_views_fit():
    sampler = PairSampler(8, 2, strides=(1, 2, 4)).set_random_state(0)
    pairs = []
    for _ in range(600):
        out = sampler(40, 25.0)  # a view at stride 4 spans 29 frames: M = 11 when one is drawn
        strides = [p["stride"] for p in out.params]
        for row, stride in zip(out.indices, strides):
            np.testing.assert_array_equal(np.diff(row), stride)
        assert out.indices.max() < 40 and not out.params[0]["independent"]
        assert not any(p["stride_reduced"] for p in out.params)
        assert out.params[0]["gap_frames"] == abs(int(out.indices[1, 0]) - int(out.indices[0, 0]))
        pairs.append(tuple(strides))
    counts = {pair: pairs.count(pair) for pair in set(pairs)}
    # each view draws on its own: all 9 (view 0, view 1) combinations, about equally often
    assert len(counts) == 9 and min(counts.values()) > 600 / 9 * 0.6, counts
    # the fixed-stride sampler keeps one stride for both views
    fixed = PairSampler(8, 2).set_random_state(0)
    assert all({p["stride"] for p in fixed(40, 25.0).params} == {2} for _ in range(50))


def test_pair_per_view_strides_follow_the_frame_rate():
    sampler = PairSampler(4, strides=(1, 2), target_fps=25.0).set_random_state(1)
    seen = {(p["stride"], p["fps"]) for _ in range(100) for p in sampler(200, 50.0).params}
    assert seen == {(2, 50.0), (4, 50.0)}  # the same seconds per step as 1 and 2 at 25 fps
    with pytest.raises(ValueError, match="strides"):
        PairSampler(4, strides=(1, 0))
    with pytest.raises(ValueError, match="strides"):
        PairSampler(4, strides=())


def test_pair_per_view_strides_on_a_short_video_fit_each_view_alone():
    sampler = PairSampler(8, strides=(1, 4)).set_random_state(0)  # stride 4 needs 29 frames
    outs = [sampler(20, 25.0) for _ in range(200)]
    for out in outs:
        for row, p in zip(out.indices, out.params):
            np.testing.assert_array_equal(np.diff(row), p["stride"])
            assert p["stride_reduced"] == (p["stride"] == 2)  # 4 lowered to the largest that fits
        assert out.indices.max() < 20
        assert out.params[0]["independent"] == any(p["stride_reduced"] for p in out.params)


# ----------------------------------------------------------------------- triplets


def test_triplet_anchor_positive_share_start_and_negative_differs():
    sampler = TripletSampler(8, 2).set_random_state(0)
    for _ in range(2000):
        out = sampler(40, 25.0)
        anchor, positive, negative = out.indices
        np.testing.assert_array_equal(anchor, positive)
        gap = abs(int(negative[0]) - int(anchor[0]))
        assert gap >= 2
        assert [p["role"] for p in out.params] == [0, 1, 2]
        assert all(p["negative_gap_frames"] == gap and p["negative_far_enough"] for p in out.params)
        assert out.params[0]["negative_gap_s"] == pytest.approx(gap / 25.0)


def test_triplet_negative_as_far_as_a_tiny_video_allows():
    sampler = TripletSampler(8, 1).set_random_state(0)
    for _ in range(100):
        out = sampler(9, None)  # two valid starts: 0 and 1
        assert out.params[0]["negative_gap_frames"] == 1
        assert not out.params[0]["negative_far_enough"]


# --------------------------------------------------------------- past/current/future


@pytest.mark.parametrize("stride", [1, 3])
def test_past_current_future_are_contiguous_and_instance_view_in_window(stride):
    t = 4
    sampler = PastCurrentFutureSampler(t, stride, with_instance_view=True).set_random_state(0)
    phases = set()
    for _ in range(300):
        out = sampler(60, 30.0)
        past, current, future, instance = out.indices
        np.testing.assert_array_equal(np.diff(np.concatenate([past, current, future])), stride)
        window_start = out.params[0]["window_start"]
        assert past[0] == window_start
        assert all(p["window_frames"] == (3 * t - 1) * stride + 1 for p in out.params)
        np.testing.assert_array_equal(np.diff(instance), 3 * stride)
        assert out.params[3]["stride"] == 3 * stride
        assert past[0] <= instance[0] and instance[-1] <= future[-1]
        phases.add((instance[0] - past[0]) // stride)
        assert [p["segment"] for p in out.params] == [0, 1, 2, 3]
    assert phases == {0, 1, 2}


def test_spaced_frames_are_k_apart():
    out = SpacedFramesSampler(num_frames=4, spacing=5).set_random_state(0)(50, None)
    np.testing.assert_array_equal(np.diff(out.indices[0]), 5)


def test_multi_segment_views_are_consecutive_segments():
    out = MultiSegmentSampler(4, 3, 2).set_random_state(0)(100, 30.0)
    seg = out.params[0]["segment_length"]
    assert seg == 6
    np.testing.assert_array_equal(np.diff(out.indices[:, 0]), seg)
    # abutting segments: together they are one run at stride 2
    np.testing.assert_array_equal(np.diff(out.indices.reshape(-1)), 2)
    out = MultiSegmentSampler(3, 4, 2, segment_length=20).set_random_state(0)(100, 30.0)
    np.testing.assert_array_equal(np.diff(out.indices[:, 0]), 20)
    assert [p["segment"] for p in out.params] == [0, 1, 2]


# ----------------------------------------------------------------- short videos


def test_short_clip_policies():
    with pytest.raises(ValueError, match="20 frames is too short"):
        UniformClipSampler(8, 4, short_clip="error")(20)
    reduced = UniformClipSampler(8, 4)(20)
    assert reduced.params[0]["stride"] == 2 and reduced.params[0]["stride_reduced"]
    padded = UniformClipSampler(8, 4, short_clip="pad")(20)
    np.testing.assert_array_equal(padded.indices[0], [0, 4, 8, 12, 16, 19, 19, 19])
    assert padded.params[0]["padded"] and padded.params[0]["stride"] == 4
    with pytest.raises(ValueError, match="even at stride 1"):
        UniformClipSampler(8, 4)(5)
    window = PastCurrentFutureSampler(4, 1, short_clip="pad")(7)
    assert window.indices.shape == (3, 4) and window.indices.max() == 6
    with pytest.raises(ValueError):
        UniformClipSampler(8)(0)


def test_target_fps_keeps_the_time_span():
    sampler = UniformClipSampler(4, 2, random=False, target_fps=30.0)
    at_30 = sampler(300, 30.0).params[0]
    at_60 = sampler(300, 60.0).params[0]
    assert (at_30["stride"], at_60["stride"]) == (2, 4)
    span_s = [(p["end_frame"] - p["start_frame"]) / p["fps"] for p in (at_30, at_60)]
    assert span_s[0] == pytest.approx(span_s[1])
    assert sampler(300, None).params[0]["stride"] == 2  # unknown rate: taken as given
    assert math.isnan(sampler(300, None).params[0]["start_time_s"])


@pytest.mark.parametrize("sampler,n_views", samplers(), ids=ids)
def test_same_seed_same_draws_different_seed_different(sampler, n_views):
    def run(seed):
        sampler.set_random_state(seed)
        return np.stack([sampler(120, 30.0).indices for _ in range(20)])

    np.testing.assert_array_equal(run(5), run(5))
    if not isinstance(sampler, MultiClipSampler) and getattr(sampler, "random", True):
        assert not np.array_equal(run(5), run(6))


# ------------------------------------------------------------------ SampleFramesd


def test_sample_framesd_writes_views_and_records_without_mutating():
    sample = {"path": "/data/a.mp4", "n_frames": 60, "fps": 30.0, "label": 3}
    original = dict(sample)
    t = SampleFramesd(PairSampler(8, 2), view_keys=("view1", "view2")).set_random_state(0)
    out = t(sample)
    assert sample == original
    reference = PairSampler(8, 2).set_random_state(0)(60, 30.0)
    for row, key in enumerate(("view1", "view2")):
        np.testing.assert_array_equal(out[f"{key}_frame_indices"], reference.indices[row])
        assert out[f"{key}_frame_indices"].dtype == np.int64
        assert out[f"{key}_params"]["temporal"] == reference.params[row]
    assert out["label"] == 3


def test_sample_framesd_errors_name_the_file_and_the_mismatch():
    with pytest.raises(ValueError, match="/data/short.mp4: .*too short"):
        SampleFramesd(UniformClipSampler(8, 1))({"path": "/data/short.mp4", "n_frames": 3, "fps": 30.0})
    with pytest.raises(ValueError, match="makes 2 views"):
        SampleFramesd(PairSampler(4), view_keys=("clip",))({"n_frames": 30})
    with pytest.raises(KeyError, match="n_frames"):
        SampleFramesd(UniformClipSampler(4))({"fps": 30.0})


def test_sample_framesd_probes_when_the_count_is_missing(monkeypatch):
    import ultrassl.io

    calls = []

    def fake_probe(path):
        calls.append(path)
        return ClipInfo(path=str(path), format="video", n_frames=9, height=8, width=8, channels=1, fps=50.0)

    monkeypatch.setattr(ultrassl.io, "probe_clip", fake_probe)
    out = SampleFramesd(UniformClipSampler(9))({"path": "x.mp4"})
    assert calls == ["x.mp4"]
    np.testing.assert_array_equal(out["clip_frame_indices"], np.arange(9))
    assert out["clip_params"]["temporal"]["fps"] == 50.0


class _Samples(Dataset):
    def __init__(self, transform):
        self.transform = transform
        self.lengths = [9, 40, 200, 31]

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        return self.transform({"n_frames": self.lengths[i], "fps": float("nan") if i % 2 else 25.0})


def test_temporal_records_collate_in_a_batch():
    transform = SampleFramesd(PastCurrentFutureSampler(3, 2, with_instance_view=True), ("p", "c", "f", "k"))
    batch = next(iter(DataLoader(_Samples(transform.set_random_state(0)), batch_size=4)))
    assert batch["p_frame_indices"].shape == (4, 3)
    record = batch["k_params"]["temporal"]
    assert record["stride"].shape == (4,)
    assert record["stride_reduced"].dtype == torch.bool
    assert torch.isnan(record["fps"][1])
