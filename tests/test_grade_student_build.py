"""The student build hides a chapter's reference answers and keeps every helper working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from utils.grade.student_build import PREFIX, build, hide_references

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
