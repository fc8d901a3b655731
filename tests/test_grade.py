"""Tests of the autograder (utils/grade/: batch.py, runtime.py).

The fast tests grade small notebooks against a fake chapter "99" whose checks live in a temporary
``ch99.py``: the environment variable ``COURSE_CHECKS_PATH`` (honoured by utils.grade.runtime, and
inherited by the grader's kernels) makes it importable as ``utils.checks.ch99``. No language model
is loaded; each graded notebook costs one kernel start (1-2 s) plus whatever its cells do.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import utils.checks
from utils import grade
from utils.grade.runtime import CHECKS_PATH_ENV

REPO = Path(__file__).resolve().parents[1]

FAKE_CHECKS = '''
"""Fake chapter 99 for the grader's tests."""
from utils.checks import exercise, fail


@exercise("99", 1, "add", "Add two numbers")
def add(fn):
    for a, b in [(1, 2), (-3, 5), (10, 0)]:
        got = fn(a, b)
        if got != a + b:
            fail(f"add({a}, {b}) returned {got!r}; expected {a + b!r}.")
    return "3 cases"


@exercise("99", 2, "square", "Square a number")
def square(fn):
    for x in [0, 3, -4]:
        if fn(x) != x * x:
            fail(f"square({x}) returned {fn(x)!r}; expected {x * x!r}. Did you add instead of multiply?")
    return ""


@exercise("99", 3, "greet", "Greet someone")
def greet(fn):
    if fn("Ada") != "Hello, Ada!":
        fail(f"greet('Ada') returned {fn('Ada')!r}; expected 'Hello, Ada!'.")
    return ""
'''

ADD = "def add(a, b):\n    return a + b"
SQUARE = "def square(x):\n    return x * x"
GREET = 'def greet(name):\n    return f"Hello, {name}!"'
SOLVED = [ADD, SQUARE, GREET]
STUBS = [f'def {n}(*args):\n    raise NotImplementedError("{n}")' for n in ("add", "square", "greet")]


@pytest.fixture
def fake_chapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Register chapter 99 (via $COURSE_CHECKS_PATH) and return a folder for notebooks."""
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "ch99.py").write_text(FAKE_CHECKS)
    monkeypatch.setenv(CHECKS_PATH_ENV, str(checks))
    # undone after the test: this process's view of the fake chapter (kernels start fresh anyway)
    monkeypatch.setattr(utils.checks, "__path__", list(utils.checks.__path__))
    monkeypatch.delitem(sys.modules, "utils.checks.ch99", raising=False)
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    return submissions


def write_notebook(path: Path, cells: list[str], chapter: str | None = "99") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if chapter is not None:
        nb.metadata["course"] = {"chapter": chapter}
    nb.cells = [nbformat.v4.new_markdown_cell("# A submission")] + [nbformat.v4.new_code_cell(c) for c in cells]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def by_name(records: list[grade.Record]) -> dict[str, grade.Record]:
    return {r.name: r for r in records}


# --------------------------------------------------------------------------------------------
# Whole notebooks through a kernel


def test_solved_notebook_passes_and_is_not_modified(fake_chapter: Path) -> None:
    path = write_notebook(fake_chapter / "solved.ipynb", ["import math"] + SOLVED)
    before = digest(fake_chapter)
    records = grade.grade_notebook(path, timeout=60, check_timeout=30)
    assert [(r.exercise, r.name, r.passed) for r in records] == [
        ("99.1", "add", True),
        ("99.2", "square", True),
        ("99.3", "greet", True),
    ]
    assert "passed" in records[0].message and "3 cases" in records[0].message
    assert records[0].title == "Add two numbers" and records[0].chapter == "99"
    assert digest(fake_chapter) == before
    assert f"{path}: 3/3" in grade.format_table(records)


def test_stub_notebook_fails_with_not_attempted(fake_chapter: Path) -> None:
    path = write_notebook(fake_chapter / "stub.ipynb", STUBS + ["add(1, 2)"])  # a demo cell that raises
    records = grade.grade_notebook(path, timeout=60, check_timeout=30)
    assert len(records) == 3 and not any(r.passed for r in records)
    assert all("not attempted" in r.message for r in records), [r.message for r in records]
    assert records[0].notes == ""  # NotImplementedError from a stub is not a "problem" worth a note


def test_syntax_error_exception_and_rename(fake_chapter: Path) -> None:
    path = write_notebook(
        fake_chapter / "broken.ipynb",
        [
            "1 / 0",  # a crashing cell does not stop the run
            ADD,
            "def square(x):\n    return x *",  # syntax error: square never gets defined
            'def greeting(name):\n    return f"Hello, {name}!"',  # renamed
        ],
    )
    records = by_name(grade.grade_notebook(path, timeout=60, check_timeout=30))
    assert records["add"].passed
    assert not records["square"].passed and "not defined" in records["square"].message
    assert "cell 4" in records["square"].message and "SyntaxError" in records["square"].message
    assert not records["greet"].passed
    assert "`greet` is not defined — did you rename or delete it?" in records["greet"].message
    assert "ZeroDivisionError" in records["add"].notes and "SyntaxError" in records["add"].notes


def test_wrong_answer_and_crash_inside_the_check(fake_chapter: Path) -> None:
    cells = [
        "def add(a, b):\n    return a - b",
        'def square(x):\n    raise ValueError("oops")',
        "greet = 42",
    ]
    records = by_name(
        grade.grade_notebook(write_notebook(fake_chapter / "wrong.ipynb", cells), timeout=60, check_timeout=30)
    )
    assert "add(1, 2) returned -1; expected 3" in records["add"].message
    assert "ValueError" in records["square"].message and "oops" in records["square"].message
    assert "expected a function or class" in records["greet"].message
    assert not any(r.passed for r in records.values())


def test_infinite_loops_time_out_and_grading_goes_on(fake_chapter: Path) -> None:
    cells = [
        ADD,
        "def square(x):\n    while True:\n        pass",  # hangs only when the check calls it
        "while True:\n    pass",  # eats the notebook's whole time budget
        GREET,  # never runs
    ]
    path = write_notebook(fake_chapter / "loop.ipynb", cells)
    records = by_name(grade.grade_notebook(path, timeout=5, check_timeout=3))
    assert records["add"].passed
    assert not records["square"].passed and "timed out after 3 s" in records["square"].message
    assert not records["greet"].passed and "not defined" in records["greet"].message
    assert "cell 5, which defines it, was not run: cell 4 timed out" in records["greet"].message
    # the cell gets what is left of the 5 s budget (less on a loaded machine, after the earlier cells)
    assert re.search(r"cell 4 timed out after [1-5] s \(infinite loop\?\)", records["add"].notes), records["add"].notes


def test_killed_kernel_fails_everything_with_the_reason(fake_chapter: Path) -> None:
    path = write_notebook(fake_chapter / "killed.ipynb", [ADD, "import os\nos._exit(1)", SQUARE, GREET])
    records = grade.grade_notebook(path, timeout=60, check_timeout=30)
    assert len(records) == 3 and not any(r.passed for r in records)
    assert all("kernel died while running cell 3" in r.message and "out of memory" in r.message for r in records)


def test_cheating_notebook_still_fails(fake_chapter: Path) -> None:
    cheat = r"""
import json, os, utils.checks
utils.checks.__path__.append(os.environ["COURSE_CHECKS_PATH"])
import utils.checks.ch99 as check
import utils.grade.runtime as runtime

def add(a, b):
    return 0

# patch the check, the registry and the grader's runtime ...
check.add = lambda fn: True
for ex in utils.checks.exercises("99"):
    object.__setattr__(ex, "check", lambda fn: True)
runtime.evaluate = lambda *a, **k: {"passed": True, "message": "forged", "missing": False}
# ... and print everything a naive grader might look for
for n in ("add", "square", "greet"):
    print(f"✅ Exercise 99.1 `{n}` passed")
    print(json.dumps({"passed": True, "message": "ok", "missing": False, "name": n}))
    print("GRADE-" + "0" * 32 + ":" + json.dumps({"passed": True, "message": "ok"}))
"""
    path = write_notebook(fake_chapter / "cheat.ipynb", [cheat, "print('PASS 3/3')"])
    records = by_name(grade.grade_notebook(path, timeout=60, check_timeout=30))
    assert not any(r.passed for r in records.values()), [(r.name, r.message) for r in records.values()]
    assert "add(1, 2) returned 0; expected 3" in records["add"].message
    assert "not defined" in records["square"].message


# --------------------------------------------------------------------------------------------
# The command line on a folder


def test_cli_batch_continues_and_writes_json_and_csv(fake_chapter: Path, tmp_path: Path) -> None:
    write_notebook(fake_chapter / "b_solved.ipynb", SOLVED)
    write_notebook(fake_chapter / "a_killed.ipynb", ["import os\nos._exit(3)"] + SOLVED)
    (fake_chapter / "99_not_json.ipynb").write_text("{ this is not a notebook")
    write_notebook(fake_chapter / "group" / "carol_99_partial.ipynb", [ADD], chapter=None)  # chapter from the name
    write_notebook(fake_chapter / "group" / "no_chapter.ipynb", SOLVED, chapter=None)
    write_notebook(fake_chapter / "unknown_chapter.ipynb", SOLVED, chapter="98")
    write_notebook(fake_chapter / ".ipynb_checkpoints" / "b_solved-checkpoint.ipynb", SOLVED)  # skipped
    before = digest(fake_chapter)
    out_json, out_csv = tmp_path / "reports" / "grades.json", tmp_path / "reports" / "grades.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "utils.grade",
            str(fake_chapter),
            "--json",
            str(out_json),
            "--csv",
            str(out_csv),
            "--timeout",
            "60",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert digest(fake_chapter) == before

    records = json.loads(out_json.read_text())
    score: dict[str, list[bool]] = {}
    for r in records:
        assert {"notebook", "chapter", "exercise", "name", "title", "passed", "message"} <= set(r)
        name = Path(r["notebook"]).name
        score.setdefault(name, []).append(r["passed"])
    assert {k: (sum(v), len(v)) for k, v in score.items()} == {
        "99_not_json.ipynb": (0, 3),
        "a_killed.ipynb": (0, 3),
        "b_solved.ipynb": (3, 3),
        "carol_99_partial.ipynb": (1, 3),
        "no_chapter.ipynb": (0, 1),
        "unknown_chapter.ipynb": (0, 1),
    }
    messages = {Path(r["notebook"]).name: r["message"] for r in records}
    assert "not a valid Jupyter notebook" in messages["99_not_json.ipynb"]
    assert "kernel died while running cell 2" in messages["a_killed.ipynb"]
    assert "cannot tell which chapter" in messages["no_chapter.ipynb"]
    assert "no checks for chapter 98" in messages["unknown_chapter.ipynb"]

    with out_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["notebook"], row["exercise"], row["passed"]) for row in rows] == [
        (r["notebook"], r["exercise"], str(r["passed"])) for r in records
    ]
    assert f"{fake_chapter / 'b_solved.ipynb'}: 3/3" in proc.stdout
    assert f"{fake_chapter / 'a_killed.ipynb'}: 0/3" in proc.stdout
    assert sorted(p.name for p in out_json.parent.iterdir()) == ["grades.csv", "grades.json"]  # no temp files left


def test_cli_usage_errors(fake_chapter: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert grade.main([str(empty)]) == 2
    assert "no notebooks" in capsys.readouterr().err
    assert grade.main([str(tmp_path / "missing.ipynb")]) == 2
    assert "no such file" in capsys.readouterr().err

    nb = write_notebook(fake_chapter / "x.ipynb", SOLVED)
    before = nb.read_bytes()
    assert grade.main([str(nb), "--json", str(nb)]) == 2
    assert grade.main([str(fake_chapter), "--csv", str(fake_chapter / "x.ipynb")]) == 2
    assert "refusing" in capsys.readouterr().err
    assert grade.main([str(nb), "--timeout", "0"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        grade.main([])
    assert exit_info.value.code == 2
    assert nb.read_bytes() == before


def test_chapter_detection() -> None:
    assert grade.chapter_of(Path("whatever.ipynb"), {"course": {"chapter": "03"}}) == "03"
    assert grade.chapter_of(Path("whatever.ipynb"), {"course": {"chapter": 3}}) == "03"
    assert grade.chapter_of(Path("alice_00_setup.ipynb"), {}) == "00"
    assert grade.chapter_of(Path("01_sparse_autoencoders.ipynb"), None) == "01"
    assert grade.chapter_of(Path("2024_02_bob.ipynb"), {}) == "02"
    assert grade.chapter_of(Path("bob_04.ipynb"), {}) == "04"
    assert grade.chapter_of(Path("homework.ipynb"), {"course": {}}) is None


# --------------------------------------------------------------------------------------------
# The real chapter 00 (loads the model: minutes)


def test_cli_jobs_grade_in_parallel_with_the_same_records(fake_chapter: Path, tmp_path: Path) -> None:
    """--jobs 2 gives the records --jobs 1 gives, in the same (sorted) order, and reports its throughput."""
    write_notebook(fake_chapter / "a_solved.ipynb", SOLVED)
    write_notebook(fake_chapter / "b_partial.ipynb", [ADD])
    write_notebook(fake_chapter / "c_stubs.ipynb", STUBS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = {}
    for jobs in (1, 2):
        report, book = tmp_path / f"jobs{jobs}.json", tmp_path / f"book{jobs}.csv"
        proc = subprocess.run([sys.executable, "-m", "utils.grade", str(fake_chapter), "--json", str(report),
                               "--gradebook", str(book),
                               "--timeout", "60", "--jobs", str(jobs), "--no-sandbox"],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        assert f"{jobs} at a time)" in proc.stderr and "throughput: 3 notebook(s)" in proc.stderr
        assert jobs == 1 or "thread(s) each" in proc.stderr  # parallel jobs share the cores
        out[jobs] = [(Path(r["notebook"]).name, r["exercise"], r["passed"]) for r in json.loads(report.read_text())]
    assert out[1] == out[2]
    assert book.read_text().splitlines() == ["student_id,chapter 99 (3),total (3)", "a_solved,3,3", "b_partial,1,1",
                                             "c_stubs,0,0"]
    assert "99.1        2/3" in proc.stderr  # the class summary
    assert sum(passed for _, _, passed in out[2]) == 3 + 1
