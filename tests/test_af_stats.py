"""Compliance-gap statistics against textbook values and their defining properties."""

from __future__ import annotations

import math

import pytest

from utils import af_stats


def test_wilson_interval_textbook_values():
    low, high = af_stats.wilson_interval(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)
    low, high = af_stats.wilson_interval(0, 10)
    assert low == 0.0 and round(high, 4) == 0.2775  # never the degenerate [0, 0] of the textbook interval
    low, high = af_stats.wilson_interval(10, 10)
    assert round(low, 4) == 0.7225 and high == pytest.approx(1.0)


def test_wilson_interval_shrinks_with_more_answers():
    widths = [h - l for l, h in (af_stats.wilson_interval(n // 5, n) for n in (20, 80, 320))]
    assert widths[0] > widths[1] > widths[2]


def test_gap_interval_contains_the_gap_and_excludes_zero_only_when_it_should():
    gap, low, high = af_stats.gap_interval(14, 100, 1, 100)
    assert gap == pytest.approx(0.13) and 0 < low < gap < high
    gap, low, high = af_stats.gap_interval(3, 20, 1, 20)
    assert low < 0 < high  # 15 % vs 5 % on 20 answers each is not enough to tell


def test_bootstrap_agrees_with_newcombe_for_large_samples():
    free = [True] * 30 + [False] * 170
    paid = [True] * 4 + [False] * 196
    gap, low, high = af_stats.bootstrap_gap_interval(free, paid, n_boot=4000, seed=1)
    _, n_low, n_high = af_stats.gap_interval(30, 200, 4, 200)
    assert gap == pytest.approx(0.13)
    assert low == pytest.approx(n_low, abs=0.02) and high == pytest.approx(n_high, abs=0.02)


def test_sample_size_classic_value():
    assert af_stats.sample_size_per_tier(0.5, 0.4) == 388  # the textbook 387.3, rounded up
    assert af_stats.sample_size_per_tier(0.14, 0.01) < af_stats.sample_size_per_tier(0.05, 0.01)


@pytest.mark.parametrize("call, message", [
    (lambda: af_stats.wilson_interval(3, 0), "at least one answer"),
    (lambda: af_stats.wilson_interval(11, 10), "between 0 and n"),
    (lambda: af_stats.sample_size_per_tier(0.2, 0.2), "equal"),
    (lambda: af_stats.bootstrap_gap_interval([], [True]), "at least one answer"),
])
def test_bad_input_is_refused_clearly(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_wald_gap_interval_matches_hand_computation_and_collapses_at_the_extremes():
    gap, low, high = af_stats.wald_gap_interval(30, 100, 10, 100)
    half = 1.959964 * math.sqrt(0.3 * 0.7 / 100 + 0.1 * 0.9 / 100)  # 0.10735
    assert gap == pytest.approx(0.2) and low == pytest.approx(0.2 - half, abs=1e-5) and high == pytest.approx(0.2 + half, abs=1e-5)
    gap, low, high = af_stats.wald_gap_interval(40, 40, 0, 40)  # 100 % vs 0 %: zero width, Newcombe is not
    assert low == high == gap == 1.0
    _, n_low, n_high = af_stats.gap_interval(40, 40, 0, 40)
    assert n_high - n_low > 0.05
    with pytest.raises(ValueError):
        af_stats.wald_gap_interval(5, 0, 1, 10)
