"""Generated blocks in the README and the pages under ``docs/``: text between two HTML-comment markers that a
maintainer command rewrites (the reference table, the steering tables, the organism's situation table, chapter 05's
table, the instructor's guide's chapter times), so a page cannot drift from the data it reports.

The README is the course's short front door; the generated tables live on the docs pages it links. Each page that
holds a block is named here, once, so the generators and the tests that check them agree on where it is:

* :data:`RESULTS_PAGE` — ``<!-- reference-table:start/end -->`` (:mod:`utils.reference`);
* :data:`STEERING_PAGE` — ``<!-- steering-tables:start/end -->`` (:mod:`utils.steering.make_sweep`);
* :data:`ALIGNMENT_FAKING_PAGE` — ``<!-- situation-table:start/end -->`` (:mod:`utils.af.make_runs`) and
  ``<!-- inside-table:start/end -->`` (:mod:`utils.af.make_inside`);
* :data:`ORGANISM_V3_PAGE` — ``<!-- organism-v3-table:start/end -->`` (:mod:`utils.af.make_runs`).

A link written inside a block is relative to the page that holds it (``docs/``), not to the repository root.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
README_PATH = REPO_ROOT / "README.md"
DOCS_DIR = REPO_ROOT / "docs"
RESULTS_PAGE = DOCS_DIR / "RESULTS.md"
STEERING_PAGE = DOCS_DIR / "STEERING.md"
ALIGNMENT_FAKING_PAGE = DOCS_DIR / "ALIGNMENT_FAKING.md"
ORGANISM_V3_PAGE = DOCS_DIR / "ORGANISM_V3.md"


def docs_page(name: str) -> Path:
    """The path of the page ``docs/<name>`` (``docs_page("RESULTS.md")``)."""
    return DOCS_DIR / name


def read_block(start: str, end: str, readme: Path = README_PATH) -> str:
    """The text between the ``start`` and ``end`` marker lines of ``readme`` (a README or a docs page), stripped;
    ``ValueError`` when the page lacks either marker."""
    text = readme.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise ValueError(f"{readme} lacks the markers {start} and {end}")
    return text.split(start, 1)[1].split(end, 1)[0].strip()


def replace_block(start: str, end: str, content: str, readme: Path = README_PATH) -> None:
    """Replace whatever lies between the ``start`` and ``end`` marker lines of ``readme`` with ``content``.

    ``readme`` is the markdown file that holds the markers: the README by default, or a docs page
    (:data:`RESULTS_PAGE`, :data:`STEERING_PAGE`, :data:`ALIGNMENT_FAKING_PAGE`, the instructor's guide)."""
    text = readme.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise ValueError(f"{readme} lacks the markers {start} and {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{content}\n{end}{tail}", encoding="utf-8")
