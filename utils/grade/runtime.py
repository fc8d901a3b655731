"""The grader's half that runs *inside* the learner's kernel (and the exercise look-up both halves share).

:mod:`utils.grade.batch` executes a submission in a fresh kernel, then sends one hidden snippet per
exercise that calls :func:`run`. :func:`run` reloads the check modules (so a notebook that patched
a check, or this module, is undone), fetches the learner's object by name from the notebook's
globals, runs the check with its output captured, and prints exactly one line: a per-run random
nonce (which the notebook never sees before grading) followed by a JSON result. The grader reads
only lines that start with that nonce, so a notebook that prints a fake pass line or fake JSON
still fails.

This is *basic* tamper resistance. It defeats printed pass lines or JSON, and a notebook that
patches a check, the exercise registry or this module. It cannot stop a determined forger: code
that runs in the same process as the check can always interfere with it (for example by replacing
``importlib.reload`` or by rewriting what goes through ``sys.stdout``). Most clumsy interference
(a redirected ``sys.stdout``, a deleted module) leaves no result line, which the grader records as
a failure.

Extra check modules: the environment variable ``COURSE_CHECKS_PATH`` (directories separated by
``os.pathsep``) is appended to the search path of :mod:`utils.checks`, so a file ``ch99.py`` in one
of those directories is found as ``utils.checks.ch99``, exactly like a real chapter's checks. The
tests use this for a tiny fake chapter "99"; a teacher could use it for private checks. The
grader's kernel inherits the grader's environment, so setting the variable once covers both halves.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import traceback
from types import ModuleType
from typing import Any

CHECKS_PATH_ENV = "COURSE_CHECKS_PATH"


def _extend_checks_path(checks: ModuleType) -> None:
    """Append the directories in ``$COURSE_CHECKS_PATH`` to ``utils.checks.__path__`` (idempotent)."""
    for directory in filter(None, os.environ.get(CHECKS_PATH_ENV, "").split(os.pathsep)):
        if directory not in checks.__path__:
            checks.__path__.append(directory)


def exercises(chapter: str) -> list[Any]:
    """The chapter's :class:`utils.checks.Exercise` list, honouring ``$COURSE_CHECKS_PATH``.

    Raises ``ModuleNotFoundError`` when the chapter has no check module.
    """
    checks = importlib.import_module("utils.checks")
    _extend_checks_path(checks)
    return checks.exercises(chapter)


def _fresh_checks(chapter: str) -> ModuleType:
    """Reload ``utils.checks`` and ``utils.checks.ch<chapter>`` from disk and return the former."""
    checks = importlib.reload(importlib.import_module("utils.checks"))
    _extend_checks_path(checks)  # reload resets __path__
    name = f"utils.checks.ch{chapter}"
    if name in sys.modules:
        importlib.reload(sys.modules[name])  # re-registers its exercises in the fresh registry
    else:
        importlib.import_module(name)
    return checks


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def evaluate(chapter: str, name: str, namespace: dict[str, Any]) -> dict[str, Any]:
    """Run the check of exercise ``name`` of ``chapter`` on ``namespace[name]``; never raises
    (except ``KeyboardInterrupt``, which the grader uses to stop a check that runs too long).

    Returns ``{"passed": bool, "message": str, "missing": bool, "output": str}``; ``output`` is
    what the check and the learner's code printed.
    """
    result: dict[str, Any] = {"passed": False, "message": "", "missing": False, "output": ""}
    try:
        checks = _fresh_checks(chapter)
        found = [e for e in checks.exercises(chapter) if e.name == name]
        if not found:
            result["message"] = f"the grader has no check named `{name}` for chapter {chapter}"
            return result
        if name not in namespace:
            result["missing"] = True
            result["message"] = (
                f"`{name}` is not defined — did you rename or delete it? Keep the function name from the exercise."
            )
            return result
        captured = io.StringIO()
        try:
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                found[0].check(namespace[name])  # returns None on a pass, raises CheckFailure otherwise
        finally:
            result["output"] = captured.getvalue()[-4000:]
        result["passed"] = True
        result["message"] = _last_line(result["output"]) or "passed"
    except KeyboardInterrupt:
        raise
    except checks_failure_types() as failure:
        result["message"] = str(failure)
    except BaseException as error:  # noqa: BLE001 - a crash (or SystemExit) in the learner's code or the check
        where = traceback.extract_tb(error.__traceback__)[-1:]
        place = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
        result["message"] = f"the check crashed: {type(error).__name__}: {error}{place}"
    return result


def checks_failure_types() -> tuple[type[BaseException], ...]:
    """The class(es) a failing check raises: the current ``utils.checks.CheckFailure``."""
    checks = sys.modules.get("utils.checks")
    failure = getattr(checks, "CheckFailure", None)
    return (failure,) if isinstance(failure, type) and issubclass(failure, BaseException) else ()


def run(nonce: str, chapter: str, name: str, namespace: dict[str, Any]) -> None:
    """Evaluate one exercise and print ``nonce + JSON`` on one line (what the grader parses)."""
    result = evaluate(chapter, name, namespace)
    sys.stdout.write(nonce + json.dumps(result, ensure_ascii=True) + "\n")
    sys.stdout.flush()


def snippet(nonce: str, chapter: str, name: str) -> str:
    """The code the grader runs in the kernel for one exercise (leaves no names behind)."""
    args = ", ".join(json.dumps(a) for a in (nonce, chapter, name))
    return (
        '__import__("importlib").reload(__import__("utils.grade.runtime", fromlist=["run"]))'
        f'.run({args}, __import__("builtins").globals())'
    )
