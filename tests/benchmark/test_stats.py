"""Means, t-intervals and paired differences over seeds, against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from ultrassl.benchmark.stats import mean_interval, noise_split, paired_difference

T_975_2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom
T_975_3 = 3.182446305284263


def test_interval_of_one_two_three():
    interval = mean_interval([1.0, 2.0, 3.0])
    # sd = 1, n = 3: half-width = t(0.975, 2) * 1 / sqrt(3)
    half = T_975_2 / math.sqrt(3)
    assert interval.mean == pytest.approx(2.0)
    assert interval.low == pytest.approx(2.0 - half) and interval.high == pytest.approx(2.0 + half)
    assert interval.half_width == pytest.approx(2.484138, abs=1e-6)
    assert interval.n == 3 and not interval.excludes(0.0) and interval.excludes(5.0)


def test_interval_skips_missing_values_and_needs_two():
    interval = mean_interval([4.0, None, float("nan"), 6.0, 2.0, 8.0])
    sd = math.sqrt(sum((v - 5.0) ** 2 for v in (4, 6, 2, 8)) / 3)
    assert interval.n == 4 and interval.mean == pytest.approx(5.0)
    assert interval.high - interval.mean == pytest.approx(T_975_3 * sd / 2)
    one = mean_interval([0.7])
    assert one.mean == 0.7 and one.low is None and one.high is None and not one.excludes(0.0)
    assert mean_interval([]).mean is None


def test_paired_difference_is_the_interval_of_the_per_seed_differences():
    arm = {0: 0.50, 1: 0.62, 2: 0.55}
    random_init = {0: 0.40, 1: 0.50, 2: 0.47}
    differences = [0.10, 0.12, 0.08]
    paired = paired_difference(arm, random_init)
    direct = mean_interval(differences)
    assert paired.mean == pytest.approx(0.10) and paired.low == pytest.approx(direct.low)
    assert paired.excludes(0.0)
    # the unpaired intervals overlap, the paired one does not: seeds move both arms together
    assert mean_interval(arm.values()).low < mean_interval(random_init.values()).high


def test_paired_difference_uses_the_seeds_both_arms_have():
    paired = paired_difference({0: 1.0, 1: 3.0, 2: None, 5: 9.0}, {0: 0.0, 1: 1.0, 2: 0.5, 3: 4.0})
    assert paired.n == 2 and paired.mean == pytest.approx(1.5)


def test_noise_split_of_a_known_case_and_the_half_width_it_predicts():
    # each seed's two draws lie 1 either side of its mean: the draws' variance is 2; the seeds'
    # means 2, 6 and 3 vary by 13/3, of which the draws put 2 / 2 = 1 there, the seeds 10/3
    per_draw = {0: {0: 1.0, 1: 3.0}, 1: {0: 5.0, 1: 7.0}, 2: {0: 2.0, 1: 4.0}}
    split = noise_split(per_draw)
    assert split.draw_sd == pytest.approx(math.sqrt(2)) and split.seed_sd == pytest.approx(math.sqrt(10 / 3))
    assert split.draws == 2 and split.seeds == 3
    # as run, the prediction is the interval of the seeds' means
    assert split.half_width(2, 3) == pytest.approx(mean_interval([2.0, 6.0, 3.0]).half_width)
    # infinitely many draws leave the seeds' share; more seeds narrow both
    assert split.half_width(1e12, 3) == pytest.approx(4.302653 * math.sqrt(10 / 3) / math.sqrt(3), rel=1e-5)
    assert split.half_width(2, 6) < split.half_width(2, 3)


def test_noise_split_where_the_draws_explain_every_difference_between_seeds():
    split = noise_split({0: {0: 0.0, 1: 2.0}, 1: {0: 1.0, 1: 1.0}, 2: {0: 2.0, 1: 0.0, 2: None}})
    assert split.seed_sd == 0.0 and split.draw_sd > 0  # all three seeds' means are 1
    assert noise_split({0: {0: 1.0, 1: 2.0}, 1: {0: 3.0}}) is None  # one seed with two draws
    with pytest.raises(ValueError, match="2 seeds"):
        split.half_width(3, 1)
