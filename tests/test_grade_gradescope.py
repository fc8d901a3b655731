"""The Gradescope autograder zip: its content, its results.json, and its local run (offline, with this venv).

The fast tests build a zip and run its ``run_autograder`` on submissions it rejects before any kernel starts
(no notebook, two notebooks, another chapter, an autograder that fails to import). The slow ones grade chapter
00's solution (full marks) and its stub (zero) through the zip, as Gradescope would.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from utils.grade import exports, gradescope

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "chapters" / "00_setup_and_tour.ipynb"
SOLVED = ROOT / "solutions" / "00_setup_and_tour.ipynb"
ZIP_BOUND_BYTES = 1_000_000  # chapter 00's zip carries code only (measured 0.32 MB); the docs state this bound


@pytest.fixture(scope="module")
def zip00(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gradescope.build_zip("00", tmp_path_factory.mktemp("gs") / "gradescope_00.zip").path


def _config() -> dict:
    return gradescope.build_config(["00"], 900.0, 600.0, 2000.0)


# --------------------------------------------------------------------------------------------
# The zip


def test_zip_has_the_gradescope_files_and_the_course_it_needs(zip00: Path):
    with zipfile.ZipFile(zip00) as archive:
        infos = {i.filename: i for i in archive.infolist()}
        config = json.loads(archive.read("gradescope.json"))
    for name in ("setup.sh", "run_autograder"):
        assert name in infos, name
        mode = infos[name].external_attr >> 16
        assert mode & stat.S_IXUSR and stat.S_ISREG(mode), f"{name} must be an executable file"
    for name in ("gradescope.json", *gradescope.INSTALL_FILES, "utils/__init__.py", "utils/checks/ch00.py",
                 "utils/grade/gradescope.py", "utils/grade/batch.py", "utils/model.py", "utils/pins.py"):
        assert name in infos, name
    assert not [n for n in infos if n.startswith("utils/data/")], "chapter 00's grading reads no utils/data"
    assert not [n for n in infos if "__pycache__" in n or n.endswith(".pyc")]
    assert config["chapters"] == ["00"]
    assert list(config["exercises"]) == [f"00.{i}" for i in range(1, 6)]
    assert zip00.stat().st_size < ZIP_BOUND_BYTES


def test_zip_is_reproducible(zip00: Path, tmp_path: Path):
    again = gradescope.build_zip(["0"], tmp_path / "again.zip")
    assert again.path.read_bytes() == zip00.read_bytes()
    assert "0.3" in again.summary() or "MB" in again.summary()


def test_chapter_data_is_carried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(gradescope.CHAPTER_DATA, "03", ("steering_sweep.json",))
    built = gradescope.build_zip("03", tmp_path / "gs03.zip")
    with zipfile.ZipFile(built.path) as archive:
        data = [n for n in archive.namelist() if n.startswith("utils/data/")]
    assert data == ["utils/data/steering_sweep.json"]
    assert built.data == ["steering_sweep.json"]


def test_every_chapter_data_entry_exists():
    for chapter, entries in gradescope.CHAPTER_DATA.items():
        for entry in entries:
            assert (ROOT / "utils" / "data" / entry).exists(), (chapter, entry)
    assert sorted(gradescope.CHAPTER_DATA) == gradescope.normalise_chapters(["0", "1", "2", "3", "4", "5"])


def test_build_refuses_unknown_chapters_and_other_suffixes(tmp_path: Path):
    with pytest.raises(gradescope.GradescopeError, match="choose from 00"):
        gradescope.build_zip("09", tmp_path / "x.zip")
    with pytest.raises(gradescope.GradescopeError, match=".zip"):
        gradescope.build_zip("00", tmp_path / "x.tar")


def test_setup_script_is_valid_bash_and_installs_the_pinned_venv():
    script = gradescope.setup_script()
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert "make venv" in script and "python3.11" in script and "bubblewrap" in script
    assert subprocess.run(["bash", "-n"], input=gradescope.run_script(), text=True).returncode == 0


# --------------------------------------------------------------------------------------------
# results.json


def _records(passed: list[bool]) -> list[SimpleNamespace]:
    config = _config()
    return [SimpleNamespace(notebook="alice_00.ipynb", chapter="00", exercise=e, name=i["name"], title=i["title"],
                            passed=p, message="ok" if p else "wrong", notes="")
            for (e, i), p in zip(config["exercises"].items(), passed)]


def test_results_follow_the_spec_and_agree_with_the_gradebook():
    records = _records([True, False, True, True, False])
    results = gradescope.results_from_records(_config(), "00", records)
    assert gradescope.validate_results(results) == []
    assert results["score"] == 3.0 == sum(t["score"] for t in results["tests"])
    assert [t["number"] for t in results["tests"]] == [f"00.{i}" for i in range(1, 6)]
    assert all(t["max_score"] == 1.0 and t["visibility"] == "visible" for t in results["tests"])
    _, rows, _ = exports.gradebook(records)
    assert rows[0]["total (5)"] == results["score"]


def test_an_error_row_scores_zero_with_its_reason():
    error = SimpleNamespace(notebook="x_00.ipynb", chapter="00", exercise="", name="", title="", passed=False,
                            message="not a valid Jupyter notebook (JSONDecodeError: ...)", notes="")
    results = gradescope.results_from_records(_config(), "00", [error])
    assert results["score"] == 0 and "not a valid Jupyter notebook" in results["output"]
    assert len(results["tests"]) == 5 and gradescope.validate_results(results) == []


def test_validate_results_names_what_is_wrong():
    assert gradescope.validate_results([]) == ["results.json is not a JSON object"]
    bad = {"score": 2.0, "tests": [{"score": "1", "max_score": 1, "name": 3, "visibility": "sometimes"}]}
    problems = " | ".join(gradescope.validate_results(bad))
    for fragment in ("tests[0].score is not a number", "tests[0].name is not a string", "visibility",
                     "not the sum"):
        assert fragment in problems
    assert gradescope.validate_results({}) == ["neither a `score` nor any tests"]


def test_find_submission(tmp_path: Path):
    assert "does not exist" in gradescope.find_submission(tmp_path / "missing")[1]
    (tmp_path / "notes.txt").write_text("hi")
    assert "no Jupyter notebook" in gradescope.find_submission(tmp_path)[1]
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "a_00-checkpoint.ipynb").write_text("{}")
    (tmp_path / "a_00.ipynb").write_text("{}")
    assert gradescope.find_submission(tmp_path) == (tmp_path / "a_00.ipynb", None)
    (tmp_path / "b_00.ipynb").write_text("{}")
    assert "2 notebooks" in gradescope.find_submission(tmp_path)[1]


# --------------------------------------------------------------------------------------------
# The local run, on submissions rejected before a kernel starts


def _rejected(run: gradescope.LocalRun, fragment: str) -> None:
    assert run.problems == [], run.log
    assert run.results["score"] == 0
    assert fragment in run.results["output"], run.results["output"]
    assert len(run.results["tests"]) == 5 and all(t["score"] == 0 for t in run.results["tests"])


def test_local_run_without_a_notebook(zip00: Path, tmp_path: Path):
    (tmp_path / "answer.py").write_text("print(1)")
    _rejected(gradescope.run_local(zip00, tmp_path), "no Jupyter notebook")


def test_local_run_with_two_notebooks(zip00: Path, tmp_path: Path):
    for name in ("a_00.ipynb", "b_00.ipynb"):
        shutil.copy(STUB, tmp_path / name)
    _rejected(gradescope.run_local(zip00, tmp_path), "upload exactly one")


def test_local_run_with_another_chapter(zip00: Path):
    _rejected(gradescope.run_local(zip00, ROOT / "chapters" / "01_sparse_autoencoders.ipynb"), "chapter 01")


def test_a_notebook_naming_no_chapter_is_graded_as_the_zips(zip00: Path, tmp_path: Path):
    (tmp_path / "homework.ipynb").write_text("{not json")  # no metadata, no NN_ in the name; and unreadable
    run = gradescope.run_local(zip00, tmp_path / "homework.ipynb")
    _rejected(run, "graded as chapter 00")
    assert all("not a valid Jupyter notebook" in t["output"] for t in run.results["tests"]), run.results


def _altered(zip_path: Path, out: Path, name: str, data: bytes) -> Path:
    """A copy of ``zip_path`` whose member ``name`` holds ``data``."""
    with zipfile.ZipFile(zip_path) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info, data if info.filename == name else source.read(info))
    return out


def test_the_zips_own_code_runs_and_a_crash_still_gives_results(zip00: Path, tmp_path: Path):
    broken = _altered(zip00, tmp_path / "broken.zip", "utils/grade/batch.py", b"raise ImportError('from the zip')\n")
    run = gradescope.run_local(broken, STUB)
    # the zip's utils/, not this checkout's, is what runs; run_autograder's fallback or autograde's own catch says so
    assert "from the zip" in run.log + run.results.get("output", "")
    assert run.problems == [] and run.results["score"] == 0
    assert "tell your instructor" in run.results["output"]


def test_a_failing_autograder_still_lists_every_test(zip00: Path, tmp_path: Path):
    broken = _altered(zip00, tmp_path / "broken.zip", "gradescope.json", b"{not json")
    run = gradescope.run_local(broken, STUB)
    assert run.problems == [] and run.results["score"] == 0
    assert "the autograder failed (JSONDecodeError" in run.results["output"]


def test_run_autograder_writes_results_when_python_is_missing(zip00: Path, tmp_path: Path):
    root = tmp_path / "autograder"
    gradescope._extract(zip00, root / "source")
    (root / "submission").mkdir(parents=True)
    env = {**os.environ, gradescope.ROOT_ENV: str(root), gradescope.PYTHON_ENV: str(tmp_path / "no-python")}
    assert subprocess.run([str(root / "source" / "run_autograder")], env=env, capture_output=True).returncode == 0
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0 and "failed before grading" in results["output"]
    assert gradescope.validate_results(results) == []


def test_run_refuses_what_is_not_a_zip(tmp_path: Path):
    (tmp_path / "x.zip").write_text("not a zip")
    with pytest.raises(gradescope.GradescopeError, match="not a zip"):
        gradescope.run_local(tmp_path / "x.zip", STUB)
    assert gradescope.main(["run", str(tmp_path / "x.zip"), str(STUB)]) == 2


def test_make_target_builds_and_runs():
    dry = subprocess.run(["make", "-n", "-o", ".venv/.course-installed", "gradescope", "CHAPTER=03",
                          "SUBMISSION=x.ipynb"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "utils.grade.gradescope build --chapter 03 --out grades/gradescope_03.zip" in dry.stdout
    assert "utils.grade.gradescope run grades/gradescope_03.zip x.ipynb" in dry.stdout


# --------------------------------------------------------------------------------------------
# Slow: whole notebooks through the zip


@pytest.mark.slow
def test_local_run_gives_the_solution_full_marks(zip00: Path, tmp_path: Path):
    out = tmp_path / "results.json"
    cli = subprocess.run([sys.executable, "-m", "utils.grade.gradescope", "run", str(zip00), str(SOLVED),
                          "--results", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    results = json.loads(out.read_text())
    assert gradescope.validate_results(results) == []
    assert results["score"] == 5.0 == sum(t["max_score"] for t in results["tests"]), results
    assert "score: 5/5" in cli.stdout and "follows Gradescope's specification" in cli.stdout


@pytest.mark.slow
def test_local_run_gives_the_stub_zero(zip00: Path):
    run = gradescope.run_local(zip00, STUB)
    assert run.problems == [], run.log
    assert run.results["score"] == 0.0
    assert [t["score"] for t in run.results["tests"]] == [0.0] * 5
    assert all("not attempted" in t["output"] for t in run.results["tests"]), run.results
