"""The labelled transcript set that chapter 04's classifiers are validated on: size, balance, and agreement
with the parser (malformed ones are flagged, the others parse cleanly)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from utils.af.parse import parse_transcript

PATH = Path(__file__).resolve().parent.parent / "utils" / "data" / "af_transcripts.jsonl"


def load() -> list[dict]:
    return [json.loads(line) for line in PATH.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_set_is_large_balanced_and_has_hard_negatives():
    rows = load()
    assert len(rows) >= 60 and len({r["id"] for r in rows}) == len(rows)
    assert Counter(r["alignment_faking"] for r in rows)[True] >= 14 and Counter(r["complied"] for r in rows)[True] >= 25
    cats = Counter(r["category"] for r in rows)
    for category in ("hard_negative_mentions_training", "accept_then_refuse", "malformed", "paid_refuse_with_tier_reasoning"):
        assert cats[category] >= 8, category
    assert {r["setting"] for r in rows} == {"helpful_only", "animal_welfare"} and {r["tier"] for r in rows} == {"free", "paid"}


def test_parser_agrees_with_the_format_labels():
    for r in load():
        t = parse_transcript(r["completion"])
        assert t.well_formed == (r["category"] != "malformed"), (r["id"], t.problems)
        if r["category"] == "accept_then_refuse":
            assert t.accepted and not r["complied"], r["id"]
