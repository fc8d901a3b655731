"""Autograder: run submitted notebooks in fresh kernels and grade every exercise with its check.

Usage::

    python -m utils.grade NOTEBOOK_OR_FOLDER... [--json FILE] [--csv FILE]
                          [--timeout S] [--check-timeout S]

Folders are searched recursively for ``*.ipynb`` (``.ipynb_checkpoints`` and hidden folders are
skipped). For each notebook the grader

1. finds its chapter: metadata ``course.chapter``, else an ``NN_`` in the file name
   (``alice_00_setup.ipynb`` is chapter 00, and so is ``bob_00.ipynb``);
2. copies it into a temporary folder and executes every code cell in order in a fresh ``python3``
   kernel started there, carrying on after errors. The whole notebook has ``--timeout`` seconds: a
   cell that runs past what is left is interrupted ("cell N timed out ... (infinite loop?)") and
   the cells after it are skipped. A kernel that dies (``os._exit``, out of memory) fails every
   exercise with that reason;
3. checks each exercise (``--check-timeout`` seconds per call). For a chapter whose check module
   sets ``GRADED_REMOTELY = True`` (every chapter of the course) the check runs here, in the grader, and only the
   learner's function runs in the kernel, answering with data (:mod:`utils.grade.remote`): nothing
   the notebook does inside its kernel can make the comparison pass. For the other chapters the check
   still runs in that kernel, through :mod:`utils.grade.runtime`, reading only result lines marked
   with a random nonce (the notebook's printed output is never trusted, but code in that process can
   interfere: this remains only for a teacher's own check modules that do not set the flag).

It prints one row per exercise and a score line per notebook; ``--json`` / ``--csv`` write the
same records (notebook, chapter, exercise, name, title, passed, message, notes). Submissions are
never modified, and reports are rewritten atomically after every notebook, with all the notebooks
graded so far (a batch that is stopped or killed keeps them). A notebook the grader cannot read or
grade, whatever the reason, gets a failed record saying why; the batch goes on. Everything printed
or written is stripped of terminal control sequences, and CSV cells a spreadsheet would take for a
formula start with ``'`` (:mod:`utils.grade.safe_text`). The exit code is 0 whenever grading ran
(even if every exercise failed), 2 for usage errors (bad arguments, no notebooks found) and 130
after Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import csv
import io
import json
import logging
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from utils.bench import kernel_pid
from utils.grade import exports, remote
from utils.grade import runtime as grade_runtime
from utils.grade import sandbox
from utils.grade import student_build
from utils.grade.safe_text import csv_cell, printable

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TIMEOUT = 900.0  # seconds per notebook (a chapter runs in <= 5 min on 2 cores)
DEFAULT_CHECK_TIMEOUT = 600.0  # seconds per exercise check: generous, so a busy machine does not change a verdict
DEFAULT_CHECKS_BUDGET = 1800.0  # seconds for all of one notebook's checks together (each also has its own timeout)
MAX_MESSAGE_CHARS = 2000  # a record's message is cut there (a check's message is a few lines; an exception's can be MB)
MAX_NOTES_CHARS = 4000
PROBE_TIMEOUT = 15.0  # seconds for an interrupted kernel to answer again
MAX_NOTES = 5
MAX_HIDDEN_OUTPUT = 100_000_000  # characters of stdout kept per grader cell (a remote answer is up to 64 MB, base64)
OOM_HINT = "often: out of memory, or the code called os._exit() or crashed in native code"


@dataclass
class Record:
    """One graded exercise (or one error row for a notebook whose exercises cannot be known)."""

    notebook: str
    chapter: str
    exercise: str  # "00.3"; "" on an error row
    name: str
    title: str
    passed: bool
    message: str
    notes: str = ""  # notebook-level problems: timeouts, crashed cells, skipped cells


class GradeUsageError(Exception):
    """Bad command-line input: nothing was graded."""


# --------------------------------------------------------------------------------------------
# Finding notebooks and their chapter


def find_notebooks(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of notebooks."""
    found: dict[Path, Path] = {}
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for nb in sorted(path.rglob("*.ipynb")):
                parts = nb.relative_to(path).parts
                if nb.is_file() and not any(p.startswith(".") for p in parts[:-1]):
                    found.setdefault(nb.absolute(), nb)  # a symlinked notebook is graded under its own name
        elif path.is_file():
            found.setdefault(path.absolute(), path)
        else:
            raise GradeUsageError(f"no such file or folder: {path}")
    return list(found.values())


_CHAPTER_IN_NAME = re.compile(r"(?<![0-9])([0-9]{2})(?=_|\.ipynb$)")  # "alice_00_tour", "00_setup", "bob_01"
_CHAPTER_TEXT = re.compile(r"[0-9]{1,2}")  # ASCII only: "²" and "٣" pass str.isdigit() but are no chapter


def parse_chapter(value: Any) -> str | None:
    """A chapter number as two ASCII digits ("3", " 03 ", 3 -> "03"), or None for anything else ("²", "٠٣", "-1",
    "100", True, 3.0, None)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:02d}" if 0 <= value <= 99 else None
    if isinstance(value, str) and _CHAPTER_TEXT.fullmatch(value.strip()):
        return f"{int(value.strip()):02d}"
    return None


def chapter_of(path: Path, metadata: dict[str, Any] | None) -> str | None:
    """``course.chapter`` from the metadata, else the first two-digit ``NN_`` (or a final ``_NN``)
    in the file name, else None. A metadata chapter that is not one or two ASCII digits counts as none."""
    course = metadata.get("course") if isinstance(metadata, dict) else None
    chapter = parse_chapter(course.get("chapter") if isinstance(course, dict) else None)
    if chapter is not None:
        return chapter
    match = _CHAPTER_IN_NAME.search(str(path.name))
    return match.group(1) if match else None


def _read_notebook(path: Path, content: bytes | None = None) -> tuple[nbformat.NotebookNode | None, str | None]:
    """Parse and validate a notebook (from ``content`` if given); returns (notebook, None) or (None, reason)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = content.decode("utf-8") if content is not None else path.read_text(encoding="utf-8")
            nb = nbformat.reads(text, as_version=4)
            nbformat.validate(nb)
        return nb, None
    except Exception as error:  # noqa: BLE001 - any parse problem is the submission's, not ours
        detail = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        return None, f"not a valid Jupyter notebook ({type(error).__name__}: {detail}); nothing was run"


# --------------------------------------------------------------------------------------------
# Executing one notebook


def _defines(source: str, name: str) -> bool:
    """Does this cell's source seem to define ``name`` (def, class or assignment at the top level)?"""
    pattern = rf"^\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*(?::[^=]*)?=[^=]"
    return re.search(pattern, source, re.MULTILINE) is not None


@dataclass
class _Run:
    """What happened while the notebook's own cells ran."""

    problems: dict[int, str]  # cell number (1-based, over all cells) -> "timed out after 5 s ..."
    skipped_from: int | None = None  # first cell not run because the time budget was used up
    budget_eaten_by: int | None = None  # the cell whose timeout used up the budget
    budget: float = 0.0
    fatal: str | None = None  # the kernel died or hangs: no check can run

    def notes(self) -> str:
        items = [f"cell {n} {p}" for n, p in sorted(self.problems.items())]
        more = len(items) - MAX_NOTES
        items = items[:MAX_NOTES] + ([f"and {more} more"] if more > 0 else [])
        if self.skipped_from is not None:
            items.append(f"cells from {self.skipped_from} on were not run: {self.why_skipped()}")
        return "; ".join(items)

    def why_skipped(self) -> str:
        culprit = f"cell {self.budget_eaten_by} timed out and " if self.budget_eaten_by else ""
        return f"{culprit}the notebook's time budget of {self.budget:g} s was used up"


def _error_of(cell: Any) -> str | None:
    """The cell's first error as "raised Name: message", or None (stub and check failures don't count)."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            ename, evalue = output.get("ename", "Error"), str(output.get("evalue", ""))
            if ename in {"CheckFailure", "NotImplementedError"}:
                return None  # expected while exercises are unsolved; the check says it better
            evalue = evalue.splitlines()[0][:120] if evalue else ""
            return f"raised {ename}" + (f": {evalue}" if evalue else "")
    return None


def _stdout_of(cell: Any) -> str:
    """Everything the cell printed to stdout."""
    return "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )


class _GraderClient(NotebookClient):
    """A NotebookClient that keeps only what grading reads: the error outputs of the notebook's own
    cells and a capped stdout of the grader's cells. (A learner's `while True: print(...)` would
    otherwise pile up gigabytes of output in the grader's memory before its timeout.)"""

    first_hidden_cell = 1 << 30  # index of the first cell the grader appended

    def output(self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
        learners = cell_index < self.first_hidden_cell
        if msg["msg_type"] != "error" and (learners or sum(len(o.get("text", "")) for o in outs) > MAX_HIDDEN_OUTPUT):
            return None
        return super().output(outs, msg, display_id, cell_index)


class _Kernel:
    """A started :class:`_GraderClient` plus per-cell timeouts that say they timed out.

    On a timeout nbclient interrupts the kernel (``interrupt_on_timeout``) and hands back a fake
    reply (``error_on_timeout``) whose error name marks it, instead of raising; unlike a raised
    ``CellTimeoutError`` this also stops nbclient's reader of the cell's output, which would
    otherwise swallow the output of every later cell.
    """

    TIMEOUT_ENAME = "GraderCellTimeout"

    def __init__(self, client: _GraderClient) -> None:
        self.client = client
        self.replies: dict[int, dict[str, Any]] = {}
        client.interrupt_on_timeout = True
        client.error_on_timeout = {"ename": self.TIMEOUT_ENAME, "evalue": "", "traceback": []}
        client.on_cell_executed = self._remember

    def _remember(self, cell: Any, cell_index: int, execute_reply: dict[str, Any] | None) -> None:
        self.replies[cell_index] = execute_reply or {}

    def execute(self, index: int, timeout: float, store_history: bool = True) -> bool:
        """Run cell ``index`` of the notebook; True if it timed out (the kernel was interrupted).
        Raises ``nbclient.exceptions.DeadKernelError`` if the kernel dies."""
        client = self.client
        client.timeout_func = lambda _cell: max(1, math.ceil(timeout))
        self.replies.pop(index, None)
        count = client.code_cells_executed + 1 if store_history else None
        client.execute_cell(client.nb.cells[index], index, execution_count=count, store_history=store_history)
        return self.replies.get(index, {}).get("content", {}).get("ename") == self.TIMEOUT_ENAME

    def hidden(self, source: str, timeout: float) -> tuple[Any, bool]:
        """Run grader code that is not part of the notebook; returns (cell, timed_out)."""
        cell = nbformat.v4.new_code_cell(source)
        self.client.nb.cells.append(cell)
        return cell, self.execute(len(self.client.nb.cells) - 1, timeout, store_history=False)

    def responsive(self) -> bool:
        """After a timeout: does the kernel answer again (the interrupt worked)?"""
        for _ in range(2):  # a second timeout interrupts once more
            _, timed_out = self.hidden("pass", PROBE_TIMEOUT)
            if not timed_out:
                return True
        return False


def _run_cells(kernel: _Kernel, deadline: float, budget: float) -> _Run:
    """Execute the notebook's code cells in order, within the budget, recording problems."""
    run = _Run(problems={}, budget=budget)
    for index, cell in list(enumerate(kernel.client.nb.cells)):
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        number = index + 1
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            run.skipped_from = number
            break
        run.budget_eaten_by = None
        try:
            if kernel.execute(index, remaining):
                run.problems[number] = f"timed out after {max(1, math.ceil(remaining))} s (infinite loop?)"
                run.budget_eaten_by = number
                if not kernel.responsive():
                    run.fatal = (
                        f"cell {number} timed out and the kernel ignored the interrupt; nothing could be checked"
                    )
                    break
            elif error := _error_of(cell):
                run.problems[number] = error
        except DeadKernelError:
            run.problems[number] = "killed the kernel"
            run.fatal = f"kernel died while running cell {number} ({OOM_HINT})"
            break
    return run


def _run_check(
    kernel: _Kernel, nonce: str, chapter: str, name: str, timeout: float
) -> tuple[dict[str, Any] | None, str | None]:
    """Run one hidden grading snippet. Returns (result, fatal): result None if the kernel died;
    fatal says why no later check can run (None if they can)."""
    try:
        cell, timed_out = kernel.hidden(grade_runtime.snippet(nonce, chapter, name), timeout)
        if timed_out:
            message = (
                f"the check of `{name}` timed out after {timeout:g} s (an infinite loop in your code, or far too slow?)"
            )
            fatal = (
                None
                if kernel.responsive()
                else "not checked: the kernel stopped responding after an earlier check timed out"
            )
            return {"passed": False, "message": message, "missing": False}, fatal
    except DeadKernelError:
        return None, f"kernel died while checking `{name}` ({OOM_HINT})"
    for line in _stdout_of(cell).splitlines():
        if line.startswith(nonce):
            try:
                result = json.loads(line[len(nonce) :])
            except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
                continue
            if isinstance(result, dict):
                return result, None
    error = _error_of(cell) or "printed nothing the grader could read"
    message = (
        f"the grader got no result for `{name}` (the grading code {error}; "
        "did the notebook replace sys.stdout or a course module?)"
    )
    return {"passed": False, "message": message, "missing": False}, None


def graded_remotely(chapter: str) -> bool:
    """Does the chapter's check module decide verdicts in the grader (``GRADED_REMOTELY = True``)?"""
    module = sys.modules.get(f"utils.checks.ch{chapter}")
    return getattr(module, "GRADED_REMOTELY", False) is True


class GraderReplyError(remote.TransportError):
    """The grader's own code failed during a remote call: reading the kernel's reply (e.g. a ``RecursionError`` on a
    deeply nested one) or, before it, sending the check's arguments. A :class:`~utils.grade.remote.TransportError`,
    so the check's ``except Exception`` (which reports the learner's crashes) does not blame the learner's code."""

    def __init__(self, message: str, reading: bool = True) -> None:
        super().__init__(message)
        self.reading = reading  # False: it failed before the kernel was asked anything


class _GraderRemoteKernel(remote.RemoteKernel):
    """A :class:`~utils.grade.remote.RemoteKernel` whose calls never raise an ordinary exception: an exception the
    learner's code raised comes back as a reply and is raised by ``RemoteFunction`` after ``call`` returns, so any
    ``Exception`` out of ``call`` itself is the grader's (its encoder, and anything ``RemoteKernel`` lets through).
    ``RemoteKernel.call`` itself turns a failure reading the reply (its parser, its copying back of mirrors) into
    :class:`~utils.grade.remote.ReplyUnreadable`; both become :class:`GraderReplyError`, so the report says which."""

    def __init__(self, run: remote.Transport, timeout: float = 120.0, spool: Path | None = None) -> None:
        self._answered = False

        def transport(code: str, seconds: float) -> str:
            printed = run(code, seconds)
            self._answered = True
            return printed

        super().__init__(transport, timeout, spool=spool)

    def call(self, target: dict[str, str], args: tuple[Any, ...], kwargs: dict[str, Any],
             watches: list[Any] = ()) -> dict[str, Any]:
        self._answered = False
        try:
            return super().call(target, args, kwargs, watches)
        except remote.ReplyUnreadable as error:  # already the grader's error reading the reply: say it the same way
            raise GraderReplyError(_short(error.detail, 300), reading=True) from None
        except Exception as error:  # noqa: BLE001 - see the class docstring
            raise GraderReplyError(_short(f"{type(error).__name__}: {error}", 300), reading=self._answered) from None


def _remote_kernel(kernel: _Kernel, timeout: float, spool: Path | None = None) -> remote.RemoteKernel:
    """A :class:`~utils.grade.remote.RemoteKernel` whose transport is a hidden cell of ``kernel``; large requests
    go through files in ``spool``, the kernel's own folder."""

    def run(code: str, seconds: float) -> str:
        try:
            cell, timed_out = kernel.hidden(code, seconds)
        except DeadKernelError:
            raise remote.KernelDied(OOM_HINT) from None
        cells = kernel.client.nb.cells
        if cells and cells[-1] is cell:  # a call's cell can carry megabytes of arguments: keep none of them
            cells.pop()
        if timed_out:
            raise remote.RemoteTimeout(f"no answer within {seconds:g} s")
        return _stdout_of(cell)

    handle = _GraderRemoteKernel(run, timeout, spool=spool)
    handle.responsive = kernel.responsive  # type: ignore[attr-defined]
    return handle


def _remote_check(kernel: remote.RemoteKernel, exercise: Any) -> tuple[bool, str, str | None]:
    """Run ``exercise``'s check here, in the grader, on the learner's function in the kernel. Returns
    (passed, message, fatal): ``fatal`` says why no later check can run (the kernel died or stopped answering)."""
    from utils.checks import CheckFailure

    name = exercise.name
    try:
        if not kernel.has(name):
            return False, (f"`{name}` is not defined — did you rename or delete it? Keep the function name from the "
                           "exercise."), None
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exercise.check(remote.RemoteFunction(kernel, name))
        lines = [line for line in printed.getvalue().splitlines() if line.strip()]
        return True, lines[-1] if lines else "passed", None
    except CheckFailure as failure:
        return False, str(failure), None
    except remote.BudgetSpent as error:
        return False, f"not checked: {error}", f"not checked: {error}"
    except remote.RemoteTimeout as error:
        fatal = None if kernel.responsive() else "not checked: the kernel stopped responding after a check timed out"  # type: ignore[attr-defined]
        return False, f"the check of `{name}` timed out: {error} (an infinite loop in your code, or far too slow?)", fatal
    except remote.KernelDied as error:
        return False, f"kernel died while checking `{name}` ({error})", f"kernel died while checking `{name}`"
    except GraderReplyError as error:
        what = "read the kernel's reply" if error.reading else "send the call to the kernel"
        return False, (f"not checked: the grader could not {what}: {error} (while checking `{name}`; the grader's "
                       "error, not your code's: tell your instructor)"), None
    except remote.TransportError as error:
        return False, f"the grader got no answer for `{name}`: {error}", None


def _quiet_log() -> logging.Logger:
    """A logger for nbclient that stays silent (the records report timeouts and dead kernels)."""
    log = logging.getLogger("utils.grade.nbclient")
    log.setLevel(logging.CRITICAL)
    return log


def _kernel_env(course_root: Path = REPO_ROOT) -> dict[str, str]:
    """The grader's environment, with ``course_root`` (this repository, or a student build) first on the kernel's
    import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(course_root), env.get("PYTHONPATH", "")]))
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # silences a debugger warning
    return env


@dataclass
class Isolation:
    """How a notebook's kernel is run: inside bubblewrap (``sandbox``) or as a plain process, with its memory
    capped at ``memory_mb`` by a watchdog either way (see :mod:`utils.grade.sandbox`), and how long its checks may
    take together (``checks_budget``: a check past it is not run, and says so)."""

    sandboxed: bool = False
    memory_mb: float = sandbox.DEFAULT_MEMORY_MB
    checks_budget: float = DEFAULT_CHECKS_BUDGET  # seconds for all the notebook's checks (after its cells ran)


def _grade_executable(
    nb: nbformat.NotebookNode, copy: Path, chapter: str, exercises: Sequence[Any], timeout: float, check_timeout: float,
    isolation: Isolation | None = None,
) -> tuple[list[tuple[bool, str]], str]:
    """Execute ``nb`` (saved at ``copy``) and check each exercise; returns ([(passed, message)], notes)."""
    isolation = isolation or Isolation()
    nonce = "GRADE-" + secrets.token_hex(16) + ":"
    client = _GraderClient(
        nb,
        kernel_name="python3",  # whatever the submission says: the course's own environment
        allow_errors=True,  # carry on after a failing cell (and never abort queued requests)
        record_timing=False,
        startup_timeout=120,
        resources={"metadata": {"path": str(copy.parent)}},  # the kernel's working directory
        log=_quiet_log(),  # timeouts and dead kernels are reported in the records instead
    )
    client.first_hidden_cell = len(nb.cells)
    deadline = time.monotonic() + timeout
    outcomes: list[tuple[bool, str]] = []
    course_root = REPO_ROOT
    flags = ""
    if graded_remotely(chapter):  # the kernel gets the sealed student build: no reference implementation in it
        course_root = copy.parent / "course"
        student_build.build(course_root, {e.name for e in exercises}, top_level=student_build.GRADED_TOP_LEVEL,
                            sealed=True)
        if any(student_build.PREFIX in cell.source for cell in nb.cells if cell.cell_type == "code"):
            flags = f"flagged: the notebook names a hidden reference implementation ({student_build.PREFIX}...)"
    if isolation.sandboxed:
        read_only = [course_root] if course_root != REPO_ROOT else []
        # extra check folders (COURSE_CHECKS_PATH, e.g. a teacher's private checks) may sit under the hidden /tmp
        read_only += [Path(d) for d in os.environ.get(grade_runtime.CHECKS_PATH_ENV, "").split(os.pathsep) if d]
        hidden, visible = sandbox.course_hiding(course_root)  # no solutions/, reference/, tests/, original utils/
        client.kernel_manager_class = sandbox.sandboxed_kernel_manager(copy.parent, read_only, hidden, visible)
    watchdog: sandbox.MemoryWatchdog | None = None
    try:
        with client.setup_kernel(env=_kernel_env(course_root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), \
                sandbox.MemoryWatchdog(kernel_pid(client.km), isolation.memory_mb) as watchdog:
            kernel = _Kernel(client)
            run = _run_cells(kernel, deadline, timeout)
            fatal = run.fatal
            remote = _remote_kernel(kernel, check_timeout, copy.parent) if graded_remotely(chapter) else None
            checks_deadline = time.monotonic() + isolation.checks_budget
            if remote is not None:
                remote.deadline = checks_deadline
            for exercise in exercises:
                if not fatal and time.monotonic() >= checks_deadline:
                    fatal = (f"not checked: this notebook's checks used their total budget of "
                             f"{isolation.checks_budget:g} s")
                if fatal:
                    outcomes.append((False, fatal))
                    continue
                if remote is not None:
                    passed, message, fatal = _remote_check(remote, exercise)
                    if not passed and message.startswith("`") and "is not defined" in message:
                        message += _why_missing(nb, exercise.name, run)
                    outcomes.append((passed, message))
                    continue
                result, fatal = _run_check(kernel, nonce, chapter, exercise.name,
                                           max(1.0, min(check_timeout, checks_deadline - time.monotonic())))
                if result is None:
                    outcomes.append((False, fatal or "the grader got no result"))
                    continue
                message = str(result.get("message", ""))
                if result.get("missing"):
                    message += _why_missing(nb, exercise.name, run)
                outcomes.append((result.get("passed") is True, message))
    except Exception as error:  # noqa: BLE001 - e.g. the kernel could not start; the batch goes on
        reason = f"could not run the notebook: {type(error).__name__}: {str(error).strip()[:200]}"
        return [(False, reason) for _ in exercises], reason
    killed = ""
    if watchdog is not None and watchdog.tripped_mb is not None:
        killed = (f"the kernel was stopped: its memory reached {watchdog.tripped_mb:,.0f} MB, over the "
                  f"{isolation.memory_mb:,.0f} MB limit (its private /tmp counts too)")
    elif watchdog is not None and watchdog.tripped_processes is not None:
        killed = (f"the kernel was stopped: it ran {watchdog.tripped_processes} processes, over the limit of "
                  f"{watchdog.max_processes}")
    if killed:
        outcomes = [(passed, killed if not passed and "died" in message else message) for passed, message in outcomes]
        flags = "; ".join(filter(None, [flags, killed]))
    return outcomes, "; ".join(filter(None, [flags, run.notes()]))



def _why_missing(nb: nbformat.NotebookNode, name: str, run: _Run) -> str:
    """A hint for a name that is not defined: what went wrong in the cell that seems to define it."""
    for index, cell in enumerate(nb.cells):
        number = index + 1
        if cell.cell_type == "code" and _defines(cell.source, name):
            if number in run.problems:
                return f" (cell {number}, which defines it, {run.problems[number]})"
            if run.skipped_from is not None and number >= run.skipped_from:
                return f" (cell {number}, which defines it, was not run: {run.why_skipped()})"
    return ""


def _error_row(notebook: str, chapter: str, message: str) -> Record:
    """The single record of a notebook whose exercises cannot be graded (or even known)."""
    return Record(notebook, chapter, "", "", "", False, message)


def _reset_between_notebooks() -> None:
    """Before each notebook: reset the per-notebook state the checks keep in this process (reported hooks, hooks on
    the models, seeds) and drop any cached object an earlier notebook changed, so that no submission changes
    another's grade (:func:`utils.checks.reset_between_notebooks`; issue 24, item 3)."""
    from utils.checks import reset_between_notebooks

    reset_between_notebooks()


def grade_notebook(
    path: Path, timeout: float = DEFAULT_TIMEOUT, check_timeout: float = DEFAULT_CHECK_TIMEOUT,
    isolation: Isolation | None = None, content: bytes | None = None,
) -> list[Record]:
    """Grade one notebook; always returns records (error rows instead of raising). ``content``: the file's bytes,
    read before any notebook of the batch ran (default: read ``path`` now)."""
    nb, invalid = _read_notebook(path, content)
    chapter = chapter_of(path, nb.metadata if nb is not None else None)
    shown = str(path)
    if chapter is None:
        reason = invalid or (
            "cannot tell which chapter this notebook is: its metadata has no course.chapter and its "
            "file name has no chapter number (name it like `00_setup_and_tour.ipynb`)"
        )
        return [_error_row(shown, "", reason)]
    try:
        exercises = grade_runtime.exercises(chapter)
    except ModuleNotFoundError as error:
        if error.name != f"utils.checks.ch{chapter}":
            return [_error_row(shown, chapter, f"the grader could not load the checks of chapter {chapter}: {error}")]
        exercises = []
    except Exception as error:  # noqa: BLE001 - a broken check module must not stop the batch
        reason = f"the grader could not load the checks of chapter {chapter}: {type(error).__name__}: {error}"
        return [_error_row(shown, chapter, reason)]
    if not exercises:
        return [_error_row(shown, chapter, f"there are no checks for chapter {chapter}")]
    _reset_between_notebooks()
    if nb is None:
        outcomes, notes = [(False, invalid or "unreadable") for _ in exercises], ""
    else:
        workdir = Path(tempfile.mkdtemp(prefix="grade-"))
        try:
            copy = workdir / path.name
            copy.write_bytes(content if content is not None else path.read_bytes())
            outcomes, notes = _grade_executable(nb, copy, chapter, exercises, timeout, check_timeout, isolation)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return [
        Record(shown, chapter, e.id, e.name, e.title, passed, _capped(message, MAX_MESSAGE_CHARS),
               _capped(notes, MAX_NOTES_CHARS))
        for e, (passed, message) in zip(exercises, outcomes)
    ]


def _capped(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters with a note of how much was cut (a notebook can raise an exception
    with a 100 MB message; a report keeps the first lines, which say what went wrong)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters cut]"


def grade_safely(
    path: Path, timeout: float = DEFAULT_TIMEOUT, check_timeout: float = DEFAULT_CHECK_TIMEOUT,
    isolation: Isolation | None = None, content: bytes | None = None,
) -> tuple[list[Record], bool]:
    """:func:`grade_notebook`, but never raising: (records, True), their text made printable, or, when reading or
    grading the notebook raised anyway (a bug of the grader, a file it could not handle), (one failed record saying
    so and why, in one line, False). What the batch calls for each notebook (in a ``--jobs`` worker too)."""
    try:
        records = grade_notebook(path, timeout, check_timeout, isolation, content)
        if not records:
            raise ValueError("grading returned no records")
        return [clean_record(r) for r in records], True
    # one notebook must never stop the batch: anything but Ctrl-C (a TransportError and a check's sys.exit() are
    # BaseExceptions that a stray path could let through)
    except (Exception, remote.TransportError, SystemExit) as error:  # noqa: BLE001
        return [grader_failure(path, error)], False


def grader_failure(path: Path, error: BaseException) -> Record:
    """The record of a notebook the grader could not read or grade because its own code raised ``error``."""
    reason = _short(f"{type(error).__name__}: {error}".rstrip(": "), 300)
    return _error_row(printable(str(path)), "",
                      f"the grader could not read or grade this notebook: {reason} (the grader's error, not the "
                      "submission's)")


# --------------------------------------------------------------------------------------------
# Reports


def _short(text: str, width: int) -> str:
    """``text`` on one line, without terminal control characters, cut to ``width`` characters."""
    line = " ".join(printable(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def format_table(records: Sequence[Record]) -> str:
    """Rows per exercise, then the notebook's score (and notes, if any)."""
    if not records:
        return ""
    out = io.StringIO()
    graded = [r for r in records if r.exercise]
    notebook = _short(records[0].notebook, 10_000)
    if not graded:  # an error row: the score line says it all
        return f"{notebook}: 0/0 — {_short(records[0].message, 10_000)}\n"
    for r in records:
        status = "PASS" if r.passed else "FAIL"
        out.write(f"  {_short(r.exercise or '-', 20):<6} {_short(r.name or '-', 28):<28} {status}  "
                  f"{_short(r.message, 100)}\n")
    out.write(f"{notebook}: {sum(r.passed for r in graded)}/{len(graded)}\n")
    if records[0].notes:
        out.write(f"  notes: {_short(records[0].notes, 300)}\n")
    return out.getvalue()


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and a rename: never a half-written report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def clean_record(record: Record) -> Record:
    """``record`` with every text field :func:`~utils.grade.safe_text.printable` (no terminal control sequences)."""
    return Record(**{k: printable(v) if isinstance(v, str) else v for k, v in asdict(record).items()})


def write_json(path: Path, records: Sequence[Record]) -> None:
    """Write the records as a JSON list (atomically), their text :func:`~utils.grade.safe_text.printable`."""
    rows = [asdict(clean_record(r)) for r in records]
    _write_atomic(path, json.dumps(rows, indent=2, ensure_ascii=False) + "\n")


def write_csv(path: Path, records: Sequence[Record]) -> None:
    """Write the records as CSV with a header row (atomically); text cells are printable, and one a spreadsheet
    would read as a formula (``=1+2_00.ipynb``) starts with ``'`` (:func:`~utils.grade.safe_text.csv_cell`)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[f.name for f in fields(Record)])
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in asdict(r).items()} for r in records)
    _write_atomic(path, out.getvalue())


# --------------------------------------------------------------------------------------------
# Command line


def _share_cores(threads: int) -> None:
    """In a ``--jobs`` worker: this process and the kernels it starts use ``threads`` BLAS/OpenMP threads."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _read_bytes(path: Path) -> bytes | None:
    """The file's bytes, or None when it cannot be read (grading then reads it again and reports why)."""
    try:
        return path.read_bytes()
    except Exception:  # noqa: BLE001 - OSError, MemoryError, ...: that notebook's record says it
        return None


def _say(text: str, file: Any = None, end: str = "\n") -> None:
    """Print ``text`` without terminal control sequences (:func:`~utils.grade.safe_text.printable`), flushed; what
    the terminal's encoding cannot show is replaced rather than stopping the batch."""
    stream = file if file is not None else sys.stdout
    text = printable(text)
    try:
        print(text, end=end, file=stream, flush=True)
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "ascii"
        print(text.encode(encoding, "replace").decode(encoding, "replace"), end=end, file=stream, flush=True)


def write_reports(json_path: Path | None, csv_path: Path | None, gradebook_path: Path | None,
                  records: Sequence[Record], roots: Sequence[str]) -> None:
    """Write (atomically) each report that was asked for, holding ``records``."""
    if json_path:
        write_json(json_path, records)
    if csv_path:
        write_csv(csv_path, records)
    if gradebook_path:
        _write_atomic(gradebook_path, exports.gradebook_csv(records, roots))


def read_log(path: Path) -> dict[tuple[str, str], list[Record]]:
    """The notebooks already graded in a ``--log`` file: {(path, sha256 of content): records}. A line cut short by a
    crash is ignored (that notebook is graded again)."""
    found: dict[tuple[str, str], list[Record]] = {}
    if not path.exists():
        return found
    names = {f.name for f in fields(Record)}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
            records = [Record(**{k: v for k, v in r.items() if k in names}) for r in entry["records"]]
            found[(str(entry["notebook"]), str(entry["sha256"]))] = records
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            continue
    return found


def append_log(path: Path, key: tuple[str, str], records: Sequence[Record]) -> None:
    """Append one notebook's records to the ``--log`` file as one JSON line, flushed to disk."""
    # ASCII with escapes: a file name that is not valid UTF-8 (lone surrogates in the str) is written and read back
    line = json.dumps({"notebook": key[0], "sha256": key[1], "records": [asdict(r) for r in records]},
                      ensure_ascii=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m utils.grade",
        description="Run notebooks in fresh kernels and grade each exercise with its check.",
    )
    parser.add_argument("paths", nargs="+", metavar="NOTEBOOK_OR_FOLDER")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write one record per exercise as JSON")
    parser.add_argument("--csv", type=Path, metavar="FILE", help="write one record per exercise as CSV")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to run each notebook (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run kernels as plain processes (weaker: use only for submissions you trust); by default "
                             "each kernel runs in bubblewrap, and grading stops with the reason if it cannot")
    parser.add_argument("--memory", type=float, default=sandbox.DEFAULT_MEMORY_MB, metavar="MB",
                        help=f"stop a kernel whose memory passes MB (default {sandbox.DEFAULT_MEMORY_MB:g})")
    parser.add_argument("--gradebook", type=Path, metavar="FILE",
                        help="write one row per student (student_id, points per chapter, total) as CSV, the shape "
                             "LMS gradebooks import")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="grade N notebooks at a time, each in its own process (default 1); every kernel and "
                             "every grader process holds the model, so allow about 3 GB of memory per job")
    parser.add_argument("--log", type=Path, metavar="FILE",
                        help="append each notebook's records to FILE (JSON lines) as soon as it is graded; rerunning "
                             "with the same --log skips notebooks already in it (same path and content): a killed "
                             "batch resumes where it stopped")
    parser.add_argument(
        "--check-timeout",
        type=float,
        default=DEFAULT_CHECK_TIMEOUT,
        metavar="S",
        help=f"seconds per exercise check (default {DEFAULT_CHECK_TIMEOUT:g})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Grade the notebooks named on the command line; 0 when grading ran, 2 on usage errors."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.timeout <= 0 or args.check_timeout <= 0:
            raise GradeUsageError("--timeout and --check-timeout must be positive")
        notebooks = find_notebooks(args.paths)
        if not notebooks:
            raise GradeUsageError("no notebooks (*.ipynb) found in " + " ".join(args.paths))
        inputs = {nb.resolve() for nb in notebooks}
        outputs = [p for p in (args.json, args.csv, args.gradebook) if p is not None]
        for out in outputs:
            if out.resolve() in inputs or out.suffix == ".ipynb":
                raise GradeUsageError(f"refusing to write a report over a notebook: {out}")
            if out.is_dir():
                raise GradeUsageError(f"report path is a folder: {out}")
        if len({out.resolve() for out in outputs}) < len(outputs):
            raise GradeUsageError("--json, --csv and --gradebook must be different files")
        if args.log is not None and (args.log.resolve() in inputs or args.log.suffix == ".ipynb" or args.log.is_dir()):
            raise GradeUsageError(f"--log must be a file that is not a notebook: {args.log}")
        if args.memory <= 0:
            raise GradeUsageError("--memory must be positive")
        if args.jobs < 1:
            raise GradeUsageError("--jobs must be at least 1")
        if not args.no_sandbox and (why := sandbox.unavailable()):
            raise GradeUsageError(why)
    except GradeUsageError as error:
        parser.print_usage(sys.stderr)
        _say(f"error: {error}", file=sys.stderr)
        return 2

    isolation = Isolation(sandboxed=not args.no_sandbox, memory_mb=args.memory)
    if args.no_sandbox:
        print("warning: --no-sandbox: kernels run as plain processes; grade only submissions you trust",
              file=sys.stderr)
    # Every submission is read before any of them runs: a notebook cannot change a later one's content.
    contents = {notebook: _read_bytes(notebook) for notebook in notebooks}
    logged = read_log(args.log) if args.log else {}
    results: dict[Path, list[Record]] = {}
    todo: list[tuple[Path, tuple[str, str]]] = []
    for notebook in notebooks:
        key = (str(notebook), hashlib.sha256(contents[notebook] or b"").hexdigest())
        if key in logged:
            _say(f"{notebook}: already in {args.log}", file=sys.stderr)
            results[notebook] = [clean_record(r) for r in logged[key]]
        else:
            todo.append((notebook, key))
    started = time.monotonic()

    def graded_so_far() -> list[Record]:
        return [r for notebook in notebooks if notebook in results for r in results[notebook]]

    def finish(notebook: Path, key: tuple[str, str], graded: list[Record], ok: bool = True) -> None:
        results[notebook] = graded
        if args.log and ok:  # a notebook the grader failed on is not logged: a rerun grades it again
            try:
                append_log(args.log, key, graded)  # by this process only: no kernel can reach the report
            except OSError as error:
                _say(f"warning: could not append to {args.log} ({error})", file=sys.stderr)
        _say(format_table(graded), end="")
        try:  # the reports hold every notebook graded so far: a batch killed half-way keeps them
            write_reports(args.json, args.csv, args.gradebook, graded_so_far(), args.paths)
        except OSError as error:
            _say(f"warning: could not write the reports ({error}); trying again after the next notebook",
                 file=sys.stderr)

    try:
        if args.jobs == 1:
            for i, (notebook, key) in enumerate(todo):
                _say(f"[{i + 1}/{len(todo)}] grading {notebook} ...", file=sys.stderr)
                finish(notebook, key, *grade_safely(notebook, args.timeout, args.check_timeout, isolation,
                                                    contents[notebook]))
        else:
            import concurrent.futures
            import multiprocessing

            # Separate processes, not threads: a remote check uses the grader's model with hooks of its own.
            from utils.bench import available_cpus

            threads = max(1, available_cpus() // args.jobs)  # N jobs share the cores instead of each taking all
            with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"),
                                                        initializer=_share_cores, initargs=(threads,)) as pool:
                futures = {pool.submit(grade_safely, notebook, args.timeout, args.check_timeout, isolation,
                                       contents[notebook]): (notebook, key) for notebook, key in todo}
                _say(f"grading {len(todo)} notebook(s), {args.jobs} at a time, {threads} thread(s) each ...",
                     file=sys.stderr)
                for future in concurrent.futures.as_completed(futures):
                    notebook, key = futures[future]
                    try:
                        graded, ok = future.result()
                    except Exception as error:  # noqa: BLE001 - e.g. the worker died (BrokenProcessPool)
                        graded, ok = [grader_failure(notebook, error)], False
                    finish(notebook, key, graded, ok)
    except KeyboardInterrupt:
        _say(f"interrupted: reports hold the {len(results)} notebook(s) graded so far", file=sys.stderr)
    done = len(results)
    graded_now = done - (len(notebooks) - len(todo))
    seconds = time.monotonic() - started
    if graded_now:
        _say(f"throughput: {graded_now} notebook(s) in {seconds:.0f} s ({seconds / graded_now:.1f} s each, "
             f"{args.jobs} at a time)", file=sys.stderr)
    records = graded_so_far()
    write_reports(args.json, args.csv, args.gradebook, records, args.paths)
    if records:
        _say("\n" + exports.class_summary(records, args.paths), file=sys.stderr)
    total = [r for r in records if r.exercise]
    _say(f"graded {done} notebook(s): {sum(r.passed for r in total)}/{len(total)} exercises passed", file=sys.stderr)
    return 0 if done == len(notebooks) else 130

