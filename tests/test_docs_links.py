"""The README is the course's short front door and the docs pages hold the rest: every relative link in them
resolves (file and, where given, heading), the README stays short and readable, links every docs page, and its
chapter list agrees with the chapters' own exercise estimates; each generated table sits on the page that its
generator writes (``utils/readme_blocks.py``). Reads text files only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from utils.readme_blocks import ALIGNMENT_FAKING_PAGE, DOCS_DIR, README_PATH, RESULTS_PAGE, STEERING_PAGE

ROOT = README_PATH.parent
PAGES = [README_PATH, *sorted(DOCS_DIR.glob("*.md"))]
README_MAX_LINES = 200
LINE_MAX_CHARS = 160

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_INLINE = re.compile(r"\[([^\]\n]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_REF_USE = re.compile(r"\]\[([^\]\n]+)\]")
_REF_DEF = re.compile(r"^\[([^\]\n]+)\]:\s*(\S+)", re.M)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """``text`` without fenced code blocks and code spans (a link written as code is not a link)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(page: Path) -> list[str]:
    """Every link target of a markdown page: inline links and images, and reference definitions."""
    prose = _prose(page.read_text(encoding="utf-8"))
    return [m.group(2) for m in _INLINE.finditer(prose)] + [m.group(2) for m in _REF_DEF.finditer(prose)]


def anchors(page: Path) -> set[str]:
    """The heading anchors GitHub gives a page: lower case, punctuation dropped, spaces to hyphens, ``-1`` ... for
    repeats."""
    seen: dict[str, int] = {}
    out = set()
    for m in _HEADING.finditer(_FENCE.sub("", page.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", m.group(2).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target) is not None  # https:, mailto:, ...


def test_the_markdown_parser_sees_links_and_skips_code(tmp_path: Path):
    page = tmp_path / "demo.md"
    page.write_text("# A `code` title, with punctuation!\n[a](x.md) ![b](img/y.png) [c][ref] `[d](not-a-link.md)`\n"
                    "```\n[e](nor-this.md)\n```\n[ref]: z.md#part\n## A `code` title, with punctuation!\n",
                    encoding="utf-8")
    assert links(page) == ["x.md", "img/y.png", "z.md#part"]
    assert anchors(page) == {"a-code-title-with-punctuation", "a-code-title-with-punctuation-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    text = page.read_text(encoding="utf-8")
    defined = {m.group(1).lower() for m in _REF_DEF.finditer(_prose(text))}
    undefined = [r for r in _REF_USE.findall(_prose(text)) if r.lower() not in defined]
    assert not undefined, f"{page.name}: reference links without a definition: {undefined}"
    broken = []
    for target in links(page):
        if _external(target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no heading #{anchor} in {file.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {broken}"


def _readme_prose_lines() -> list[tuple[int, str]]:
    """(line number, line) of the README outside fenced code blocks and tables."""
    out, fenced = [], False
    for number, line in enumerate(README_PATH.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced and not line.lstrip().startswith("|"):
            out.append((number, line))
    return out


def test_readme_is_a_short_front_door():
    lines = README_PATH.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to a page under docs/"
    long = [f"line {n}: {len(line)} characters" for n, line in _readme_prose_lines() if len(line) > LINE_MAX_CHARS]
    assert not long, f"README.md lines over {LINE_MAX_CHARS} characters (outside tables and code): {long}"
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", README_PATH.read_text(encoding="utf-8"), re.S | re.M)
    commands = [line for block in fenced for line in block.splitlines()]
    assert any(c.startswith("make lab") for c in commands) and any(c.startswith("make test") for c in commands)
    assert all(len(c) <= 100 for c in commands), [c for c in commands if len(c) > 100]


def test_readme_links_every_docs_page():
    linked = {(README_PATH.parent / t.partition("#")[0]).resolve() for t in links(README_PATH) if not _external(t)}
    missing = [p.name for p in sorted(DOCS_DIR.glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"README.md's 'Read more' does not link: {missing}"


def test_readme_chapter_list_matches_the_chapters():
    """One row per chapter source, with its exercise count and the sum of its exercises' "≈ N min" estimates (the
    numbers the instructor's guide generates), and a link to the student notebook."""
    from utils.instructors import exercise_minutes

    rows = {m.group(1): m for m in re.finditer(
        r"^\| (\d\d) \| \[[^\]]+\]\((chapters/[^)]+\.ipynb)\) \| [^|]+ \| (\d+) \| ≈ (\d+) min \|$",
        README_PATH.read_text(encoding="utf-8"), re.M)}
    sources = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.py"))
    assert sorted(rows) == [s.name[:2] for s in sources]
    for source in sources:
        row, minutes = rows[source.name[:2]], exercise_minutes(source)
        assert row.group(2) == f"chapters/{source.stem}.ipynb"
        assert (int(row.group(3)), int(row.group(4))) == (len(minutes), sum(minutes)), source.name


@pytest.mark.parametrize("markers, page", [
    ("reference-table", RESULTS_PAGE), ("steering-tables", STEERING_PAGE),
    ("situation-table", ALIGNMENT_FAKING_PAGE), ("inside-table", ALIGNMENT_FAKING_PAGE),
])
def test_each_generated_table_is_on_its_page_only(markers: str, page: Path):
    start, end = f"<!-- {markers}:start -->", f"<!-- {markers}:end -->"
    holders = [p.name for p in PAGES if start in p.read_text(encoding="utf-8")]
    assert holders == [page.name], f"{start} should be on {page.name} only, found on {holders}"
    text = page.read_text(encoding="utf-8")
    assert text.count(start) == text.count(end) == 1 and text.index(start) < text.index(end)
