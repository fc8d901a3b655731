"""The student build hides a chapter's reference answers and keeps every helper working."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from utils.grade.student_build import HANDOUT_FILES, PREFIX, BuildError, build, hidden_uses, hide_references

SOURCE = '''
def answer(x):
    return x + 1


def helper(x):
    return answer(x) * 2


class Thing:
    def answer(self):
        return 3
'''


def test_hide_references_renames_rewires_and_stubs():
    text, hidden = hide_references(SOURCE, {"answer", "absent"})
    assert hidden == ["answer"]
    namespace: dict = {}
    exec(compile(text, "<build>", "exec"), namespace)
    assert namespace["helper"](1) == 4  # the module's own use still works
    assert namespace[PREFIX + "answer"](1) == 2
    assert namespace["Thing"]().answer() == 3  # methods of the same name are not exercises
    with pytest.raises(Exception, match="reference implementation"):
        namespace["answer"](1)
    assert hide_references(SOURCE, {"nothing"}) == (SOURCE, [])


def test_build_hides_chapter_00_references_in_a_real_interpreter(tmp_path: Path):
    hidden = build(tmp_path, {"greedy_decode", "resid_at_layer"})
    assert sorted(hidden) == ["utils.tour.greedy_decode", "utils.tour.resid_at_layer"]
    assert (tmp_path / "utils" / "data").is_symlink()
    code = ("import utils, utils.tour as t\n"
            "print(utils.__file__)\n"
            "try:\n    t.greedy_decode(None, 'x', 1)\nexcept Exception as e:\n    print(type(e).__name__)\n"
            "print(t.to_tokens.__module__)\n")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    lines = out.stdout.splitlines()
    assert lines[0].startswith(str(tmp_path)), out
    assert lines[1:] == ["ReferenceUnavailable", "utils.tour"]


# --- the rewrite across modules, on a small course of its own ----------------------------------------------------
MINI = {
    "__init__.py": "",
    "a.py": "def answer(x):  # the reference\n    return x + 1\n\n\ndef helper(x):\n    return answer(x) * 2\n",
    "b.py": ("from utils.a import answer  # a helper module that uses it\n\n\ndef twice(x):\n"
             "    return answer(answer(x))\n"),
    "c.py": "def late(x):\n    from utils.a import answer as reference\n    return reference(x)\n",
    "pkg/__init__.py": "from utils.a import answer, helper\n\n__all__ = ['answer', 'helper']\n",
    "checks/__init__.py": "",
    "checks/ch99.py": ("import utils.a\nimport utils.pkg as P\nfrom utils import a, b\n\n\ndef one(fn):\n"
                      "    from utils.a import answer\n    return fn(1) == answer(1) == a.answer(1) == utils.a.answer(1)"
                      " == P.answer(1) == b.answer(1)\n\n\ndef method_is_not_a_name(obj):\n    return obj.answer\n"),
}


def _mini_course(root: Path) -> Path:
    for rel, text in MINI.items():
        (root / "utils" / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / "utils" / rel).write_text(text)
    (root / "utils" / "data").mkdir()
    return root


def test_build_rewires_imports_and_attributes_between_modules_exactly(tmp_path: Path):
    source = _mini_course(tmp_path / "course")
    out = tmp_path / "build"
    hidden = build(out, {"answer"}, source)
    assert sorted(hidden) == ["utils.a.answer", "utils.b.answer", "utils.pkg.answer"]
    built = {rel: (out / "utils" / rel).read_text() for rel in MINI}
    assert built["a.py"].startswith("def _reference_answer(x):  # the reference\n")  # comments and lines kept
    assert "return _reference_answer(x) * 2" in built["a.py"]
    assert "    from utils.a import _reference_answer as reference\n" in built["c.py"]
    assert "from utils.a import _reference_answer, helper\n" in built["pkg/__init__.py"]
    assert "obj.answer" in built["checks/ch99.py"]  # not a course module: left alone
    code = ("import utils.a, utils.b, utils.c, utils.pkg\n"
            "from utils.checks import ch99\n"
            "print(utils.b.twice(1), utils.c.late(1), utils.pkg.helper(1), ch99.one(lambda x: x + 1))\n"
            "for f in (utils.a.answer, utils.b.answer, utils.pkg.answer):\n"
            "    try:\n        f(1)\n    except Exception as e:\n        print(type(e).__name__)\n"
            "from utils.pkg import *\nprint(answer.__name__, hasattr(utils.checks.ch99, 'answer'))\n")
    run = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(out), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, cwd=out, timeout=60)
    assert run.stdout.splitlines() == ["3 2 4 True"] + ["ReferenceUnavailable"] * 3 + ["answer False"], run


def test_build_refuses_a_rename_it_cannot_follow(tmp_path: Path):
    source = _mini_course(tmp_path / "course")
    (source / "utils" / "d.py").write_text("from utils.a import answer\n\n\ndef f(answer=1):\n    return answer\n")
    with pytest.raises(BuildError, match="parameter `answer`"):
        build(tmp_path / "build", {"answer"}, source)


def test_hidden_uses_finds_notebook_cells_that_name_a_hidden_function():
    cells = ["%matplotlib inline\nfrom utils import toy\nfrom utils.sae import SAEConfig",
             "x = toy.recovery_score(1, 2)", "", "from utils.steering import clamp_hook as ref",
             "def recovery_score(a, b):\n    return toy.make_toy(a)"]
    found = hidden_uses(cells, ["utils.toy.recovery_score", "utils.steering.clamp_hook"])
    assert found == [(1, "utils.toy.recovery_score"), (3, "utils.steering.clamp_hook")]


# --- every chapter: the build imports, hides, and the self-study checks still work --------------------------------
# One light exercise per chapter (no language model where the chapter has one): (exercise, module of its reference).
LIGHT = {
    "00": ("format_chat", "utils.tour"),  # every chapter-00 check needs the model's tokenizer
    "01": ("recovery_score", "utils.toy"),
    "02": ("decoder_neighbours", "utils.features"),
    "03": ("claims_to_be_the_bridge", "utils.steering.identity"),
    "04": ("mcnemar_exact", "utils.af.stats"),  # compliance_gap has no reference in utils/ (its check computes it)
    "05": ("probe_accuracy", "utils.af.inside"),
}

PROBE = r'''
import importlib, json, pkgutil, sys
import utils
chapter, exercise, module, hidden = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
out = {"file": utils.__file__, "broken": [], "not_hidden": []}
for info in pkgutil.walk_packages(utils.__path__, "utils."):
    if not info.name.endswith("__main__"):
        try:
            importlib.import_module(info.name)
        except Exception as error:
            out["broken"].append(f"{info.name}: {error!r}")
for item in hidden:
    name, attr = item.rsplit(".", 1)
    try:
        getattr(importlib.import_module(name), attr)()
        out["not_hidden"].append(item)
    except Exception as error:
        if type(error).__name__ != "ReferenceUnavailable" or "reference implementation" not in str(error):
            out["not_hidden"].append(f"{item}: {error!r}")
check = getattr(importlib.import_module(f"utils.checks.ch{chapter}"), exercise)
reference = getattr(importlib.import_module(module), "_reference_" + exercise)
check(reference)  # prints the pass line
def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line")
for name, candidate in (("stub", stub), ("public", getattr(importlib.import_module(module), exercise))):
    try:
        check(candidate)
        out[name] = "passed"
    except Exception as error:
        out[name] = str(error)
print("RESULT " + json.dumps(out))
'''


def _probe(build_dir: Path, chapter: str, exercise: str, module: str, hidden: list[str]) -> dict:
    import json

    env = {"PYTHONPATH": str(build_dir), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HOME": str(Path.home())}
    run = subprocess.run([sys.executable, "-c", PROBE, chapter, exercise, module, json.dumps(hidden)], env=env,
                         capture_output=True, text=True, cwd=build_dir, timeout=600)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["stdout"] = run.stdout
    return result


@pytest.mark.parametrize("chapter", sorted(LIGHT))
def test_chapter_build_hides_references_and_its_checks_still_pass(tmp_path: Path, chapter: str):
    from utils.checks import exercises

    names = {e.name for e in exercises(chapter)}
    hidden = build(tmp_path, names)
    exercise, module = LIGHT[chapter]
    assert f"{module}.{exercise}" in hidden
    assert {h.rsplit(".", 1)[1] for h in hidden} <= names
    result = _probe(tmp_path, chapter, exercise, module, hidden)
    assert result["file"].startswith(str(tmp_path))
    assert result["broken"] == [], "modules that do not import in the build"
    assert result["not_hidden"] == []
    assert f"PASS Exercise {chapter}." in result["stdout"] and f"`{exercise}` passed" in result["stdout"]
    assert "not attempted" in result["stub"]
    assert "ReferenceUnavailable" in result["public"]  # the free answer fails


def test_the_all_chapters_build_imports_and_hides_every_reference(tmp_path: Path):
    """What `make handout` hides by default: every chapter's exercises at once."""
    from utils.checks import exercises

    names = {e.name for chapter in LIGHT for e in exercises(chapter)}
    hidden = build(tmp_path, names)
    no_reference_in_utils = {"is_compliant", "compliance_gap", "run_experiment", "ablate"}  # their checks compute the answer
    assert names - {h.rsplit(".", 1)[1] for h in hidden} <= no_reference_in_utils
    result = _probe(tmp_path, "02", *LIGHT["02"], hidden)
    assert result["broken"] == [] and result["not_hidden"] == [] and "not attempted" in result["stub"]


def test_chapter_03_build_hides_the_re_exports_too(tmp_path: Path):
    hidden = build(tmp_path, {"clamp_hook", "steering_rate"})
    assert {"utils.steering.clamp_hook", "utils.steering.hooks.clamp_hook", "utils.steering.steering_rate",
            "utils.steering.answers.steering_rate"} == set(hidden)
    init = (tmp_path / "utils" / "steering" / "__init__.py").read_text()
    assert "clamp_hook = _unavailable('clamp_hook')" in init


# --- the handout ---------------------------------------------------------------------------------------------------
def _handout(out: Path, *chapters: str) -> subprocess.CompletedProcess:
    args = [a for c in chapters for a in ("--chapter", c)]
    return subprocess.run([sys.executable, "-m", "utils.grade.student_build", "--out", str(out), *args],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


def test_handout_writes_a_self_contained_student_copy(tmp_path: Path, repo_root: Path):
    out = tmp_path / "handout"
    run = _handout(out, "01", "03")
    assert run.returncode == 0, run.stderr
    assert "utils.toy.recovery_score" in run.stdout and "utils.steering.clamp_hook" in run.stdout
    assert "utils.tour.greedy_decode" not in run.stdout  # chapter 00 was not chosen
    assert f"handout written to {out.resolve()}" in run.stdout
    # no cell of the student notebooks calls a hidden reference (they use the learner's own functions or helpers
    # that are not exercises); test_hidden_uses_finds_notebook_cells_that_name_a_hidden_function covers the report
    assert "which is hidden in this build" not in run.stdout, run.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(["chapters", "utils", *HANDOUT_FILES])
    assert sorted(p.name[:2] for p in (out / "chapters").iterdir()) == ["01", "03"]
    assert (out / "chapters" / "01_sparse_autoencoders.ipynb").read_bytes() == \
        next((repo_root / "chapters").glob("01_*.ipynb")).read_bytes()
    assert not [p for p in out.rglob("*") if p.is_symlink()]  # copies only: ready to zip
    assert (out / "utils" / "data").is_dir() and any((out / "utils" / "data").iterdir())
    assert not list(out.rglob("*.partial.jsonl")) and not list(out.rglob("__pycache__"))
    assert "def _reference_recovery_score" in (out / "utils" / "toy.py").read_text()
    assert "toy._reference_recovery_score" in (out / "utils" / "checks" / "ch01.py").read_text()


def test_handout_refuses_a_folder_that_is_not_empty(tmp_path: Path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("an instructor's file")
    run = _handout(out, "04")
    assert run.returncode == 2 and "not empty" in run.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "an instructor's file"
    file = tmp_path / "file"
    file.write_text("x")
    assert _handout(file, "04").returncode == 2 and file.read_text() == "x"
    missing = tmp_path / "new"
    run = _handout(missing, "99")
    assert run.returncode == 2 and "chapter 99" in run.stderr and not missing.exists()


@pytest.mark.slow
def test_a_solved_chapter_runs_in_the_handout_and_its_checks_pass(tmp_path: Path, repo_root: Path):
    """Chapter 00 solved by a learner, run cell by cell in a handout for chapter 00 (about 30 s)."""
    import os

    import nbformat
    from nbclient import NotebookClient

    out = tmp_path / "handout"
    assert _handout(out, "00").returncode == 0
    notebook = out / "chapters" / "00_solved.ipynb"
    shutil.copy2(repo_root / "solutions" / "00_setup_and_tour.ipynb", notebook)
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import utils\nfrom utils import tour\ntry:\n    tour.greedy_decode()\nexcept Exception as error:\n"
        "    print('HIDDEN', type(error).__name__, utils.__file__)"))
    env = {**os.environ, "PYTHONPATH": str(out), "OMP_NUM_THREADS": "1"}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
                   ).execute(env=env)  # raises on the first failing cell
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert text.count("PASS Exercise 00.") == 5, text[-2000:]
    assert f"HIDDEN ReferenceUnavailable {out / 'utils' / '__init__.py'}" in text
