"""Means with 95 % intervals over seeds, and paired differences between arms.

Each arm of the benchmark is run once per seed; its figure is the mean over the seeds with a
two-sided Student-t interval, ``mean +- t_{0.975, n-1} * sd / sqrt(n)`` (``sd`` with n - 1 in
the denominator). A pretrained arm is compared with random initialisation seed by seed:
both arms of one seed share the label subset, the data order and the seed, so the
difference of the two is taken per seed and its mean gets the same t-interval (a paired
t-interval). An interval that excludes 0 says the difference is larger than the spread of
the seeds explains. With one seed there is no interval (its bounds are None).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

#: the confidence of every interval
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values with its two-sided interval (None bounds: n < 2)."""

    mean: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2

    def excludes(self, value: float = 0.0) -> bool:
        """Whether the interval lies wholly on one side of ``value``."""
        return self.low is not None and (self.low > value or self.high < value)

    def as_dict(self) -> dict:
        return asdict(self)


def finite(values: Iterable[float | None]) -> list[float]:
    """The finite values (None and NaN dropped)."""
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def mean_interval(values: Iterable[float | None], confidence: float = CONFIDENCE) -> Interval:
    """Mean and Student-t interval of the finite ``values``."""
    x = np.asarray(finite(values), dtype=np.float64)
    n = len(x)
    if n == 0:
        return Interval(None, None, None, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, None, None, n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(arm: Mapping[int, float | None], reference: Mapping[int, float | None],
                      confidence: float = CONFIDENCE) -> Interval:
    """Mean of ``arm[seed] - reference[seed]`` over the seeds both have (finite values) with
    its t-interval."""
    seeds = [s for s in arm if s in reference and finite([arm[s]]) and finite([reference[s]])]
    return mean_interval([float(arm[s]) - float(reference[s]) for s in seeds], confidence)


def verdict(interval: Interval, higher_is_better: bool) -> str:
    """``"better"`` or ``"worse"`` where a difference's interval excludes 0 (in the direction the
    metric improves), else ``"within noise"``."""
    if not interval.excludes(0.0):
        return "within noise"
    return "better" if (interval.mean > 0) == higher_is_better else "worse"


@dataclass(frozen=True)
class NoiseSplit:
    """Where the spread of a paired difference comes from when every seed was run on several
    label draws: a one-way random-effects split of the per-draw differences by seed.

    Attributes:
        draw_sd: standard deviation of one draw's difference about its seed's mean (pooled
            within seeds): which labelled subjects a draw holds.
        seed_sd: standard deviation of the seeds' own means (the encoders' and the training's
            seed), estimated as the seed means' variance less what the draws put into it;
            0 where the draws explain all of it. More draws cannot remove it, more seeds can.
        draws: label draws per seed (the mean over the seeds).
        seeds: seeds.
    """

    draw_sd: float
    seed_sd: float
    draws: float
    seeds: int

    def half_width(self, draws: float, seeds: int, confidence: float = CONFIDENCE) -> float:
        """The half-width of the difference's interval this split predicts for ``draws`` label
        draws per seed and ``seeds`` seeds: ``t * sqrt(seed_sd^2 + draw_sd^2 / draws) / sqrt(seeds)``."""
        if seeds < 2 or draws <= 0:
            raise ValueError(f"an interval needs >= 2 seeds and > 0 draws, got {seeds} and {draws}")
        spread = math.sqrt(self.seed_sd ** 2 + self.draw_sd ** 2 / draws)
        return float(stats.t.ppf(0.5 + confidence / 2, seeds - 1) * spread / math.sqrt(seeds))

    def as_dict(self) -> dict:
        return asdict(self)


def noise_split(per_draw: Mapping[int, Mapping[int, float | None]]) -> NoiseSplit | None:
    """The :class:`NoiseSplit` of values ``{seed: {draw: value}}``, from the seeds with at least
    two finite draws; None where fewer than two seeds have them."""
    groups = [np.asarray(finite(by_draw.values()), dtype=np.float64) for by_draw in per_draw.values()]
    groups = [g for g in groups if len(g) >= 2]
    if len(groups) < 2:
        return None
    within = sum(float(((g - g.mean()) ** 2).sum()) for g in groups) / sum(len(g) - 1 for g in groups)
    means = np.array([g.mean() for g in groups])
    # the variance of a seed's mean holds the draws' share within / n_s besides the seed's own
    seed_var = max(float(means.var(ddof=1)) - within * float(np.mean([1.0 / len(g) for g in groups])), 0.0)
    return NoiseSplit(math.sqrt(within), math.sqrt(seed_var), float(np.mean([len(g) for g in groups])), len(groups))
