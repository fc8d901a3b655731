"""The learner's own copies of the chapters, kept apart from the course files.

    python -m utils.workspace               # copy every chapter that work/ lacks (never overwrites a copy)
    python -m utils.workspace --fresh 03    # a fresh copy of chapter 03; the old one is kept with a time stamp

``make lab`` runs the first form, then opens JupyterLab at the repository root on ``work/00_setup_and_tour.ipynb``.
``work/`` is git-ignored, so answers written there never conflict with ``git pull``; ``chapters/`` stays exactly as
shipped (the grader's untouched stubs). After a pull, new chapters appear in ``work/`` the next time this runs;
chapters you already started keep your answers — take ``--fresh`` to see an updated chapter (your copy is renamed,
not deleted).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHAPTERS_DIR = REPO_ROOT / "chapters"
WORK_DIR = REPO_ROOT / "work"


def chapter_notebooks(chapters_dir: Path = CHAPTERS_DIR) -> list[Path]:
    """The shipped student notebooks, ``chapters/NN_name.ipynb``, in order."""
    return sorted(chapters_dir.glob("[0-9][0-9]_*.ipynb"))


def fill(work_dir: Path = WORK_DIR, chapters_dir: Path = CHAPTERS_DIR) -> list[Path]:
    """Copy each chapter that ``work_dir`` does not have yet; return the copies made. Existing files are never
    touched, whatever their content."""
    notebooks = chapter_notebooks(chapters_dir)
    if not notebooks:
        raise FileNotFoundError(f"no chapters found in {chapters_dir}: run `make notebooks` to build them")
    work_dir.mkdir(parents=True, exist_ok=True)
    made = []
    for notebook in notebooks:
        target = work_dir / notebook.name
        if not target.exists():
            shutil.copy2(notebook, target)
            made.append(target)
    return made


def fresh(chapter: str, work_dir: Path = WORK_DIR, chapters_dir: Path = CHAPTERS_DIR, stamp: str | None = None) -> tuple[Path, Path | None]:
    """A fresh copy of chapter ``chapter`` ("3", "03" or "03_steering") in ``work_dir``. An existing copy is renamed
    to ``NN_name.<stamp>.ipynb`` first (never deleted). Returns ``(new copy, renamed old copy or None)``."""
    number = chapter.strip().split("_")[0]
    if not number.isdigit():
        raise ValueError(f"chapter must be a number such as 03, got {chapter!r}")
    matches = [n for n in chapter_notebooks(chapters_dir) if n.name.startswith(f"{int(number):02d}_")]
    if not matches:
        known = ", ".join(n.name[:2] for n in chapter_notebooks(chapters_dir))
        raise ValueError(f"there is no chapter {int(number):02d}; the chapters are {known}")
    source = matches[0]
    work_dir.mkdir(parents=True, exist_ok=True)
    target = work_dir / source.name
    kept = None
    if target.exists():
        kept = target.with_name(f"{target.stem}.{stamp or time.strftime('%Y%m%d-%H%M%S')}.ipynb")
        if kept.exists():
            raise FileExistsError(f"{kept} already exists; try again in a second")
        target.rename(kept)
    shutil.copy2(source, target)
    return target, kept


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.workspace", description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", metavar="NN", help="replace work/NN_*.ipynb by a fresh copy (the old one is kept)")
    args = parser.parse_args(argv)
    try:
        if args.fresh:
            new, kept = fresh(args.fresh)
            print(f"fresh copy: {new.relative_to(REPO_ROOT)}" + (f" (your old copy: {kept.relative_to(REPO_ROOT)})" if kept else ""))
        else:
            made = fill()
            if made:
                print("copied into work/: " + ", ".join(p.name for p in made))
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
