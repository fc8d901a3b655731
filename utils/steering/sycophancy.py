"""Chapter 03's sycophancy results, read from answers labelled by reading (``utils/data/sycophancy_labels.jsonl``).

Every condition of the sycophancy study (unsteered, the praise latent clamped, the praise vector) answered the same 30
overconfident users, and every one of those 150 answers was read and labelled: does it **agree** with the user's
false claim or approve of their weak work, does it **praise the user** (flattery aimed at the person, not at objects),
is it **flowery**. Rates come from those labels, so no rule's error enters them; the rules
(:func:`utils.steering.judges.agrees_with_user`, :func:`utils.steering.judges.praises_the_user`) are measured against
them per condition.

Conditions share their users, so a difference between a steered condition and the unsteered one is **paired**:
:func:`paired_difference` gives McNemar's exact test on the discordant users and a paired bootstrap interval for the
difference of rates (:mod:`utils.af.stats`, chapter 04).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

UNSTEERED = "none@0.0"


def by_condition(labels: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{condition: {prompt: row}}`` in file order (the unsteered condition first)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in labels:
        out.setdefault(row["condition"], {})[row["prompt"]] = row
    return out


def paired_difference(steered: Sequence[bool], plain: Sequence[bool]) -> dict[str, float]:
    """For the same users under two conditions: ``{"difference", "low", "high", "b", "c", "p"}`` — the difference of
    rates (steered − plain) with a paired bootstrap 95 % interval, and McNemar's exact test (``b`` users yes only when
    steered, ``c`` yes only unsteered, two-sided ``p``)."""
    from utils.af.stats import mcnemar_exact, paired_bootstrap_gap_interval

    difference, low, high = paired_bootstrap_gap_interval(steered, plain)
    b, c, p = mcnemar_exact(steered, plain)
    return {"difference": difference, "low": low, "high": high, "b": b, "c": c, "p": p}


def label_table(labels: Sequence[dict[str, Any]], keys: Sequence[str] = ("agrees", "praises_user")) -> list[dict[str, Any]]:
    """One row per condition: for each key, the labelled rate with its Wilson interval and, for the steered
    conditions, the paired difference from the unsteered condition on the same users."""
    from utils.steering.study import rate_with_interval

    conditions = by_condition(labels)
    plain = conditions[UNSTEERED]
    rows = []
    for condition, answers in conditions.items():
        prompts = [p for p in plain if p in answers]
        if len(prompts) != len(plain):
            raise ValueError(f"{condition} answers {len(answers)} users, the unsteered condition {len(plain)}: "
                             "a paired comparison needs the same users in both")
        row: dict[str, Any] = {"condition": condition, "n": len(prompts)}
        for key in keys:
            hits = [bool(answers[p][key]) for p in prompts]
            row[key] = rate_with_interval(hits)
            if condition != UNSTEERED:
                row[key + "_paired"] = paired_difference(hits, [bool(plain[p][key]) for p in prompts])
        rows.append(row)
    return rows


def rule_agreement(labels: Sequence[dict[str, Any]], rule: Callable[[str], bool], key: str,
                   only: Callable[[dict[str, Any]], bool] = lambda row: True) -> dict[str, dict[str, float]]:
    """Per condition (and ``"all"``), the rule's precision and recall against the reading labels ``key`` and its
    rate beside the labelled rate, on the rows ``only`` keeps: ``{condition: {"precision", "recall", "rule_rate",
    "label_rate", "n"}}`` (precision is nan where the rule says yes to nothing, recall where nothing is positive)."""
    groups: dict[str, list[tuple[bool, bool]]] = {}
    for row in labels:
        if only(row):
            pair = (bool(rule(row["answer"])), bool(row[key]))
            groups.setdefault(row["condition"], []).append(pair)
            groups.setdefault("all", []).append(pair)
    out = {}
    for condition, pairs in groups.items():
        tp = sum(r and y for r, y in pairs)
        said, positive = sum(r for r, _ in pairs), sum(y for _, y in pairs)
        out[condition] = {"precision": tp / said if said else float("nan"), "recall": tp / positive if positive else float("nan"),
                          "rule_rate": said / len(pairs), "label_rate": positive / len(pairs), "n": len(pairs)}
    return out


def reader_agreement(labels: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """``(same, n)``: on the answers two readers labelled independently for agreement, how many labels match."""
    both = [row for row in labels if row["split"] != "new"]
    return sum(row["agrees"] == row["second_reader"]["agrees"] for row in both), len(both)
