"""Numbers for the instructor's guide (``docs/INSTRUCTORS.md``), computed from the course files.

    python -m utils.instructors    # rewrite the guide's chapter table

* **learner minutes**: the sum of the "≈ N min" estimates in a chapter's exercise headers (the time to solve
  the exercises; reading the prose and running the cells come on top);
* **machine seconds**: the summed cell times of the chapter's reference run (``reference/``, 2 threads), i.e.
  how long *Run All* takes on the solution notebook.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GUIDE = REPO_ROOT / "docs" / "INSTRUCTORS.md"
START, END = "<!-- chapter-times:start -->", "<!-- chapter-times:end -->"
_ESTIMATE = re.compile(r"^# \*\*Difficulty\*\*.*\*\*≈ (\d+) min\*\*\s*$")


def exercise_minutes(source: Path) -> list[int]:
    """The "≈ N min" estimate of each exercise header in a chapter source, in order."""
    return [int(m.group(1)) for line in source.read_text(encoding="utf-8").splitlines()
            if (m := _ESTIMATE.match(line))]


def machine_seconds(reference: Path) -> float:
    """Summed cell times of a reference notebook (``metadata.course.seconds`` of each code cell)."""
    nb = json.loads(reference.read_text(encoding="utf-8"))
    return sum(c.get("metadata", {}).get("course", {}).get("seconds", 0.0) for c in nb["cells"])


def chapter_table(root: Path = REPO_ROOT) -> str:
    rows = ["| chapter | exercises | learner: exercise estimates | machine: Run All on the solution (2 threads) |",
            "|---|---|---|---|"]
    total_min = 0
    for source in sorted((root / "solutions").glob("[0-9][0-9]_*.py")):
        minutes = exercise_minutes(source)
        total_min += sum(minutes)
        ref = root / "reference" / source.with_suffix(".ipynb").name
        machine = f"{machine_seconds(ref):.0f} s" if ref.exists() else "not built (`make reference`)"
        rows.append(f"| {source.stem} | {len(minutes)} | {sum(minutes)} min | {machine} |")
    rows.append(f"| all | | {total_min} min (≈ {total_min / 60:.1f} h) | |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    from utils.readme_blocks import replace_block

    replace_block(START, END, chapter_table(), readme=GUIDE)
    print(chapter_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
