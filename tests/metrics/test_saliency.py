"""Saliency metrics: hand-computed cases and agreement with a loop-based reference.

The reference below is written straight from the definitions of the MIT saliency benchmark
(Bylinskii et al. 2019) with the conventions stated in :mod:`ultrassl.metrics.saliency`,
one pixel and one pair at a time, sharing no code with the implementation under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch

from ultrassl.metrics import saliency as S

EPS = 2.2204e-16


# ---------------------------------------------------------------------------- reference
def ref_pixels(points, shape):
    """(row, col) of each point on the map, nearest pixel, off-map points dropped."""
    out = []
    for x, y in points:
        r, c = int(math.floor(y + 0.5)), int(math.floor(x + 0.5))
        if 0 <= r < shape[0] and 0 <= c < shape[1]:
            out.append((r, c))
    return out


def ref_distribution(m):
    m = np.array(m, dtype=np.float64)
    if m.min() < 0:
        m = m - m.min()
    return m / m.sum() if m.sum() > 0 else np.full_like(m, 1.0 / m.size)


def ref_kld(pred, gt):
    p, g = ref_distribution(pred), ref_distribution(gt)
    total = 0.0
    for pi, gi in zip(p.ravel(), g.ravel()):
        total += gi * math.log(EPS + gi / (pi + EPS))
    return total


def ref_cc(pred, gt):
    return float(np.corrcoef(np.ravel(pred), np.ravel(gt))[0, 1])


def ref_sim(pred, gt):
    p, g = ref_distribution(pred), ref_distribution(gt)
    return float(sum(min(a, b) for a, b in zip(p.ravel(), g.ravel())))


def ref_nss(pred, points):
    m = np.asarray(pred, dtype=np.float64)
    z = (m - m.mean()) / m.std()
    return float(np.mean([z[r, c] for r, c in ref_pixels(points, m.shape)]))


def ref_pairwise_auc(positives, negatives):
    """P(pos > neg) + P(pos == neg) / 2, by counting every pair."""
    score = 0.0
    for p in positives:
        for n in negatives:
            score += 1.0 if p > n else 0.5 if p == n else 0.0
    return score / (len(positives) * len(negatives))


def ref_auc_judd(pred, points):
    m = np.asarray(pred, dtype=np.float64)
    pixels = ref_pixels(points, m.shape)
    fixated = set(pixels)
    positives = [m[r, c] for r, c in pixels]
    negatives = [m[r, c] for r in range(m.shape[0]) for c in range(m.shape[1]) if (r, c) not in fixated]
    tpr, fpr = [0.0], [0.0]
    for t in sorted(set(positives), reverse=True):
        tpr.append(sum(v >= t for v in positives) / len(positives))
        fpr.append(sum(v >= t for v in negatives) / len(negatives))
    tpr.append(1.0)
    fpr.append(1.0)
    return sum((fpr[i + 1] - fpr[i]) * (tpr[i + 1] + tpr[i]) / 2 for i in range(len(tpr) - 1))


def ref_auc_borji(pred, points, n_splits, generator):
    m = np.asarray(pred, dtype=np.float64)
    pixels = ref_pixels(points, m.shape)
    positives = [m[r, c] for r, c in pixels]
    flat = m.ravel()
    draws = torch.randint(0, flat.size, (n_splits, len(pixels)), generator=generator).numpy()
    return float(np.mean([ref_pairwise_auc(positives, flat[d]) for d in draws]))


def ref_sauc(pred, points, negative_points):
    m = np.asarray(pred, dtype=np.float64)
    positives = [m[r, c] for r, c in ref_pixels(points, m.shape)]
    negatives = [m[r, c] for r, c in ref_pixels(negative_points, m.shape)]
    return ref_pairwise_auc(positives, negatives)


def random_case(seed: int, n: int = 6, shape=(12, 16)):
    """Maps with ties, negative values and a constant-free range; fixations with sub-pixel
    positions, duplicates and one point off the map."""
    rng = np.random.default_rng(seed)
    h, w = shape
    maps = rng.random((n, h, w)) ** 3
    maps[1] = np.round(maps[1] * 4)  # many ties
    maps[2] = rng.normal(size=shape)  # negative values
    gts = rng.random((n, h, w)) ** 4
    points = []
    for i in range(n):
        k = int(rng.integers(1, 7))
        p = np.stack([rng.uniform(-0.49, w - 0.51, k), rng.uniform(-0.49, h - 0.51, k)], axis=1)
        if i == 3:
            p = np.concatenate([p, p[:1], [[w + 3.0, 1.0]]])  # a duplicate and an off-map point
        points.append(p)
    return maps, gts, points


# ---------------------------------------------------------------------------- hand-computed
def test_kld_hand_computed():
    uniform = torch.full((2, 2), 1.0)
    one_hot = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # G = (1, 0, 0, 0), P = 1/4 each: 1 * log(eps + 1 / (1/4 + eps)) = log 4
    assert S.kld(uniform, one_hot).item() == pytest.approx(math.log(4.0), abs=1e-12)
    assert S.kld(one_hot, one_hot).item() == pytest.approx(0.0, abs=1e-12)
    # the prediction is scaled to a distribution first
    assert S.kld(7 * uniform, one_hot).item() == pytest.approx(math.log(4.0), abs=1e-12)
    assert math.isnan(S.kld(uniform, torch.zeros(2, 2)).item())  # no ground truth


def test_cc_hand_computed():
    gt = torch.tensor([[0.0, 1.0], [2.0, 5.0]])
    assert S.cc(3 * gt + 2, gt).item() == pytest.approx(1.0)
    assert S.cc(-gt, gt).item() == pytest.approx(-1.0)
    assert S.cc(torch.ones(2, 2), gt).item() == 0.0
    # centred (-1, 1, -1, 1) against (-1, -1, 1, 1): orthogonal
    assert S.cc(torch.tensor([[0.0, 1.0], [0.0, 1.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])).item() == pytest.approx(0.0)


def test_sim_hand_computed():
    p = torch.tensor([[1.0, 1.0], [0.0, 0.0]])  # (1/2, 1/2, 0, 0)
    g = torch.tensor([[2.0, 0.0], [2.0, 0.0]])  # (1/2, 0, 1/2, 0)
    assert S.sim(p, g).item() == pytest.approx(0.5)
    assert S.sim(g, g).item() == pytest.approx(1.0)
    # negative maps are shifted by their minimum: (-1, 1, -1, 1) -> (0, 1/2, 0, 1/2)
    assert S.sim(torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]), g).item() == pytest.approx(0.0)


def test_nss_hand_computed():
    m = torch.tensor([[0.0, 0.0], [0.0, 4.0]])  # mean 1, population std sqrt(3)
    assert S.nss(m, torch.tensor([[1.0, 1.0]])).item() == pytest.approx(math.sqrt(3.0))
    # both fixations count, including the one on the same pixel: (sqrt3 + sqrt3 - 1/sqrt3) / 3
    two = torch.tensor([[1.0, 1.0], [1.2, 0.9], [0.0, 0.0]])
    assert S.nss(m, two).item() == pytest.approx((2 * math.sqrt(3.0) - 1 / math.sqrt(3.0)) / 3)
    assert S.nss(torch.ones(2, 2), torch.tensor([[0.0, 0.0]])).item() == 0.0
    assert math.isnan(S.nss(m, torch.zeros(0, 2)).item())


def test_auc_judd_hand_computed():
    m = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    # fixated at the top value: (0,0) -> (0,1) -> (1,1)
    assert S.auc_judd(m, torch.tensor([[3.0, 0.0]])).item() == pytest.approx(1.0)
    # fixated at 0.2: one threshold, TPR 1 at FPR 2/3 (0.3, 0.4 of the three unfixated):
    # trapezoids 1/2 * 2/3 + 1/3 = 2/3 (the exact pairwise AUC would be 1/3)
    assert S.auc_judd(m, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(2.0 / 3.0)
    # a constant map: every pixel at the one threshold -> the diagonal
    assert S.auc_judd(torch.ones(3, 3), torch.tensor([[1.0, 1.0]])).item() == pytest.approx(0.5)


def test_auc_borji_hand_computed():
    # constant map: every pair ties
    assert S.auc_borji(torch.ones(4, 4), torch.tensor([[1.0, 2.0]]), n_splits=5).item() == pytest.approx(0.5)
    # fixation on the single bright pixel of 1 x 2: a draw of pixel 0 wins, of pixel 1 ties
    m = torch.tensor([[0.0, 1.0]])
    generator = torch.Generator().manual_seed(3)
    draws = torch.randint(0, 2, (10, 1), generator=torch.Generator().manual_seed(3))
    expected = float(torch.where(draws == 0, 1.0, 0.5).mean())
    assert S.auc_borji(m, torch.tensor([[1.0, 0.0]]), n_splits=10, generator=generator).item() == pytest.approx(expected)


def test_shuffled_auc_hand_computed():
    m = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    negatives = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])  # values 0.1, 0.2, 0.4
    # positive 0.4 beats 0.1 and 0.2, ties 0.4: (1 + 1 + 0.5) / 3
    value = S.auc_shuffled(m, torch.tensor([[3.0, 0.0]]), negatives[None])
    assert value.item() == pytest.approx(5.0 / 6.0)


def test_points_fall_on_the_nearest_pixel_and_off_map_points_are_ignored():
    m = torch.zeros(3, 3)
    m[1, 2] = 9.0
    centre_pixel = S.nss(m, torch.tensor([[2.0, 1.0]])).item()
    assert S.nss(m, torch.tensor([[1.6, 0.6]])).item() == pytest.approx(centre_pixel)
    assert S.nss(m, torch.tensor([[2.0, 1.0], [5.0, 1.0], [-1.0, 0.0]])).item() == pytest.approx(centre_pixel)


# ---------------------------------------------------------------------------- against the reference
@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_agree_with_loop_reference_on_random_maps(seed):
    maps, gts, points = random_case(seed)
    torch_maps, torch_gts = torch.from_numpy(maps), torch.from_numpy(gts)
    checks = {
        "KLD": (S.kld(torch_maps, torch_gts), [ref_kld(m, g) for m, g in zip(maps, gts)]),
        "CC": (S.cc(torch_maps, torch_gts), [ref_cc(m, g) for m, g in zip(maps, gts)]),
        "SIM": (S.sim(torch_maps, torch_gts), [ref_sim(m, g) for m, g in zip(maps, gts)]),
        "NSS": (S.nss(torch_maps, points), [ref_nss(m, p) for m, p in zip(maps, points)]),
        "AUC-Judd": (S.auc_judd(torch_maps, points), [ref_auc_judd(m, p) for m, p in zip(maps, points)]),
    }
    ours = S.auc_borji(torch_maps, points, n_splits=7, generator=torch.Generator().manual_seed(seed))
    reference_generator = torch.Generator().manual_seed(seed)
    checks["AUC-Borji"] = (ours, [ref_auc_borji(m, p, 7, reference_generator) for m, p in zip(maps, points)])
    others = [np.concatenate([p for j, p in enumerate(points) if j != i]) for i in range(len(points))]
    checks["sAUC"] = (S.auc_shuffled(torch_maps, points, others), [ref_sauc(m, p, o) for m, p, o in zip(maps, points, others)])
    for name, (value, reference) in checks.items():
        np.testing.assert_allclose(value.numpy(), np.asarray(reference), atol=1e-4, rtol=0, err_msg=name)


def test_padded_batch_layout_gives_the_same_values_as_point_lists():
    maps, _, points = random_case(2)
    k = max(len(p) for p in points)
    padded = torch.zeros(len(points), k, 2, dtype=torch.float32)
    valid = torch.zeros(len(points), k, dtype=torch.bool)
    for i, p in enumerate(points):
        padded[i, : len(p)] = torch.from_numpy(p)
        valid[i, : len(p)] = True
    maps = torch.from_numpy(maps)
    listed = [torch.from_numpy(p).float() for p in points]  # same float32 rounding as padded
    for metric in (S.nss, S.auc_judd):
        assert torch.allclose(metric(maps, padded, valid), metric(maps, listed))


# ---------------------------------------------------------------------------- density maps
def test_density_map_matches_scipy_gaussian_filter():
    points = torch.tensor([[[3.0, 4.0], [3.2, 4.4], [10.0, 1.0], [0.0, 0.0]]])
    valid = torch.tensor([[True, True, True, False]])
    density = S.fixation_density_map(points, (9, 14), sigma_px=1.5, valid=valid)[0].numpy()
    impulses = np.zeros((9, 14))
    impulses[4, 3] += 2  # (3.2, 4.4) rounds onto the same pixel
    impulses[1, 10] += 1
    reference = scipy.ndimage.gaussian_filter(impulses, sigma=1.5, mode="constant", truncate=4.0)
    reference /= reference.sum()
    np.testing.assert_allclose(density, reference, atol=1e-6)
    assert density.sum() == pytest.approx(1.0, abs=1e-5)


def test_density_map_without_fixations_is_zero_and_scores_nan():
    density = S.fixation_density_map(torch.zeros(1, 3, 2), (8, 8), sigma_px=1.0, valid=torch.zeros(1, 3, dtype=torch.bool))
    assert float(density.abs().sum()) == 0.0
    assert math.isnan(S.kld(torch.rand(1, 8, 8), density).item())


# ---------------------------------------------------------------------------- dataset scores
def test_mean_per_video_averages_frames_then_videos_without_nans():
    values = [1.0, 3.0, float("nan"), 10.0]
    assert S.mean_per_video(values, ["a", "a", "b", "b"]) == pytest.approx((2.0 + 10.0) / 2)
    assert S.mean_per_video(values) == pytest.approx(14.0 / 3)
    assert math.isnan(S.mean_per_video([float("nan")], ["a"]))


def test_evaluator_takes_shuffled_negatives_from_other_videos():
    maps, _, points = random_case(4, n=4)
    videos = ["v0", "v0", "v1", "v1"]
    evaluator = S.SaliencyEvaluator(sigma_px=1.0, n_splits=3, seed=0)
    evaluator.update(torch.from_numpy(maps[:2]), points[:2], video_ids=videos[:2])
    evaluator.update(torch.from_numpy(maps[2:]), points[2:], video_ids=videos[2:])
    frames = evaluator.per_frame()
    for i in range(4):
        others = np.concatenate([p for j, p in enumerate(points) if videos[j] != videos[i]])
        # the evaluator stores maps as float32
        assert frames["sAUC"][i].item() == pytest.approx(ref_sauc(maps[i].astype(np.float32), points[i], others), abs=1e-6)
    scores = evaluator.compute()
    assert set(scores) == set(S.METRIC_NAMES)
    for name in S.METRIC_NAMES:
        per_video = [np.nanmean(frames[name][:2].numpy()), np.nanmean(frames[name][2:].numpy())]
        assert scores[name] == pytest.approx(np.mean(per_video))


def test_a_perfect_prediction_beats_a_uniform_one_on_every_metric():
    rng = np.random.default_rng(5)
    points = [np.stack([rng.uniform(2, 29, 3), rng.uniform(2, 21, 3)], 1) for _ in range(6)]
    truth = S.fixation_density_map(points, (24, 32), sigma_px=2.0)
    good = S.saliency_scores(truth, points, sigma_px=2.0, video_ids=[0, 0, 1, 1, 2, 2], n_splits=10)
    flat = S.saliency_scores(torch.ones(6, 24, 32), points, sigma_px=2.0, video_ids=[0, 0, 1, 1, 2, 2], n_splits=10)
    assert good["KLD"] < 1e-6 < flat["KLD"]
    assert good["CC"] == pytest.approx(1.0) and good["SIM"] == pytest.approx(1.0, abs=1e-5)
    for name in ("NSS", "AUC-Judd", "AUC-Borji", "sAUC"):
        assert good[name] > flat[name], name
    assert flat["AUC-Judd"] == pytest.approx(0.5) and flat["NSS"] == 0.0
