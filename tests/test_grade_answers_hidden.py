"""The answers out of the graded kernel's reach (issue 24, item 1): sandboxed, a kernel sees the student build and
the data its chapter reads, and nothing else of the course checkout — no ``solutions/``, ``reference/``, ``tests/``,
original ``utils/`` sources or ``.git``; the build links none of them either. The reviewer's attack (load the
original ``utils/tour.py``, or run the definitions of ``solutions/00_*.py``) earns marks without the hiding and none
with it. The build itself is sealed: no reference implementation under any name (``_reference_<name>`` is the
learner's own function), no chapter check module, and of the grader only the kernel's half; calling the reference
by its build name or through the fixtures' import door earns nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from utils.grade import batch, sandbox, student_build

ROOT = Path(__file__).resolve().parent.parent


def _need_bwrap() -> None:
    why = sandbox.unavailable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why + " -- required under CI")
        pytest.skip(why)


def test_a_build_for_grading_links_nothing_of_the_checkout_but_the_data(tmp_path: Path) -> None:
    course = tmp_path / "course"
    student_build.build(course, {"greedy_decode"}, top_level=student_build.GRADED_TOP_LEVEL)
    assert sorted(p.name for p in course.iterdir()) == sorted(["utils", *student_build.GRADED_TOP_LEVEL])
    links = [p for p in course.rglob("*") if p.is_symlink()]
    assert links == [course / "utils" / "data"], links
    assert not any(p.is_symlink() for p in course.iterdir())


def test_the_kernel_sees_only_the_build_the_data_and_the_venv(tmp_path: Path) -> None:
    _need_bwrap()
    course = tmp_path / "course"
    student_build.build(course, {"greedy_decode"}, top_level=student_build.GRADED_TOP_LEVEL)
    hidden, visible = sandbox.course_hiding(course)
    assert hidden == [ROOT.resolve()]
    probe = f"""
import json, os
from pathlib import Path
root = Path({str(ROOT)!r})
seen = {{name: (root / name).exists() for name in ("solutions", "reference", "tests", "chapters", ".git", "README.md",
                                                  "utils/tour.py", "utils/checks", "utils/data")}}
import utils.tour
from utils.pins import read_pins
seen["imports_from"] = utils.tour.__file__
seen["pins"] = sorted(read_pins().versions())[:1]
try:
    (root / "planted.py").write_text("x")
    seen["writable"] = True
except OSError:
    seen["writable"] = False
print(json.dumps(seen))
"""
    argv = sandbox.bwrap_argv([sys.executable, "-c", probe], tmp_path, [course], hidden=hidden, visible=visible)
    env = dict(os.environ, PYTHONPATH=str(course))
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    for name in ("solutions", "reference", "tests", "chapters", ".git", "README.md", "utils/tour.py", "utils/checks"):
        assert seen[name] is False, f"{name} is visible to the kernel"
    assert seen["utils/data"] is True and seen["pins"] and not seen["writable"]
    assert seen["imports_from"].startswith(str(course))


def test_nothing_is_hidden_for_a_kernel_on_the_course_itself() -> None:
    assert sandbox.course_hiding(ROOT) == ([], [])


ATTACK = '''
import ast, importlib.util, pathlib
ROOT = pathlib.Path({root!r})
NAMES = ("greedy_decode", "format_chat", "residual_sweep", "resid_at_layer", "mean_difference_direction")
from utils import tour
import utils.grade.answer as _answer
for _name in NAMES:  # the reference under the build's name (spelt at run time), or by the fixtures' import door
    for _door in (lambda n: getattr(tour, "_refer" + "ence_" + n), lambda n: _answer._import("utils.tour:" + n)):
        try:
            globals()[_name] = _door(_name)
            break
        except Exception as error:
            print(_name, type(error).__name__, error)
try:  # the definitions of the solution notebook's source
    tree = ast.parse((ROOT / "solutions" / "00_setup_and_tour.py").read_text())
    keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
            or (isinstance(n, ast.FunctionDef) and n.name in NAMES)]
    exec(compile(ast.Module(keep, []), "solutions", "exec"), globals())
except OSError as error:
    print("no solutions:", error)
try:  # the original course module, loaded from its file under another name
    spec = importlib.util.spec_from_file_location("original_tour", ROOT / "utils" / "tour.py")
    original = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(original)
    greedy_decode = original.greedy_decode
except OSError as error:
    print("no original utils:", error)
'''


@pytest.mark.slow
def test_the_reviewers_attack_earns_marks_only_when_the_checkout_is_visible(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _need_bwrap()
    stub = json.loads((ROOT / "chapters" / "00_setup_and_tour.ipynb").read_text())
    first = next(c for c in stub["cells"] if c["cell_type"] == "code")
    attack = {"cell_type": "code", "execution_count": None, "id": "attack", "metadata": {}, "outputs": [],
              "source": ATTACK.format(root=str(ROOT))}
    stub["cells"] = [{**first, "outputs": [], "execution_count": None}, attack]
    notebook = tmp_path / "attacker_00_setup_and_tour.ipynb"
    notebook.write_text(json.dumps(stub))
    isolation = batch.Isolation(sandboxed=True)

    hidden = batch.grade_notebook(notebook, timeout=900, check_timeout=300, isolation=isolation)
    assert not any(r.passed for r in hidden), [(r.exercise, r.message) for r in hidden if r.passed]

    monkeypatch.setattr(sandbox, "course_hiding", lambda course_root, checkout=None: ([], []))
    shown = batch.grade_notebook(notebook, timeout=900, check_timeout=300, isolation=isolation)
    assert sum(r.passed for r in shown) >= 4, [(r.exercise, r.passed, r.message) for r in shown]


def _exercise_names() -> dict[str, set[str]]:
    from utils.checks import exercises

    return {ch: {e.name for e in exercises(ch)} for ch in ("00", "01", "02", "03", "04", "05")}


SEALED_PROBE = """
import pkgutil, importlib, sys, utils
for m in pkgutil.walk_packages(utils.__path__, "utils."):
    importlib.import_module(m.name)
from utils import tour
try:
    tour._reference_greedy_decode(None, "x", 1)
except Exception as error:
    print(type(error).__name__, str(error)[:42])
sys.modules["__main__"].greedy_decode = lambda model, prompt, n: "mine"
print(tour._reference_greedy_decode(None, "x", 1), tour.greedy_decode.__name__)
"""


def test_the_sealed_build_holds_no_reference_implementation_under_any_name(tmp_path: Path) -> None:
    import ast

    names = set().union(*_exercise_names().values())
    student_build.build(tmp_path, names, top_level=student_build.GRADED_TOP_LEVEL, sealed=True)
    utils = tmp_path / "utils"
    defined = set()
    for path in utils.rglob("*.py"):
        defined |= {(path.relative_to(utils).as_posix(), n.name) for n in ast.walk(ast.parse(path.read_text()))
                    if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and n.name.removeprefix(student_build.PREFIX) in names}
    assert not defined, sorted(defined)
    assert sorted(p.name for p in (utils / "grade").iterdir()) == sorted(student_build.SEALED_GRADE_MODULES)
    for chapter in _exercise_names():
        text = (utils / "checks" / f"ch{chapter}.py").read_text()
        assert "def __getattr__" in text and "import" not in text, chapter  # a stub that reaches no course code
    # every module imports; the reference's build name calls the learner's own function, or says there is none
    run = subprocess.run([sys.executable, "-c", SEALED_PROBE], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.splitlines() == ["ReferenceUnavailable this course code uses your `greedy_decode`",
                                       "mine greedy_decode"], run.stdout


def test_the_handout_keeps_its_references_for_the_in_notebook_checks(tmp_path: Path) -> None:
    student_build.build(tmp_path, {"greedy_decode"}, top_level=())
    assert "def _reference_greedy_decode(" in (tmp_path / "utils" / "tour.py").read_text()
    assert (tmp_path / "utils" / "grade" / "batch.py").is_file()
