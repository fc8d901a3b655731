"""Grading a class: run submitted notebooks and grade every exercise (``python -m utils.grade``).

* :mod:`utils.grade.batch` — the command: finds notebooks, runs each in a sandboxed kernel, writes the reports;
* :mod:`utils.grade.remote` — the grader's half of a check: the learner's function is called in the kernel;
* :mod:`utils.grade.answer` — the kernel's half: calls it there and answers as data;
* :mod:`utils.grade.wire` — the data format answers travel in from a student's kernel to the grader;
* :mod:`utils.grade.runtime` — the older in-kernel checks (only for check modules not graded remotely);
* :mod:`utils.grade.sandbox`, :mod:`utils.grade.student_build`, :mod:`utils.grade.exports` — isolation, the
  course files a graded notebook sees, and the instructor's exports.

The command's names are loaded on first use, so a student's kernel that imports ``utils.grade.answer`` does
not import the grader.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GradeUsageError", "Record", "chapter_of", "find_notebooks", "format_table", "grade_notebook", "main",
           "write_csv", "write_json"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from utils.grade import batch

        return getattr(batch, name)
    raise AttributeError(f"module 'utils.grade' has no attribute {name!r}")
