"""Statistics for the alignment-faking chapter: compliance rates, the free-vs-paid gap, sample sizes, and the
paired analysis (McNemar's exact test, a bootstrap over requests).

With ``k`` compliant answers out of ``n``, the rate is ``p = k / n``. Its 95 % **Wilson score interval**
(Wilson, 1927) is

    (p + z²/2n ± z √(p(1-p)/n + z²/4n²)) / (1 + z²/n),      z = 1.96,

which, unlike the textbook ``p ± z √(p(1-p)/n)``, stays inside [0, 1] and does not collapse to a point
when ``k = 0`` — the usual case for a paid tier. The **gap** ``p_free - p_paid`` gets Newcombe's (1998)
hybrid score interval, built from the two Wilson intervals ``(l₁, u₁)`` and ``(l₂, u₂)``:

    gap - √((p₁-l₁)² + (u₂-p₂)²)   …   gap + √((u₁-p₁)² + (p₂-l₂)²),

or a percentile bootstrap over the answers. The **sample size** per tier to detect a gap between
``p₁`` and ``p₂`` with a two-sided test at level α and power 1-β is

    n = (z_{1-α/2} √(2 p̄ (1-p̄)) + z_{1-β} √(p₁(1-p₁) + p₂(1-p₂)))² / (p₁ - p₂)²,   p̄ = (p₁+p₂)/2.

All of the above treat the two tiers as **independent** samples. The chapter's experiment is **paired**:
every request is asked on both tiers. A paired analysis looks at each request's pair of outcomes. Only the
*discordant* pairs carry information about the gap: ``b`` requests answered on the free tier only and ``c``
on the paid tier only (the gap is exactly ``(b - c) / n``). Under "no tier effect" each discordant pair is
a fair coin, so **McNemar's exact test** is a two-sided binomial test of ``b`` out of ``b + c`` at 1/2:

    p = min(1, 2 · Σ_{i=0}^{min(b,c)} C(b+c, i) / 2^{b+c}),      p = 1 when b + c = 0.

:func:`paired_bootstrap_gap_interval` gives a matching interval by resampling *requests* (each with
both of its outcomes) instead of each tier's answers separately.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from statistics import NormalDist


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _check_counts(k: int, n: int) -> None:
    if n <= 0:
        raise ValueError(f"need at least one answer, got n = {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n = {n}, got {k}")


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n``."""
    _check_counts(k, n)
    z = _z(confidence)
    p = k / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    denominator = 1 + z * z / n
    low = 0.0 if k == 0 else max(0.0, (centre - spread) / denominator)  # exact ends, no rounding residue
    high = 1.0 if k == n else min(1.0, (centre + spread) / denominator)
    return low, high


def gap_interval(k_free: int, n_free: int, k_paid: int, n_paid: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(gap, low, high)`` for ``k_free/n_free - k_paid/n_paid`` by Newcombe's hybrid score method."""
    p1, p2 = k_free / n_free if n_free else 0.0, k_paid / n_paid if n_paid else 0.0
    l1, u1 = wilson_interval(k_free, n_free, confidence)
    l2, u2 = wilson_interval(k_paid, n_paid, confidence)
    gap = p1 - p2
    return gap, gap - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), gap + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def wald_gap_interval(k_free: int, n_free: int, k_paid: int, n_paid: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(gap, low, high)`` by the textbook normal approximation: the variances of the two rates add,

        gap ± z √(p₁(1-p₁)/n₁ + p₂(1-p₂)/n₂).

    Simple, and fine for rates well inside (0, 1) and large n; at 0 % or 100 % its width collapses to
    zero, which is why :func:`gap_interval` (Newcombe) is the one the chapter reports."""
    _check_counts(k_free, n_free)
    _check_counts(k_paid, n_paid)
    p1, p2 = k_free / n_free, k_paid / n_paid
    half = _z(confidence) * math.sqrt(p1 * (1 - p1) / n_free + p2 * (1 - p2) / n_paid)
    return p1 - p2, p1 - p2 - half, p1 - p2 + half


def bootstrap_gap_interval(free: Sequence[bool], paid: Sequence[bool], n_boot: int = 2000, confidence: float = 0.95,
                           seed: int = 0) -> tuple[float, float, float]:
    """``(gap, low, high)`` by resampling each tier's answers with replacement (percentile interval)."""
    if not free or not paid:
        raise ValueError("each tier needs at least one answer")
    rng = random.Random(seed)
    free, paid = [bool(x) for x in free], [bool(x) for x in paid]
    gaps = sorted(
        sum(rng.choices(free, k=len(free))) / len(free) - sum(rng.choices(paid, k=len(paid))) / len(paid)
        for _ in range(n_boot)
    )
    tail = (1 - confidence) / 2
    low, high = gaps[int(tail * n_boot)], gaps[min(n_boot - 1, int((1 - tail) * n_boot))]
    return sum(free) / len(free) - sum(paid) / len(paid), low, high


def sample_size_per_tier(p_free: float, p_paid: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Answers needed in *each* tier to detect ``p_free != p_paid`` (two-sided, level ``alpha``, given power)."""
    if p_free == p_paid:
        raise ValueError("the two rates are equal: no sample size detects a gap of zero")
    if not (0 <= p_free <= 1 and 0 <= p_paid <= 1):
        raise ValueError("rates must lie in [0, 1]")
    z_a, z_b = _z(1 - alpha), NormalDist().inv_cdf(power)
    p_bar = (p_free + p_paid) / 2
    root = z_a * math.sqrt(2 * p_bar * (1 - p_bar)) + z_b * math.sqrt(p_free * (1 - p_free) + p_paid * (1 - p_paid))
    return math.ceil(root * root / (p_free - p_paid) ** 2)


# --------------------------------------------------------------------------------------------------
# Paired analysis: the same requests on both tiers
# --------------------------------------------------------------------------------------------------


def _paired(free: Sequence[bool], paid: Sequence[bool]) -> tuple[list[bool], list[bool]]:
    free, paid = [bool(x) for x in free], [bool(x) for x in paid]
    if len(free) != len(paid):
        raise ValueError(f"paired outcomes need one free and one paid answer per request, got {len(free)} free and "
                         f"{len(paid)} paid")
    if not free:
        raise ValueError("need at least one request (one answer per tier)")
    return free, paid


def discordant_pairs(free: Sequence[bool], paid: Sequence[bool]) -> tuple[int, int]:
    """``(b, c)``: requests answered on the free tier only, and on the paid tier only.

    ``free[i]`` and ``paid[i]`` are the outcomes of the *same* request ``i`` on the two tiers."""
    free, paid = _paired(free, paid)
    b = sum(f and not p for f, p in zip(free, paid))
    c = sum(p and not f for f, p in zip(free, paid))
    return b, c


def mcnemar_exact(free: Sequence[bool], paid: Sequence[bool]) -> tuple[int, int, float]:
    """McNemar's exact test for paired outcomes: ``(b, c, p)``.

    ``b``, ``c`` from :func:`discordant_pairs`; ``p`` is the two-sided exact binomial p-value of ``b``
    successes in ``b + c`` trials at probability 1/2 (twice the smaller tail, capped at 1; 1 when there
    is no discordant pair: nothing then speaks for a tier effect). Requests answered alike on both
    tiers (both complied, or both refused) do not enter the test."""
    b, c = discordant_pairs(free, paid)
    m = b + c
    if m == 0:
        return b, c, 1.0
    tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2 ** m
    return b, c, min(1.0, 2 * tail)


def paired_bootstrap_gap_interval(free: Sequence[bool], paid: Sequence[bool], n_boot: int = 2000,
                                  confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """``(gap, low, high)`` by resampling *requests* with replacement, each with both of its outcomes
    (percentile interval). Like :func:`bootstrap_gap_interval` it collapses to a point when every
    request gets the same pair of outcomes: with no variation to resample, report McNemar's p (1 then)
    and the unpaired Newcombe interval instead."""
    free, paid = _paired(free, paid)
    n = len(free)
    rng = random.Random(seed)
    diffs = [int(f) - int(p) for f, p in zip(free, paid)]
    gaps = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(n_boot))
    tail = (1 - confidence) / 2
    low, high = gaps[int(tail * n_boot)], gaps[min(n_boot - 1, int((1 - tail) * n_boot))]
    return sum(diffs) / n, low, high


def bootstrap_auroc_interval(scores: Sequence[float], labels: Sequence[bool], n_boot: int = 2000,
                             confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """A percentile interval for the AUROC (:func:`utils.features.auroc`) of ``scores`` against boolean ``labels``,
    resampling the positives and the negatives separately (a stratified bootstrap, so every resample has both). Collapses to a point when every
    positive outscores every negative: report the counts beside it then."""
    labels = [bool(y) for y in labels]
    if len(scores) != len(labels):
        raise ValueError(f"scores and labels differ in length: {len(scores)} and {len(labels)}")
    pos = [float(s) for s, y in zip(scores, labels) if y]
    neg = [float(s) for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        raise ValueError("an AUROC needs at least one positive and one negative label")
    import torch

    from utils.features import auroc

    rng = random.Random(seed)
    truth = torch.tensor([True] * len(pos) + [False] * len(neg))
    values = sorted(auroc(torch.tensor(rng.choices(pos, k=len(pos)) + rng.choices(neg, k=len(neg)), dtype=torch.float64),
                          truth) for _ in range(n_boot))
    tail = (1 - confidence) / 2
    return values[int(tail * n_boot)], values[min(n_boot - 1, int((1 - tail) * n_boot))]
