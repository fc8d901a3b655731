"""No verdict rests on what a kernel reports (issue 24, item 2): a requirement on *how* the learner's code ran
(checks 00.3, 00.4, 05.5) fails the check in the notebook, where the watch sees the code run, and costs no marks in
grading, where the watch reads the kernel's own report, which that kernel's code can forge; the pass line then says
it was not verified. The remote mutant tests (tests/remote_harness.py) show the same through a real kernel."""

from __future__ import annotations

import pytest
import torch

from utils.checks import UNVERIFIED, CheckFailure, counting_block_calls, exercise, require_watched


class TwoBlocks(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([torch.nn.Identity(), torch.nn.Identity()])

    def forward(self, x: torch.Tensor, stop_at: int = 2) -> torch.Tensor:
        for block in self.blocks[:stop_at]:
            x = block(x)
        return x


MODEL = TwoBlocks()


@pytest.fixture(autouse=True)
def forget_test_chapter():
    """The checks below register a chapter "99"; no other test should see it."""
    import utils.checks

    yield
    utils.checks._REGISTRY.pop("99", None)


def _check_as_graded(remote: bool):
    """A check requiring that block 1 never runs; ``remote``: the learner's function "ran in a kernel"."""

    @exercise("99", 1, "first_block_only", "test only")
    def check(fn):
        watch = counting_block_calls(MODEL)
        with watch as calls:
            if remote:
                watch.remote = True  # as utils.grade.remote.RemoteFunction marks it
            fn(torch.ones(2))
        require_watched(watch, not calls[1], "only block 0 ran", "block 1 ran too: stop after block 0.")
        return "values right"

    return check


def efficient(x):
    return MODEL(x, stop_at=1)


def wasteful(x):
    return MODEL(x, stop_at=2)


def test_in_the_notebook_a_wasteful_function_fails(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(CheckFailure, match="block 1 ran too"):
        _check_as_graded(remote=False)(wasteful)
    _check_as_graded(remote=False)(efficient)
    out = capsys.readouterr().out
    assert "passed — values right" in out and UNVERIFIED not in out


def test_in_grading_the_report_costs_no_marks_and_is_said_to_be_unverified(capsys: pytest.CaptureFixture) -> None:
    _check_as_graded(remote=True)(wasteful)  # a kernel that reports honestly: passes, with the problem noted
    out = capsys.readouterr().out
    assert "passed" in out and f"{UNVERIFIED}, no marks taken" in out and "block 1 ran too" in out
    _check_as_graded(remote=True)(efficient)  # what a forged "efficient" report earns: the same pass, noted
    out = capsys.readouterr().out
    assert "passed" in out and f"{UNVERIFIED}: only block 0 ran" in out


def test_notes_do_not_leak_into_the_next_check(capsys: pytest.CaptureFixture) -> None:
    _check_as_graded(remote=True)(wasteful)
    capsys.readouterr()
    _check_as_graded(remote=False)(efficient)
    assert UNVERIFIED not in capsys.readouterr().out


def test_the_remote_call_marks_every_open_watch() -> None:
    from utils.grade import remote

    class Kernel:  # a kernel that answers without any report
        def call(self, target, args, kwargs, watches):
            return {"status": "ok", "value": 3, "watch": [None] * len(watches)}

    watch = counting_block_calls(MODEL)
    with watch:
        assert remote.RemoteFunction(Kernel(), "f")(1) == 3
    assert watch.remote
