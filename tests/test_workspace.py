"""The learner's work folder (issue 14): make lab copies the chapters into git-ignored work/ once and never
overwrites them; a fresh copy keeps the old one; the server is rooted at the repository and opens chapter 00."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from utils import workspace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def course(tmp_path: Path) -> tuple[Path, Path]:
    chapters = tmp_path / "chapters"
    chapters.mkdir()
    for name in ("00_setup.ipynb", "03_steering.ipynb"):
        (chapters / name).write_text(f'{{"stub": "{name}"}}')
    return chapters, tmp_path / "work"


def test_fill_copies_missing_chapters_and_never_overwrites(course):
    chapters, work = course
    made = workspace.fill(work, chapters)
    assert [p.name for p in made] == ["00_setup.ipynb", "03_steering.ipynb"]
    (work / "03_steering.ipynb").write_text("my answers")
    (chapters / "03_steering.ipynb").write_text("an updated chapter")
    (chapters / "05_new.ipynb").write_text("a new chapter")
    made = workspace.fill(work, chapters)
    assert [p.name for p in made] == ["05_new.ipynb"]  # new chapters arrive after a pull
    assert (work / "03_steering.ipynb").read_text() == "my answers"  # started work is never overwritten


def test_fresh_copy_keeps_the_old_one(course):
    chapters, work = course
    workspace.fill(work, chapters)
    (work / "03_steering.ipynb").write_text("my answers")
    new, kept = workspace.fresh("3", work, chapters, stamp="20261130-120000")
    assert new.read_text() == (chapters / "03_steering.ipynb").read_text()
    assert kept.name == "03_steering.20261130-120000.ipynb" and kept.read_text() == "my answers"
    with pytest.raises(ValueError, match="there is no chapter 07; the chapters are 00, 03"):
        workspace.fresh("07", work, chapters)
    with pytest.raises(ValueError, match="a number"):
        workspace.fresh("steering", work, chapters)


def test_no_chapters_says_what_to_do(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="make notebooks"):
        workspace.fill(tmp_path / "work", tmp_path)


def test_work_folder_is_git_ignored_and_every_chapter_is_shipped():
    out = subprocess.run(["git", "check-ignore", "-q", "work/00_setup_and_tour.ipynb"], cwd=ROOT)
    assert out.returncode == 0, "work/ must be git-ignored: the learner's answers must never conflict with git pull"
    assert [p.name for p in workspace.chapter_notebooks()] == sorted(p.name for p in (ROOT / "chapters").glob("*.ipynb"))


def test_make_lab_roots_the_server_at_the_repo_and_opens_chapter_00_in_work():
    dry = subprocess.run(["make", "-n", "lab", "STAMP=Makefile"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "-m utils.workspace" in dry
    assert f'--ServerApp.root_dir="{ROOT}"' in dry
    # the notebook opens from work/, and the file browser shows the root (work/ beside solutions/ and reference/)
    assert "--LabApp.default_url=/lab/tree/work/00_setup_and_tour.ipynb?file-browser-path=/" in dry
    assert "chapters/00_setup_and_tour.ipynb" not in dry
