"""The rotating sample of slow variants (tests/sampling.py): each day runs its share, a few days run them all."""

from __future__ import annotations

import math

import pytest

import sampling


@pytest.mark.parametrize(("n", "keep"), [(1, 1), (7, 2), (8, 3), (20, 20), (31, 4)])
def test_consecutive_days_cover_every_case_and_each_day_runs_keep(n: int, keep: int) -> None:
    seen: set[int] = set()
    for day in range(739_000, 739_000 + math.ceil(n / keep)):
        picked = sampling.chosen(n, keep, "salt", day)
        assert len(picked) == min(n, keep) and picked <= set(range(n))
        seen |= picked
    assert seen == set(range(n))


def _skipped(params: list) -> list[bool]:
    return [any(m.name == "skip" for m in p.marks) for p in params]


def test_rotating_marks_the_others_skipped_with_a_reason_that_reproduces_the_day(monkeypatch) -> None:
    monkeypatch.delenv(sampling.ALL_ENV, raising=False)
    monkeypatch.setenv(sampling.DAY_ENV, "740001")
    params = sampling.rotating([("a", 1), ("b", 2), ("c", 3), ("d", 4)], keep=1, salt="t", ids=list("abcd"))
    assert _skipped(params).count(False) == 1
    assert [p.id for p in params] == list("abcd") and params[0].values == ("a", 1)
    reason = next(m for p in params for m in p.marks if m.name == "skip").kwargs["reason"]
    assert "740001" in reason and "COURSE_TESTS=all" in reason
    # the same day gives the same sample; the next day moves the window
    assert _skipped(sampling.rotating(list("abcd"), 1, "t")) == _skipped(sampling.rotating(list("abcd"), 1, "t"))
    monkeypatch.setenv(sampling.DAY_ENV, "740002")
    assert _skipped(sampling.rotating(list("abcd"), 1, "t")) != _skipped(params)


def test_all_runs_every_case_and_bad_settings_say_what_to_do(monkeypatch) -> None:
    monkeypatch.setenv(sampling.ALL_ENV, "all")
    assert not any(_skipped(sampling.rotating(list(range(9)), keep=2, salt="t")))
    monkeypatch.delenv(sampling.ALL_ENV)
    monkeypatch.setenv(sampling.DAY_ENV, "monday")
    with pytest.raises(ValueError, match="whole number"):
        sampling.today()
    with pytest.raises(ValueError, match="at least one"):
        sampling.rotating([1, 2], keep=0, salt="t")
