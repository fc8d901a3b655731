"""Reports an instructor uses: a gradebook (one row per student), per-exercise class summary.

Which student a notebook belongs to (:func:`student_id`): the first folder under the submissions folder
(``submissions/alice/00_setup_and_tour.ipynb`` -> ``alice``), else the file name without its chapter part
(``alice_00_setup_and_tour.ipynb`` -> ``alice``, ``bob-01.ipynb`` -> ``bob``), else the whole file name.

The gradebook CSV has a ``student_id`` column, one ``chapter NN (points)`` column per chapter (exercises passed;
the header says out of how many) and ``total``: the shape LMS gradebook imports (Canvas, Moodle) map onto
assignment columns. When a student handed in two notebooks of one chapter, the better one counts and the
summary says so.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from utils.grade.safe_text import csv_cell, printable

_CHAPTER_PART = re.compile(r"[_\-. ]*(?<!\d)\d{2}(?:[_\-][^/]*)?$")


def student_id(notebook: str | Path, roots: Sequence[str | Path] = ()) -> str:
    """The student a notebook belongs to (see the module docstring)."""
    path = Path(notebook)
    for root in roots:
        try:
            rel = path.absolute().relative_to(Path(root).absolute())
        except ValueError:
            continue
        if len(rel.parts) > 1:
            return rel.parts[0]
    stem = path.stem
    name = _CHAPTER_PART.sub("", stem)
    return name or stem


def gradebook(records: Sequence[Any], roots: Sequence[str | Path] = ()) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """(columns, rows, notes): one row per student with points per chapter and a total. ``records`` are
    :class:`utils.grade.batch.Record`-like (``notebook``, ``chapter``, ``exercise``, ``passed``)."""
    per_notebook: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    for r in records:
        if r.exercise:  # error rows (unknown chapter, unreadable) carry no exercise
            per_notebook[(student_id(r.notebook, roots), r.chapter, r.notebook)].append(bool(r.passed))
    chapters = sorted({chapter for _, chapter, _ in per_notebook})
    out_of = {c: max(len(v) for (_, ch, _), v in per_notebook.items() if ch == c) for c in chapters}
    best: dict[tuple[str, str], int] = {}
    seen: Counter[tuple[str, str]] = Counter()
    for (student, chapter, _), passed in per_notebook.items():
        seen[(student, chapter)] += 1
        best[(student, chapter)] = max(best.get((student, chapter), 0), sum(passed))
    notes = [f"{student}: {n} notebooks for chapter {chapter}; the best counts"
             for (student, chapter), n in sorted(seen.items()) if n > 1]
    columns = ["student_id"] + [f"chapter {c} ({out_of[c]})" for c in chapters] + [f"total ({sum(out_of.values())})"]
    rows = []
    for student in sorted({s for s, _ in best}):
        points = {f"chapter {c} ({out_of[c]})": best.get((student, c), 0) for c in chapters}
        rows.append({"student_id": student, **points, columns[-1]: sum(points.values())})
    return columns, rows, notes


def gradebook_csv(records: Sequence[Any], roots: Sequence[str | Path] = ()) -> str:
    """The gradebook as CSV text; text cells printable, and a student id a spreadsheet would read as a formula
    (from a file named ``=1+2_00.ipynb``) starts with ``'`` (:func:`utils.grade.safe_text.csv_cell`)."""
    columns, rows, _ = gradebook(records, roots)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_cell(c) for c in columns])
    writer.writerows([csv_cell(row[c]) for c in columns] for row in rows)
    return buffer.getvalue()


def _exercise_order(exercise: str) -> tuple[tuple[int, Any], ...]:
    """Sort key of an exercise id: "00.10" after "00.9"; a part that is not ASCII digits sorts after, as text."""
    return tuple((0, int(x)) if re.fullmatch(r"[0-9]+", x) else (1, x) for x in str(exercise).split("."))


def class_summary(records: Sequence[Any], roots: Sequence[str | Path] = ()) -> str:
    """Per exercise: how many notebooks passed, and the most common reason among those that did not."""
    by_exercise: dict[str, list[Any]] = defaultdict(list)
    for r in records:
        if r.exercise:
            by_exercise[r.exercise].append(r)
    lines = ["exercise  passed        most common failure"]
    for exercise in sorted(by_exercise, key=_exercise_order):
        rows = by_exercise[exercise]
        passed = sum(bool(r.passed) for r in rows)
        failures = Counter(_gist(r.message) for r in rows if not r.passed)
        common = f"{failures.most_common(1)[0][0]} ({failures.most_common(1)[0][1]}×)" if failures else "-"
        lines.append(f"{exercise:9s} {passed:3d}/{len(rows):<3d}      {common}")
    graded = {r.notebook for r in records if r.exercise}
    ungraded = {r.notebook for r in records if not r.exercise} - graded
    students = len({student_id(n, roots) for n in graded})
    lines.append(f"{students} student(s), {len(graded)} notebook(s) graded"
                 + (f"; {len(ungraded)} could not be graded (their reason is in the report)" if ungraded else ""))
    _, _, notes = gradebook(records, roots)
    return printable("\n".join(lines + notes))


def _gist(message: str) -> str:
    """A failure message cut to its first clause, with the exercise label and numbers removed, so that the same
    mistake made by different students counts together."""
    text = re.sub(r"^Exercise \d+\.\d+ `[^`]*`( failed)?:?\s*", "", message.strip().splitlines()[0] if message else "")
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    return (text[:90] + "…") if len(text) > 90 else text
