"""Saliency-prediction metrics (sonographer gaze) and fixation density maps.

The seven metrics of the MIT/Tuebingen saliency benchmark (Bylinskii et al., "What do
different evaluation metrics tell us about saliency models?", TPAMI 2019), computed per
frame on torch tensors, batched over frames. Conventions, chosen to agree with pysaliency
(the field's reference implementation; the tests check agreement to 1e-4):

Maps and fixations
    A saliency map is ``(B, H, W)`` (or one ``(H, W)``), any real values, larger = more
    salient. Fixations are ``(B, K, 2)`` points ``(x, y)`` = (column, row) in pixels of the
    map, with ``valid`` ``(B, K)`` marking the real ones (the padded layout of
    :class:`~ultrassl.transforms.annotations.LoadFrameAnnotationsd`). Pixel ``(r, c)`` has its
    centre at ``x = c, y = r`` (as in OpenCV), so a point falls on pixel
    ``(round(y), round(x))``; points off the map are ignored. Every fixation counts, so two on
    one pixel count twice (as in pysaliency; the MIT code's binary fixation map counts once).
    Maps at another resolution than the frame: scale the points with
    :func:`ultrassl.transforms.fixations.scale_fixations` first.

Distribution-based metrics (against a continuous fixation density map, the ground truth
built by :func:`fixation_density_map`)
    Both maps are first turned into distributions (:func:`to_distribution`): shifted by their
    minimum only when it is negative, then divided by their sum (an all-zero map becomes
    uniform).

    * KLD = sum_i G_i log(eps + G_i / (P_i + eps)), eps = 2.2204e-16 (MATLAB's eps, as the
      MIT benchmark): the KL divergence of the prediction P from the ground truth G
      (G is the reference distribution). Lower is better; 0 for a perfect map.
    * CC = Pearson's correlation of the two maps over all pixels (0 when the prediction is
      constant). In [-1, 1], higher is better.
    * SIM = sum_i min(P_i, G_i) of the two distributions. In [0, 1], higher is better.

Location-based metrics (on the fixation points themselves, never on the blurred map)
    * NSS = mean over fixations of the prediction standardised to mean 0 and standard
      deviation 1 over the frame (population std, ddof = 0; a constant map scores 0).
    * AUC-Judd: positives = the prediction at each fixation; thresholds = the fixated values
      (plus one above the maximum and the minimum, giving the (0, 0) and (1, 1) ends); true
      positive rate = share of fixations >= threshold, false positive rate = share of the
      *non-fixated* pixels >= threshold; area by the trapezoidal rule. No random jitter:
      ties are counted together, so the result is deterministic.
    * AUC-Borji: negatives = ``n_splits`` (default 100) draws of as many pixels as there are
      fixations, uniformly over all pixels of the map, with replacement (the MIT protocol);
      the AUC of each split is the exact ROC area (every distinct value a threshold, ties
      half), and the splits are averaged. The draws are ``torch.randint(0, H * W,
      (n_splits, n_fixations), generator=generator)`` in frame order, so a seeded generator
      makes the result repeatable. (The MIT code steps thresholds by 0.1 of the map's range,
      an approximation of the exact area.)
    * Shuffled AUC (sAUC): negatives = fixation locations of *other* frames, supplied per
      frame (:class:`SaliencyEvaluator` takes them from other videos); exact ROC area, ties
      half, all given negatives at once (no splits). This discounts the centre bias that
      uniform negatives reward.

Averaging
    Every function returns one value per frame; a frame without fixations (or, for the
    distribution metrics, an all-zero ground truth) gives NaN. Dataset scores average per
    frame first, then per video (:func:`mean_per_video`): each video weighs the same
    however many frames it has, and NaN frames are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.networks.layers import GaussianFilter

#: MATLAB's eps, the regulariser of the MIT benchmark's KL divergence
KLD_EPS = 2.2204e-16
#: metric names in report order; higher is better for all but KLD
METRIC_NAMES = ("KLD", "CC", "NSS", "SIM", "AUC-Judd", "AUC-Borji", "sAUC")
LOWER_IS_BETTER = frozenset({"KLD"})

PointsLike = torch.Tensor | np.ndarray | Sequence[Any]


# ---------------------------------------------------------------------------- inputs
def _as_maps(maps: torch.Tensor | np.ndarray) -> torch.Tensor:
    """``(B, H, W)`` float64 from ``(H, W)`` or ``(B, H, W)`` (or ``(B, 1, H, W)``)."""
    maps = torch.as_tensor(maps).detach().to(torch.float64)
    if maps.ndim == 4 and maps.shape[1] == 1:
        maps = maps[:, 0]
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3:
        raise ValueError(f"saliency maps must be (H, W) or (B, H, W), got shape {tuple(maps.shape)}")
    return maps


def _as_points(fixations: PointsLike, valid: torch.Tensor | np.ndarray | None, batch: int) -> list[torch.Tensor]:
    """One float64 tensor ``(k_b, 2)`` of (x, y) per frame, padding removed.

    ``fixations`` is ``(B, K, 2)`` with ``valid`` ``(B, K)`` (None: all valid), ``(K, 2)`` for
    one frame, or a sequence of B arrays ``(k_b, 2)``.
    """
    if isinstance(fixations, (torch.Tensor, np.ndarray)):
        points = torch.as_tensor(fixations).detach().to(torch.float64)
        if points.ndim == 2:
            points = points[None]
        if points.ndim != 3 or points.shape[-1] != 2:
            raise ValueError(f"fixations must be (B, K, 2) or (K, 2) of (x, y), got shape {tuple(points.shape)}")
        if valid is None:
            mask = torch.ones(points.shape[:2], dtype=torch.bool)
        else:
            mask = torch.as_tensor(valid).detach().to(torch.bool).reshape(points.shape[:2])
        rows = [points[b][mask[b]] for b in range(points.shape[0])]
    else:
        if valid is not None:
            raise ValueError("valid goes with padded (B, K, 2) fixations, not with a list of arrays")
        rows = [torch.as_tensor(p, dtype=torch.float64).reshape(-1, 2) for p in fixations]
    if len(rows) != batch:
        raise ValueError(f"{len(rows)} frames of fixations for {batch} saliency maps")
    return rows


def fixation_indices(points: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Flat pixel indices ``r * W + c`` of the points ``(k, 2)`` of (x, y) that fall on a
    map of ``shape`` (H, W): nearest pixel, centres at integer coordinates; points off the
    map are dropped."""
    height, width = shape
    cols = torch.round(points[:, 0]).long()
    rows = torch.round(points[:, 1]).long()
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    return rows[inside] * width + cols[inside]


# ---------------------------------------------------------------------------- ground truth
def fixation_map(
    fixations: PointsLike, shape: tuple[int, int], valid: torch.Tensor | np.ndarray | None = None
) -> torch.Tensor:
    """Fixation counts per pixel, ``(B, H, W)`` float32 (the discrete fixation map)."""
    height, width = shape
    rows = _as_points(fixations, valid, _batch_of(fixations))
    counts = torch.zeros(len(rows), height * width, dtype=torch.float32)
    for b, points in enumerate(rows):
        index = fixation_indices(points, shape)
        counts[b].index_add_(0, index, torch.ones(index.numel(), dtype=torch.float32))
    return counts.reshape(len(rows), height, width)


def _batch_of(fixations: PointsLike) -> int:
    if isinstance(fixations, (torch.Tensor, np.ndarray)):
        return 1 if fixations.ndim == 2 else int(fixations.shape[0])
    return len(fixations)


def fixation_density_map(
    fixations: PointsLike,
    shape: tuple[int, int],
    sigma_px: float,
    valid: torch.Tensor | np.ndarray | None = None,
    truncated: float = 4.0,
) -> torch.Tensor:
    """The ground-truth fixation density: the fixation map blurred with a Gaussian, summing to 1.

    A unit impulse at each fixation's pixel (:func:`fixation_map`), a Gaussian blur with
    standard deviation ``sigma_px`` pixels (MONAI ``GaussianFilter``, sampled kernel cut at
    ``truncated`` sigma, zero padding: mass blurred off the frame is lost), then division by
    the sum. A frame without fixations gives an all-zero map.

    Args:
        fixations: ``(B, K, 2)`` (x, y) pixels with ``valid`` ``(B, K)``, ``(K, 2)`` for one
            frame, or a list of ``(k_b, 2)`` arrays.
        shape: (H, W) of the map.
        sigma_px: Gaussian standard deviation in pixels of the map (> 0).
        valid: which padded fixations are real.
        truncated: kernel half-width in units of sigma.

    Returns:
        float32 ``(B, H, W)``, each map summing to 1 (or 0 when it has no fixation).
    """
    if sigma_px <= 0:
        raise ValueError(f"sigma_px must be > 0, got {sigma_px}")
    counts = fixation_map(fixations, shape, valid)
    blur = GaussianFilter(spatial_dims=2, sigma=float(sigma_px), truncated=truncated, approx="sampled")
    with torch.no_grad():
        blurred = blur(counts[:, None])[:, 0].clamp_min(0)
    total = blurred.flatten(1).sum(dim=1)
    return torch.where(total[:, None, None] > 0, blurred / total.clamp_min(1e-30)[:, None, None], blurred)


# ---------------------------------------------------------------------------- distributions
def to_distribution(maps: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Maps as probability distributions over pixels, float64 ``(B, H, W)``: shifted by their
    minimum when it is negative, divided by their sum; an all-zero map becomes uniform."""
    maps = _as_maps(maps)
    low = maps.flatten(1).min(dim=1).values.clamp_max(0)
    maps = maps - low[:, None, None]
    total = maps.flatten(1).sum(dim=1)
    uniform = torch.full_like(maps, 1.0 / maps[0].numel())
    return torch.where(total[:, None, None] > 0, maps / total.clamp_min(1e-300)[:, None, None], uniform)


def _has_mass(ground_truth: torch.Tensor) -> torch.Tensor:
    return ground_truth.flatten(1).abs().sum(dim=1) > 0


def kld(prediction: torch.Tensor | np.ndarray, ground_truth: torch.Tensor | np.ndarray, eps: float = KLD_EPS) -> torch.Tensor:
    """KL divergence of the prediction from the ground-truth density, per frame ``(B,)``.

    ``sum G log(eps + G / (P + eps))`` on both maps as distributions (see the module notes).
    NaN where the ground truth is all zero.
    """
    raw_truth = _as_maps(ground_truth)
    p, g = to_distribution(prediction), to_distribution(raw_truth)
    _check_same_shape(p, g)
    value = (g * torch.log(eps + g / (p + eps))).flatten(1).sum(dim=1)
    return torch.where(_has_mass(raw_truth), value, torch.nan)


def cc(prediction: torch.Tensor | np.ndarray, ground_truth: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Pearson correlation between prediction and ground-truth map, per frame ``(B,)``.

    0 where the prediction is constant; NaN where the ground truth is constant.
    """
    p, g = _as_maps(prediction), _as_maps(ground_truth)
    _check_same_shape(p, g)
    p = p.flatten(1) - p.flatten(1).mean(dim=1, keepdim=True)
    g = g.flatten(1) - g.flatten(1).mean(dim=1, keepdim=True)
    p_norm, g_norm = p.norm(dim=1), g.norm(dim=1)
    value = (p * g).sum(dim=1) / (p_norm * g_norm).clamp_min(1e-300)
    value = torch.where(p_norm > 0, value, 0.0)
    return torch.where(g_norm > 0, value, torch.nan)


def sim(prediction: torch.Tensor | np.ndarray, ground_truth: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Similarity (histogram intersection) of the two maps as distributions, per frame ``(B,)``.

    NaN where the ground truth is all zero.
    """
    raw_truth = _as_maps(ground_truth)
    p, g = to_distribution(prediction), to_distribution(raw_truth)
    _check_same_shape(p, g)
    value = torch.minimum(p, g).flatten(1).sum(dim=1)
    return torch.where(_has_mass(raw_truth), value, torch.nan)


def _check_same_shape(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"prediction {tuple(a.shape)} and ground truth {tuple(b.shape)} differ in shape")


# ---------------------------------------------------------------------------- location-based
def _score_at_fixations(
    prediction: torch.Tensor | np.ndarray,
    fixations: PointsLike,
    valid: torch.Tensor | np.ndarray | None,
    score: Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor | float | None],
) -> torch.Tensor:
    """``score(b, flat_map, fixation_index)`` for every frame ``b`` that has fixations, as a
    ``(B,)`` float64 tensor; NaN for frames without fixations or where ``score`` gives None."""
    maps = _as_maps(prediction)
    points = _as_points(fixations, valid, maps.shape[0])
    out = torch.full((maps.shape[0],), torch.nan, dtype=torch.float64)
    for b, frame in enumerate(maps):
        index = fixation_indices(points[b], frame.shape)
        if index.numel() == 0:
            continue
        value = score(b, frame.flatten(), index)
        if value is not None:
            out[b] = value
    return out


def nss(
    prediction: torch.Tensor | np.ndarray, fixations: PointsLike, valid: torch.Tensor | np.ndarray | None = None
) -> torch.Tensor:
    """Normalised scanpath saliency per frame ``(B,)``: mean of the standardised prediction
    (ddof = 0) at the fixations; 0 for a constant map, NaN for a frame without fixations."""

    def score(_: int, flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor | float:
        std = flat.std(correction=0)
        return ((flat[index] - flat.mean()) / std).mean() if std > 0 else 0.0

    return _score_at_fixations(prediction, fixations, valid, score)


def roc_auc(positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Exact area under the ROC curve of scores ``positives`` vs ``negatives`` (1-D):
    P(pos > neg) + P(pos == neg) / 2, the trapezoidal area with every distinct value a
    threshold (Mann-Whitney U / (n_pos n_neg)). Batched over leading dimensions of
    ``negatives`` ``(..., n_neg)`` when ``positives`` is 1-D. NaN if either side is empty."""
    positives = positives.to(torch.float64).reshape(-1)
    if positives.numel() == 0 or negatives.shape[-1] == 0:
        return torch.full(negatives.shape[:-1], torch.nan, dtype=torch.float64)
    sorted_neg = torch.sort(negatives.to(torch.float64), dim=-1).values
    query = positives.expand(*sorted_neg.shape[:-1], positives.numel()).contiguous()
    below = torch.searchsorted(sorted_neg, query, right=False)  # negatives < p
    below_or_equal = torch.searchsorted(sorted_neg, query, right=True)  # negatives <= p
    wins = (below + below_or_equal).to(torch.float64) / 2.0
    return wins.sum(dim=-1) / (positives.numel() * sorted_neg.shape[-1])


def judd_auc(positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """AUC with thresholds only at the positives' values (Judd et al.): ROC points
    (FPR(t), TPR(t)) at each distinct positive t, plus (0, 0) and (1, 1), joined by the
    trapezoidal rule. NaN if either side is empty."""
    positives = positives.to(torch.float64).reshape(-1)
    negatives = negatives.to(torch.float64).reshape(-1)
    if positives.numel() == 0 or negatives.numel() == 0:
        return torch.tensor(torch.nan, dtype=torch.float64)
    thresholds = torch.unique(positives).flip(0)  # descending
    sorted_pos = torch.sort(positives).values
    sorted_neg = torch.sort(negatives).values
    tp = positives.numel() - torch.searchsorted(sorted_pos, thresholds, right=False)  # >= t
    fp = negatives.numel() - torch.searchsorted(sorted_neg, thresholds, right=False)
    zero, one = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    tpr = torch.cat([zero, tp.to(torch.float64) / positives.numel(), one])
    fpr = torch.cat([zero, fp.to(torch.float64) / negatives.numel(), one])
    return torch.trapezoid(tpr, fpr)


def auc_judd(
    prediction: torch.Tensor | np.ndarray, fixations: PointsLike, valid: torch.Tensor | np.ndarray | None = None
) -> torch.Tensor:
    """AUC-Judd per frame ``(B,)``: fixations against all non-fixated pixels, thresholds at
    the fixated values (see the module notes). NaN for a frame without fixations."""

    def score(_: int, flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        unfixated = torch.ones_like(flat, dtype=torch.bool)
        unfixated[index] = False
        return judd_auc(flat[index], flat[unfixated])

    return _score_at_fixations(prediction, fixations, valid, score)


def auc_borji(
    prediction: torch.Tensor | np.ndarray,
    fixations: PointsLike,
    valid: torch.Tensor | np.ndarray | None = None,
    n_splits: int = 100,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """AUC-Borji per frame ``(B,)``: fixations against ``n_splits`` uniform random draws of
    as many pixels (with replacement), exact ROC area per split, mean over splits. Draws
    come from ``generator`` (seed it for repeatable scores) in frame order. NaN for a frame
    without fixations."""
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")

    def score(_: int, flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        draws = torch.randint(0, flat.numel(), (n_splits, index.numel()), generator=generator)
        return roc_auc(flat[index], flat[draws]).mean()

    return _score_at_fixations(prediction, fixations, valid, score)


def auc_shuffled(
    prediction: torch.Tensor | np.ndarray,
    fixations: PointsLike,
    negatives: PointsLike,
    valid: torch.Tensor | np.ndarray | None = None,
    negatives_valid: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """Shuffled AUC per frame ``(B,)``: fixations against the given negative locations
    (fixations of other frames, in pixels of this map), exact ROC area. NaN for a frame
    without fixations or without negatives."""
    shape = _as_maps(prediction).shape
    negative_points = _as_points(negatives, negatives_valid, shape[0])

    def score(b: int, flat: torch.Tensor, index: torch.Tensor) -> torch.Tensor | None:
        negative_index = fixation_indices(negative_points[b], shape[1:])
        return roc_auc(flat[index], flat[negative_index]) if negative_index.numel() else None

    return _score_at_fixations(prediction, fixations, valid, score)


# ---------------------------------------------------------------------------- averaging
def mean_per_video(values: torch.Tensor | np.ndarray | Sequence[float], video_ids: Sequence[Any] | None = None) -> float:
    """Mean over videos of the mean over each video's frames, NaN frames left out.

    Without ``video_ids`` every frame is its own video (a plain mean over frames). NaN when
    no frame has a value.
    """
    values = np.asarray(torch.as_tensor(values, dtype=torch.float64).cpu(), dtype=np.float64).reshape(-1)
    if video_ids is None:
        video_ids = range(len(values))
    video_ids = list(video_ids)
    if len(video_ids) != len(values):
        raise ValueError(f"{len(values)} values but {len(video_ids)} video ids")
    per_video: dict[Any, list[float]] = {}
    for value, video in zip(values.tolist(), video_ids):
        if not np.isnan(value):
            per_video.setdefault(video, []).append(value)
    if not per_video:
        return float("nan")
    return float(np.mean([np.mean(v) for v in per_video.values()]))


class SaliencyEvaluator:
    """Collects predicted maps and fixations over an evaluation set, then scores all seven
    metrics with the conventions of this module.

    Shuffled AUC needs fixations from the whole set, so maps are kept (as float32 at the
    map resolution: about 4 H W bytes per frame) until :meth:`compute`. Negatives for a
    frame are the fixations of every frame of *other* videos (consecutive frames of one
    video share their fixations, which would make sAUC meaningless), at most
    ``max_shuffled_negatives`` of them drawn without replacement by a generator seeded
    with ``seed``; frames without a video id count as their own video.

    Args:
        sigma_px: Gaussian sigma (pixels of the map) of the ground-truth density for KLD,
            CC and SIM, used when :meth:`update` is not given a density.
        n_splits: AUC-Borji splits.
        max_shuffled_negatives: cap on the sAUC negatives per frame.
        seed: seeds the AUC-Borji draws and the sAUC subsampling.
    """

    def __init__(self, sigma_px: float, n_splits: int = 100, max_shuffled_negatives: int = 5000, seed: int = 0):
        self.sigma_px = float(sigma_px)
        self.n_splits = int(n_splits)
        self.max_shuffled_negatives = int(max_shuffled_negatives)
        self.seed = int(seed)
        self.reset()

    def reset(self) -> None:
        self._maps: list[torch.Tensor] = []
        self._densities: list[torch.Tensor] = []
        self._points: list[torch.Tensor] = []
        self._videos: list[Any] = []

    def __len__(self) -> int:
        return len(self._maps)

    def update(
        self,
        prediction: torch.Tensor,
        fixations: PointsLike,
        valid: torch.Tensor | None = None,
        video_ids: Sequence[Any] | None = None,
        density: torch.Tensor | None = None,
    ) -> None:
        """Add frames: ``prediction`` ``(B, H, W)``, their fixations (pixels of the map) and
        optionally their video ids and ground-truth densities ``(B, H, W)``."""
        maps = _as_maps(prediction).to(torch.float32)
        points = _as_points(fixations, valid, maps.shape[0])
        if density is None:
            density = fixation_density_map(points, tuple(maps.shape[-2:]), self.sigma_px)
        density = _as_maps(density).to(torch.float32)
        _check_same_shape(maps, density)
        if self._maps and maps.shape[-2:] != self._maps[0].shape[-2:]:
            raise ValueError(f"all maps must share one size: {tuple(self._maps[0].shape[-2:])} vs {tuple(maps.shape[-2:])}")
        start = len(self._videos)
        ids = list(video_ids) if video_ids is not None else [("frame", start + b) for b in range(maps.shape[0])]
        if len(ids) != maps.shape[0]:
            raise ValueError(f"{len(ids)} video ids for {maps.shape[0]} maps")
        for b in range(maps.shape[0]):
            self._maps.append(maps[b])
            self._densities.append(density[b])
            self._points.append(points[b].to(torch.float32))
            self._videos.append(ids[b])

    def per_frame(self) -> dict[str, torch.Tensor]:
        """Every metric for every frame, ``{name: (N,) float64}`` (NaN where undefined)."""
        if not self._maps:
            raise ValueError("no frames were added")
        maps = torch.stack(self._maps)
        densities = torch.stack(self._densities)
        generator = torch.Generator().manual_seed(self.seed)
        scores = {
            "KLD": kld(maps, densities),
            "CC": cc(maps, densities),
            "NSS": nss(maps, self._points),
            "SIM": sim(maps, densities),
            "AUC-Judd": auc_judd(maps, self._points),
            "AUC-Borji": auc_borji(maps, self._points, n_splits=self.n_splits, generator=generator),
        }
        scores["sAUC"] = auc_shuffled(maps, self._points, self._shuffled_negatives(generator))
        return scores

    def _shuffled_negatives(self, generator: torch.Generator) -> list[torch.Tensor]:
        all_points = torch.cat([p.to(torch.float64) for p in self._points])
        codes: dict[Any, int] = {}
        video_codes = torch.tensor([codes.setdefault(v, len(codes)) for v in self._videos])
        owner = torch.repeat_interleave(video_codes, torch.tensor([len(p) for p in self._points]))
        negatives = []
        for code in video_codes.tolist():
            pool = all_points[owner != code]
            if len(pool) > self.max_shuffled_negatives:
                pool = pool[torch.randperm(len(pool), generator=generator)[: self.max_shuffled_negatives]]
            negatives.append(pool)
        return negatives

    def compute(self) -> dict[str, float]:
        """Dataset scores: per frame, then per video (:func:`mean_per_video`)."""
        return {name: mean_per_video(values, self._videos) for name, values in self.per_frame().items()}

    def frames(self) -> Mapping[str, Any]:
        """What was collected: ``maps`` (N, H, W), ``densities`` (N, H, W), ``fixations``
        (list of (k, 2)), ``video_ids``; for plots."""
        return {
            "maps": torch.stack(self._maps) if self._maps else torch.zeros(0),
            "densities": torch.stack(self._densities) if self._densities else torch.zeros(0),
            "fixations": list(self._points),
            "video_ids": list(self._videos),
        }


def saliency_scores(
    prediction: torch.Tensor,
    fixations: PointsLike,
    valid: torch.Tensor | None = None,
    sigma_px: float = 3.0,
    video_ids: Sequence[Any] | None = None,
    n_splits: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """All seven metrics of a set of maps ``(N, H, W)`` in one call (see :class:`SaliencyEvaluator`)."""
    evaluator = SaliencyEvaluator(sigma_px=sigma_px, n_splits=n_splits, seed=seed)
    evaluator.update(prediction, fixations, valid, video_ids)
    return evaluator.compute()
