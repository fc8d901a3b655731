"""Gradebook and class summary from grading records."""

from __future__ import annotations

import csv
import io

import pytest

from utils.grade.batch import Record
from utils.grade.exports import class_summary, gradebook_csv, student_id


@pytest.mark.parametrize("path, roots, expected", [
    ("subs/alice/00_setup_and_tour.ipynb", ["subs"], "alice"),
    ("subs/alice_00_setup_and_tour.ipynb", ["subs"], "alice"),
    ("bob-01.ipynb", [], "bob"),
    ("carol_smith_04_alignment_faking.ipynb", [], "carol_smith"),
    ("00_setup_and_tour.ipynb", [], "00_setup_and_tour"),
])
def test_student_id(path, roots, expected):
    assert student_id(path, roots) == expected


def records(notebook: str, chapter: str, passed: list[bool], message: str = "wrong") -> list[Record]:
    return [Record(notebook, chapter, f"{chapter}.{i + 1}", f"f{i}", "t", p, "PASS" if p else message)
            for i, p in enumerate(passed)]


def test_gradebook_one_row_per_student_best_notebook_counts():
    recs = (records("s/alice_00_tour.ipynb", "00", [True, True, False])
            + records("s/alice_00_tour_v2.ipynb", "00", [True, True, True])
            + records("s/bob_00_tour.ipynb", "00", [False, False, False], "Exercise 00.1 `f0` failed: off by 3")
            + records("s/bob_01_sae.ipynb", "01", [True, False])
            + [Record("s/junk.ipynb", "", "", "", "", False, "not a valid Jupyter notebook")])
    rows = list(csv.DictReader(io.StringIO(gradebook_csv(recs, ["s"]))))
    assert rows == [
        {"student_id": "alice", "chapter 00 (3)": "3", "chapter 01 (2)": "0", "total (5)": "3"},
        {"student_id": "bob", "chapter 00 (3)": "0", "chapter 01 (2)": "1", "total (5)": "1"},
    ]
    summary = class_summary(recs, ["s"])
    assert "00.1        2/3" in summary and "2 student(s), 4 notebook(s) graded; 1 could not be graded" in summary
    assert "alice: 2 notebooks for chapter 00; the best counts" in summary
    assert "off by N (1×)" in summary
