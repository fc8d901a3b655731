"""The contract every exercise check must meet, shared by tests/test_checks_chNN.py:
it fails on the unsolved stub, and on each catalogued mutant with the diagnostic a learner needs."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from utils.checks import CheckFailure


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise NN.x: replace this line with your solution")


def assert_fails_on_stub(check: Callable) -> None:
    with pytest.raises(CheckFailure, match="not attempted yet"):
        check(stub)


def assert_mutant_diagnosed(check: Callable, mutant: Callable, expected: str) -> None:
    with pytest.raises(CheckFailure) as info:
        check(mutant)
    assert expected in str(info.value), str(info.value)
