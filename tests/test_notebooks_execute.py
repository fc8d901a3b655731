"""Every notebook runs end to end through the grader: each solution notebook scores full marks and each student
notebook scores zero (its stubs raise NotImplementedError), and neither file changes.

Every solution runs on every ``make test``. The student notebooks run in a daily rotating sample of two chapters
(tests/sampling.py; ``COURSE_TESTS=all`` runs all six): their checks' stub contract is tested exercise by
exercise in tests/test_checks_chNN.py, and tests/test_notebook_sync.py pins that each student notebook is its
solution with the answers cut, so a whole run per chapter per day adds little but minutes."""

from __future__ import annotations

import pytest

from sampling import rotating
from utils import grade
from utils.notebook_build import sources, targets

SOURCES = sources()
IDS = [s.stem for s in SOURCES]


def _unchanged(*paths):
    before = {p: p.read_bytes() for p in paths}
    return lambda: all(p.read_bytes() == content for p, content in before.items())


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_solution_scores_full_marks(source):
    solution, _ = targets(source)
    unchanged = _unchanged(solution)
    solved = grade.grade_notebook(solution, timeout=600, check_timeout=180)
    failed = [(r.exercise, r.message) for r in solved if not r.passed]
    assert solved and not failed, failed
    assert not solved[0].notes, f"a solution cell failed: {solved[0].notes}"
    assert unchanged()


@pytest.mark.slow
@pytest.mark.parametrize("source", rotating(SOURCES, keep=2, salt="student notebooks", ids=IDS))
def test_student_notebook_scores_zero_on_every_exercise(source):
    from utils.checks import exercises

    _, student = targets(source)
    unchanged = _unchanged(student)
    stub = grade.grade_notebook(student, timeout=600, check_timeout=180)
    chapter = source.stem[:2]
    assert [r.name for r in stub] == [e.name for e in exercises(chapter)], [r.name for r in stub]
    assert not any(r.passed for r in stub)
    assert all("not attempted" in r.message for r in stub), [(r.exercise, r.message) for r in stub]
    assert unchanged()
