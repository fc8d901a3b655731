"""Checks run the way the grader runs them: the check in this process, the learner's function in a real kernel.

:class:`StudentKernel` starts an IPython kernel (like the grader's, unsandboxed), imports a chapter's test
module there, and binds a function (the reference, the stub, or a catalogued mutant) to the exercise's name in
the notebook namespace. :func:`remote_contract_tests` then repeats the standard contract (passes on the
reference, fails on the stub, fails on every mutant with its diagnostic) through :mod:`utils.grade.remote`, so
that every verdict and every diagnostic a learner sees also survives the trip to the grader's process. A mutant
caught only by how it ran (an efficiency requirement, seen through the kernel's own report, which the kernel could
forge) passes there instead, with its diagnostic in a "not verified, no marks taken" note.
"""

from __future__ import annotations

import math
import queue
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from check_contract import assert_mutant_diagnosed_remotely
from sampling import rotating
from utils.checks import CheckFailure

ROOT = Path(__file__).resolve().parent.parent


class StudentKernel:
    """A started IPython kernel running from this repository, with ``tests/`` importable."""

    def __init__(self, test_module: str) -> None:
        from jupyter_client.manager import start_new_kernel

        from utils.grade.batch import _kernel_env

        env = _kernel_env()
        env["PYTHONPATH"] = f"{ROOT / 'tests'}:{env['PYTHONPATH']}"
        env.setdefault("OMP_NUM_THREADS", "1")  # the check runs here at the same time as the learner's code there
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(ROOT), env=env)
        self.test_module = test_module
        self.handle: Any = None
        self.spool = Path(tempfile.mkdtemp(prefix="remote-spool-"))
        self.output(f"import {test_module} as _tests\n", 120)

    def output(self, code: str, timeout: float) -> str:
        """Run ``code`` (not stored in the history); return what it printed. Errors are printed too."""
        printed: list[str] = []

        def hook(msg: dict[str, Any]) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                printed.append(content["text"])
            elif kind == "error":
                printed.append("\n".join(content["traceback"]))

        try:
            self.client.execute_interactive(code, timeout=timeout, output_hook=hook, store_history=False)
        except (TimeoutError, queue.Empty):
            self.manager.interrupt_kernel()
            from utils.grade.remote import RemoteTimeout

            raise RemoteTimeout(f"no answer within {timeout:g} s") from None
        return "".join(printed)

    def bind(self, name: str, expression: str) -> None:
        """``name = <expression>`` in the notebook namespace (``_tests`` is the chapter's test module)."""
        out = self.output(f"{name} = {expression}\n", 60)
        if out.strip():
            raise RuntimeError(f"binding {name} in the kernel printed: {out}")

    def remote(self, name: str) -> Any:
        """The learner's ``name`` as the grader sees it (one RemoteKernel per kernel, as in a graded run)."""
        from utils.grade.remote import RemoteFunction, RemoteKernel

        if self.handle is None:
            self.handle = RemoteKernel(self.output, timeout=600, spool=self.spool)
        return RemoteFunction(self.handle, name)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
        shutil.rmtree(self.spool, ignore_errors=True)


def remote_contract_tests(test_module: str, check: object, mutants: dict[str, list[tuple[Callable, str]]],
                          needs_model: tuple[str, ...] = ()) -> tuple[Callable, Callable, Callable, Callable]:
    """The contract of ``check_contract.contract_tests`` through a real kernel. Returns (kernel fixture, reference
    test, stub test, mutant test); a test module binds them to ``student_kernel`` and names starting with ``test_``."""

    @pytest.fixture(scope="module")
    def student_kernel():
        kernel = StudentKernel(test_module)
        yield kernel
        kernel.close()

    def _model_if_needed(request: pytest.FixtureRequest, name: str) -> None:
        if name in needs_model:
            request.getfixturevalue("model")

    @pytest.mark.parametrize("name", list(mutants))
    def passes_on_reference_remotely(name: str, student_kernel: StudentKernel, request: pytest.FixtureRequest,
                                     capsys: pytest.CaptureFixture) -> None:
        _model_if_needed(request, name)
        student_kernel.bind(name, f"_tests.REFERENCE[{name!r}]")
        assert getattr(check, name)(student_kernel.remote(name)) is None
        assert "passed" in capsys.readouterr().out

    @pytest.mark.parametrize("name", list(mutants))
    def fails_on_stub_remotely(name: str, student_kernel: StudentKernel) -> None:
        student_kernel.bind(name, "__import__('check_contract').stub")
        with pytest.raises(CheckFailure, match="not attempted yet"):
            getattr(check, name)(student_kernel.remote(name))

    # Every mutant is diagnosed in this process on every run (check_contract.contract_tests); through the kernel a
    # daily rotating third of each exercise's mutants runs (tests/sampling.py; COURSE_TESTS=all runs them all).
    sampled = [case for name, ms in mutants.items()
               for case in rotating([(name, i, e) for i, (_, e) in enumerate(ms)], keep=max(1, math.ceil(len(ms) / 3)),
                                    salt=f"{test_module}:{name}", ids=[m.__name__ for m, _ in ms])]

    @pytest.mark.parametrize("name, index, expected", sampled)
    def fails_on_mutant_remotely(name: str, index: int, expected: str, student_kernel: StudentKernel,
                                 request: pytest.FixtureRequest, capsys: pytest.CaptureFixture) -> None:
        _model_if_needed(request, name)
        student_kernel.bind(name, f"_tests.MUTANTS[{name!r}][{index}][0]")
        assert_mutant_diagnosed_remotely(getattr(check, name), student_kernel.remote(name), expected, capsys)

    return student_kernel, passes_on_reference_remotely, fails_on_stub_remotely, fails_on_mutant_remotely
