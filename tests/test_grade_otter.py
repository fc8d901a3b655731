"""The export to otter-grader's OK test format: one test file per exercise calling the course's own check.

The files are checked without otter (it is not one of the course's pins): parsed as otter parses them (executing
the file for its ``test`` dict) and run the way otter's ``OKTestFile`` runs them (a doctest over the notebook's
globals), against the reference implementations (pass) and the stubs (fail). When otter-grader is importable the
last test also runs them through otter's own ``OKTestFile``.
"""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from utils import tour
from utils.checks import exercises
from utils.grade import otter

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = ["00", "01", "02", "03", "04", "05"]


@pytest.fixture(scope="module")
def export00(tmp_path_factory: pytest.TempPathFactory) -> otter.Exported:
    return otter.export("00", tmp_path_factory.mktemp("otter") / "otter_00")


def _stub(*args, **kwargs):
    raise NotImplementedError("write your code here")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_becomes_one_ok_format_test(chapter: str, tmp_path: Path):
    done = otter.export(chapter, tmp_path / chapter)
    expected = exercises(chapter)
    assert [p.stem for p in done.tests] == [e.name for e in expected]
    assert done.notebook.read_bytes() == otter.chapter_notebook(chapter).read_bytes()
    assert json.loads(done.notebook.read_text())["metadata"]["course"]["chapter"] == chapter
    for path, exercise in zip(done.tests, expected):
        scope: dict = {}
        exec(compile(path.read_text(), str(path), "exec"), scope)
        assert scope["OK_FORMAT"] is True
        spec = scope["test"]
        assert spec["name"] == path.stem and spec["points"] == 1.0
        (suite,) = spec["suites"]
        assert suite["type"] == "doctest" and not suite["setup"] and not suite["teardown"]
        (case,) = suite["cases"]
        assert case["hidden"] is False
        assert dedent(case["code"]).strip() == otter.case_code(exercise).strip()  # otter dedents the code
        assert f"from utils.checks import ch{chapter} as _course_check" in case["code"]
        assert f"_course_check.{exercise.name}({exercise.name})" in case["code"]


def test_readme_says_how_and_what_otter_does_not_protect(export00: otter.Exported):
    readme = (export00.folder / "README.md").read_text()
    assert "otter.Notebook(tests_dir=\"tests\")" in readme and "otter run" in readme
    assert "inside the learner's own Python process" in readme
    assert "python -m utils.grade" in readme


def test_export_replaces_old_tests(export00: otter.Exported):
    stale = export00.folder / "tests" / "old_exercise.py"
    stale.write_text("test = {}")
    again = otter.export("00", export00.folder)
    assert not stale.exists() and len(again.tests) == 5


def test_references_pass_and_stubs_fail(export00: otter.Exported, model):
    for path in export00.tests:
        spec = otter.load_test(path)
        name = spec["name"]
        passed, report = otter.run_test(spec, {name: getattr(tour, name)})
        assert passed, report
        passed, report = otter.run_test(spec, {name: _stub})
        assert not passed and "not attempted yet" in report, report


def test_a_missing_function_fails(export00: otter.Exported):
    passed, report = otter.run_test(otter.load_test(export00.tests[0]), {})
    assert not passed and "NameError" in report


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert otter.main(["--chapter", "4", "--out", str(tmp_path / "o")]) == 0
    assert "9 tests" in capsys.readouterr().out
    assert otter.main(["--chapter", "09", "--out", str(tmp_path / "x")]) == 2
    assert "no checks for chapter" in capsys.readouterr().err


def test_otter_itself_reads_and_runs_the_export(export00: otter.Exported, model):
    ok_test = pytest.importorskip("otter.test_files.ok_test", reason="otter-grader is not installed (not a course pin)")
    path = next(p for p in export00.tests if p.stem == "resid_at_layer")
    good = ok_test.OKTestFile.from_file(str(path))
    good.run({"resid_at_layer": tour.resid_at_layer})
    bad = ok_test.OKTestFile.from_file(str(path))
    bad.run({"resid_at_layer": _stub})
    assert good.passed_all and good.grade == 1.0
    assert not bad.passed_all and "not attempted yet" in bad.test_case_results[0].message
