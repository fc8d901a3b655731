"""Every notebook runs end to end through the grader: each solution notebook scores full marks and
each student notebook scores zero (its stubs raise NotImplementedError), and neither file changes."""

from __future__ import annotations

import pytest

from utils import grade
from utils.notebook_build import sources, targets

SOURCES = sources()


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=[s.stem for s in SOURCES])
def test_solution_scores_full_marks_and_student_notebook_zero(source):
    solution, student = targets(source)
    before = {p: p.read_bytes() for p in (solution, student)}

    solved = grade.grade_notebook(solution, timeout=600, check_timeout=180)
    failed = [(r.exercise, r.message) for r in solved if not r.passed]
    assert solved and not failed, failed
    assert not solved[0].notes, f"a solution cell failed: {solved[0].notes}"

    stub = grade.grade_notebook(student, timeout=600, check_timeout=180)
    assert [r.name for r in stub] == [r.name for r in solved]
    assert not any(r.passed for r in stub)
    assert all("not attempted" in r.message for r in stub), [(r.exercise, r.message) for r in stub]
    assert all(p.read_bytes() == content for p, content in before.items())
