"""Compliance-gap statistics against textbook values and their defining properties."""

from __future__ import annotations

import math

import pytest

from utils.af import stats as af_stats


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


def test_sample_sizes_quoted_in_chapter_04():
    """Chapter 04, section 5: 14 % vs 0 % needs about 51 per tier; the follow-up's 1-point threshold about 780."""
    assert af_stats.sample_size_per_tier(0.14, 0.0) == 51
    assert af_stats.sample_size_per_tier(0.02, 0.0) == 388
    assert af_stats.sample_size_per_tier(0.01, 0.0) == 780


# --- the paired analysis ---------------------------------------------------------------------------
def _pairs(both, b, c, neither):
    free = [True] * both + [True] * b + [False] * c + [False] * neither
    paid = [True] * both + [False] * b + [True] * c + [False] * neither
    return free, paid


def test_mcnemar_exact_textbook_values():
    assert af_stats.mcnemar_exact(*_pairs(20, 6, 1, 13)) == (6, 1, 0.125)  # 2 · (1 + 7) / 2⁷
    assert af_stats.mcnemar_exact(*_pairs(0, 10, 0, 5)) == (10, 0, 2 / 1024)
    assert af_stats.mcnemar_exact(*_pairs(5, 3, 3, 5)) == (3, 3, 1.0)  # b = c: the doubled tail is capped
    assert af_stats.mcnemar_exact(*_pairs(12, 0, 0, 28)) == (0, 0, 1.0)  # no discordant pair
    # symmetric in the two tiers, and blind to the concordant requests
    assert af_stats.mcnemar_exact(*_pairs(3, 1, 5, 9))[2] == af_stats.mcnemar_exact(*_pairs(30, 5, 1, 0))[2]
    # b counts free-only requests, c paid-only ones; a request complied with on both tiers is in neither
    assert af_stats.discordant_pairs([True, False, True], [False, True, True]) == (1, 1)


def test_mcnemar_matches_a_brute_force_two_sided_binomial_test():
    """Against the definition: the probability, under Binomial(b + c, 1/2), of an outcome no more likely than b."""
    import math as m

    for b in range(0, 9):
        for c in range(0, 9):
            n = b + c
            if n == 0:
                continue
            pmf = [m.comb(n, i) / 2 ** n for i in range(n + 1)]
            want = min(1.0, sum(q for q in pmf if q <= pmf[b] * (1 + 1e-12)))
            assert af_stats.mcnemar_exact(*_pairs(2, b, c, 3))[2] == pytest.approx(want, rel=1e-12), (b, c)


def test_pairing_finds_the_gap_the_unpaired_interval_misses():
    """Chapter 04's made-up example: 20 both, 8 free only, 12 neither, out of 40."""
    free, paid = _pairs(20, 8, 0, 12)
    gap, low, high = af_stats.gap_interval(sum(free), 40, sum(paid), 40)
    assert gap == pytest.approx(0.2) and low < 0 < high
    assert af_stats.mcnemar_exact(free, paid) == (8, 0, 1 / 128)
    p_gap, p_low, p_high = af_stats.paired_bootstrap_gap_interval(free, paid)
    assert p_gap == pytest.approx(0.2) and 0 < p_low < p_gap < p_high


def test_paired_bootstrap_resamples_requests_and_collapses_without_variation():
    free, paid = _pairs(10, 12, 2, 16)
    gap, low, high = af_stats.paired_bootstrap_gap_interval(free, paid, n_boot=4000, seed=3)
    assert gap == pytest.approx(10 / 40) and low < gap < high
    # the paired interval is narrower than the unpaired bootstrap on the same answers (positive correlation)
    _, u_low, u_high = af_stats.bootstrap_gap_interval(free, paid, n_boot=4000, seed=3)
    assert high - low < u_high - u_low
    assert af_stats.paired_bootstrap_gap_interval(*_pairs(5, 0, 0, 5)) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("call, message", [
    (lambda: af_stats.mcnemar_exact([True, False], [True]), "one free and one paid answer per request"),
    (lambda: af_stats.mcnemar_exact([], []), "at least one request"),
    (lambda: af_stats.paired_bootstrap_gap_interval([True], [True, False]), "one free and one paid"),
])
def test_paired_input_is_checked(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_bootstrap_auroc_interval_contains_the_auroc_and_narrows_with_more_data():
    import random

    rng = random.Random(0)
    def draw(n):  # positives score higher on average, with overlap
        labels = [i % 2 == 0 for i in range(n)]
        return [rng.gauss(1.0 if y else 0.0, 1.0) for y in labels], labels
    small, large = draw(40), draw(400)
    import torch

    from utils.features import auroc

    def point(scores, labels):
        return auroc(torch.tensor(scores, dtype=torch.float64), torch.tensor(labels))
    lo_s, hi_s = af_stats.bootstrap_auroc_interval(*small, n_boot=500)
    lo_l, hi_l = af_stats.bootstrap_auroc_interval(*large, n_boot=500)
    assert lo_s <= point(*small) <= hi_s and lo_l <= point(*large) <= hi_l
    assert hi_l - lo_l < hi_s - lo_s and 0.6 < lo_l < hi_l < 0.9
    assert af_stats.bootstrap_auroc_interval([0.0, 1.0, 1.0], [False, True, True]) == (1.0, 1.0)


@pytest.mark.parametrize("scores, labels, message", [
    ([0.1, 0.2], [True, True], "positive and one negative"),
    ([0.1], [True, False], "differ in length"),
])
def test_bootstrap_auroc_interval_refuses_bad_input(scores, labels, message):
    with pytest.raises(ValueError, match=message):
        af_stats.bootstrap_auroc_interval(scores, labels)
