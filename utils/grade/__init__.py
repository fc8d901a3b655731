"""Grading a class: run submitted notebooks and grade every exercise (``python -m utils.grade``).

* :mod:`utils.grade.batch` — the command: finds notebooks, runs each in a fresh kernel, writes the reports;
* :mod:`utils.grade.runtime` — the in-kernel half of the checks;
* :mod:`utils.grade.wire` — the data format answers travel in from a student's kernel to the grader.
"""

from utils.grade.batch import (
    GradeUsageError,
    Record,
    chapter_of,
    find_notebooks,
    format_table,
    grade_notebook,
    main,
    write_csv,
    write_json,
)

__all__ = ["GradeUsageError", "Record", "chapter_of", "find_notebooks", "format_table", "grade_notebook", "main",
           "write_csv", "write_json"]
