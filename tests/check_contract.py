"""The contract every exercise check must meet, shared by tests/test_checks_chNN.py:
it fails on the unsolved stub, and on each catalogued mutant with the diagnostic a learner needs."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

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


def assert_mutant_diagnosed_remotely(check: Callable, mutant: Callable, expected: str,
                                     capsys: pytest.CaptureFixture) -> None:
    """As :func:`assert_mutant_diagnosed`, through the grader: a mutant caught only by how it ran (an efficiency
    requirement, seen by the kernel's own report) passes there, and its pass line must say the requirement was
    not verified, with the same diagnostic (utils.checks.require_watched)."""
    from utils.checks import UNVERIFIED

    capsys.readouterr()
    try:
        check(mutant)
    except CheckFailure as failure:
        assert expected in str(failure), str(failure)
        return
    printed = capsys.readouterr().out
    assert f"{UNVERIFIED}, no marks taken" in printed and expected in printed, printed


def contract_tests(check: object, reference: dict[str, Callable], mutants: dict[str, list[tuple[Callable, str]]],
                   needs_model: Collection[str] = ()) -> tuple[Callable, Callable, Callable]:
    """The three standard tests of a chapter's checks, parametrised over its exercises; a test module
    binds them to names starting with ``test_``. Exercises in ``needs_model`` get the session model
    fixture loaded first (the others stay model-free)."""

    def _model_if_needed(request: pytest.FixtureRequest, name: str) -> None:
        if name in needs_model:
            request.getfixturevalue("model")

    @pytest.mark.parametrize("name", list(mutants))
    def passes_on_reference(name: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture) -> None:
        _model_if_needed(request, name)
        assert getattr(check, name)(reference[name]) is None
        assert "passed" in capsys.readouterr().out

    @pytest.mark.parametrize("name", list(mutants))
    def fails_on_stub(name: str) -> None:
        assert_fails_on_stub(getattr(check, name))

    @pytest.mark.parametrize(
        "name, mutant, expected",
        [(name, m, e) for name, ms in mutants.items() for m, e in ms],
        ids=[m.__name__ for ms in mutants.values() for m, _ in ms],
    )
    def fails_on_mutant_with_diagnostic(name: str, mutant: Callable, expected: str, request: pytest.FixtureRequest) -> None:
        _model_if_needed(request, name)
        assert_mutant_diagnosed(getattr(check, name), mutant, expected)

    return passes_on_reference, fails_on_stub, fails_on_mutant_with_diagnostic


def assert_passes_repeatedly(check: Callable, reference: Callable, capsys: Any, times: int = 5) -> None:
    """A check with randomised cases never trips the reference: ``times`` runs, each returning None and printing
    its one pass line."""
    for _ in range(times):
        assert check(reference) is None
    assert capsys.readouterr().out.count("passed") == times
