"""Exhaustive variants, sampled: a slow parametrised test runs a rotating share of its cases on each day.

``make test`` must stay within its time budget on 2 cores, yet some tests repeat one mechanism over many cases
(every catalogued mutant again through a real kernel, every attack again with the verdicts in the kernel, every
chapter's victim). :func:`rotating` keeps ``keep`` of ``n`` cases each day and skips the others with a reason that
says how to run them; the window moves by ``keep`` every day, so ``ceil(n / keep)`` consecutive days (CI runs, or a
week of anyone's ``make test``) cover every case. Which cases run is a pure function of the day, so a failure is
reproduced with the same day:

    COURSE_TESTS=all make test          # every case of every sampled test (``make test-all``)
    COURSE_TEST_DAY=740000 make test    # the sample of that day (the number is printed in each skip reason)
"""

from __future__ import annotations

import datetime
import os
import zlib
from collections.abc import Sequence
from typing import Any

import pytest

ALL_ENV = "COURSE_TESTS"
DAY_ENV = "COURSE_TEST_DAY"


def today() -> int:
    """The day whose sample runs: ``COURSE_TEST_DAY`` if set, else the UTC date's proleptic ordinal."""
    value = os.environ.get(DAY_ENV, "").strip()
    if value:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{DAY_ENV}={value!r}: give a whole number (a day as printed in a skip reason)") from None
    return datetime.datetime.now(datetime.timezone.utc).date().toordinal()


def chosen(n: int, keep: int, salt: str, day: int) -> set[int]:
    """The indices among ``range(n)`` that run on ``day``: a window of ``keep`` consecutive ones (wrapping round),
    starting at ``(day * keep + crc32(salt)) mod n``, so consecutive days cover every index."""
    if n <= keep:
        return set(range(n))
    start = (day * keep + zlib.crc32(salt.encode())) % n
    return {(start + j) % n for j in range(keep)}


def rotating(cases: Sequence[Any], keep: int, salt: str, ids: Sequence[str] | None = None) -> list[Any]:
    """``cases`` for ``pytest.mark.parametrize``, each outside today's window marked skipped with a reason.

    ``cases`` are values or tuples as parametrize takes them (or ``pytest.param`` objects); ``salt`` (usually the
    test's name) keeps two sampled tests from moving in step. With ``COURSE_TESTS=all`` nothing is skipped."""
    if keep < 1:
        raise ValueError(f"keep={keep}: run at least one case a day")
    if os.environ.get(ALL_ENV, "").strip().lower() == "all":
        run = set(range(len(cases)))
    else:
        run = chosen(len(cases), keep, salt, today())
    day = today()
    params = []
    for i, case in enumerate(cases):
        case_id = ids[i] if ids is not None else None
        if isinstance(case, type(pytest.param(None))):
            values, marks, case_id = case.values, list(case.marks), case.id or case_id
        else:
            values, marks = (case if isinstance(case, tuple) else (case,)), []
        if i not in run:
            marks.append(pytest.mark.skip(reason=f"sampled out on day {day}, a rotating share runs each day "
                                                 f"({ALL_ENV}=all runs every case, {DAY_ENV}={day} this day's)"))
        params.append(pytest.param(*values, marks=marks, id=case_id))
    return params
