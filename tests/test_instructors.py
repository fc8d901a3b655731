"""The instructor's guide's numbers come from the course files."""

from __future__ import annotations

from utils.instructors import END, GUIDE, START, chapter_table, exercise_minutes


def test_guide_table_is_current():
    text = GUIDE.read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert block == chapter_table(), "run `python -m utils.instructors`"


def test_exercise_minutes_reads_only_exercise_headers(tmp_path):
    source = tmp_path / "07_demo.py"
    source.write_text("# ### Exercise 07.1 — A\n# **Difficulty** ●○○○○ · **Importance** ●●○○○ · **≈ 10 min**\n"
                      "# Running this takes ≈ 5 min.\n"
                      "# ### Exercise 07.2 — B\n# **Difficulty** ●●○○○ · **Importance** ●●○○○ · **≈ 25 min**\n")
    assert exercise_minutes(source) == [10, 25]
