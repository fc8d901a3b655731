"""Generated blocks in README.md: text between two HTML-comment markers that a maintainer command rewrites
(the steering tables, the organism's situation table), so the README cannot drift from the data it reports."""

from __future__ import annotations

from pathlib import Path

README_PATH = Path(__file__).resolve().parent.parent / "README.md"


def replace_block(start: str, end: str, content: str, readme: Path = README_PATH) -> None:
    """Replace whatever lies between the ``start`` and ``end`` marker lines of ``readme`` with ``content``."""
    text = readme.read_text(encoding="utf-8")
    if start not in text or end not in text:
        raise ValueError(f"{readme} lacks the markers {start} and {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{content}\n{end}{tail}", encoding="utf-8")
