"""Build every notebook from its one hand-edited source.

Source: ``solutions/NN_name.py`` in the "percent" format —

    # %% [markdown]
    # # A heading
    # Some prose.

    # %%
    def resid_at_layer(model, tokens, layer):
        # BEGIN SOLUTION
        ...the reference answer...
        # END SOLUTION

Outputs (never edit them by hand; ``tests/test_notebook_sync.py`` fails when they drift):

* ``solutions/NN_name.ipynb`` — the solved notebook (marker lines removed);
* ``chapters/NN_name.ipynb`` — the student notebook: each solution region becomes
  ``raise NotImplementedError("Exercise NN.k `name`: ...")`` at the region's indentation, where
  ``name`` is the function whose body holds the region and ``k`` counts regions in the file.

Both notebooks carry the ``python3`` kernelspec (so JupyterLab starts a kernel without asking),
``course`` metadata (chapter, variant, source) for the grader, stable cell ids, and no outputs.

    python -m utils.notebook_build            # write all notebooks
    python -m utils.notebook_build --check    # exit 1 listing notebooks that differ from sources
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_GLOB = "[0-9][0-9]_*.py"
_CELL = re.compile(r"^# %%(?:\s*\[(?P<kind>markdown|md)\])?\s*$")
_BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_DEF = re.compile(r"^\s*(?:def|class)\s+(?P<name>\w+)")

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python", "version": "3.11", "mimetype": "text/x-python", "file_extension": ".py"}


class SourceError(ValueError):
    """A notebook source is malformed; the message names the file and line."""


@dataclass
class Cell:
    kind: str  # "code" or "markdown"
    lines: list[str]
    first_line: int  # 1-based line of the cell's first content line in the source


def parse_cells(text: str, path: str = "<source>") -> list[Cell]:
    """Split a percent-format source into cells. Markdown lines lose their leading ``# ``."""
    cells: list[Cell] = []
    current: Cell | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _CELL.match(line)
        if m:
            current = Cell("markdown" if m.group("kind") else "code", [], lineno + 1)
            cells.append(current)
            continue
        if current is None:
            if line.strip() and not line.startswith("#"):
                raise SourceError(f"{path}:{lineno}: code before the first '# %%' cell marker")
            continue
        if current.kind == "markdown":
            if line.strip() and not line.startswith("#"):
                raise SourceError(f"{path}:{lineno}: markdown cell lines must start with '#'")
            line = line[2:] if line.startswith("# ") else line[1:]
        current.lines.append(line)
    for cell in cells:
        while cell.lines and not cell.lines[-1].strip():
            cell.lines.pop()
        while cell.lines and not cell.lines[0].strip():
            cell.lines.pop(0)
            cell.first_line += 1
    return [c for c in cells if c.lines]


def split_solution(cell: Cell, chapter: str, counter: list[int], path: str) -> tuple[str, str]:
    """Return (solution_source, student_source) of one code cell."""
    solution: list[str] = []
    student: list[str] = []
    region_indent: str | None = None
    enclosing = "exercise"
    for offset, line in enumerate(cell.lines):
        lineno = cell.first_line + offset
        if region_indent is None:
            m_def = _DEF.match(line)
            if m_def:
                enclosing = m_def.group("name")
            m = _BEGIN.match(line)
            if m:
                region_indent = m.group("indent")
                counter[0] += 1
                message = (f"Exercise {chapter}.{counter[0]} `{enclosing}`: replace this line with your "
                           f"solution (hints are in the cell above).")
                student.append(f'{region_indent}raise NotImplementedError("{message}")')
                continue
            if _END.match(line):
                raise SourceError(f"{path}:{lineno}: END SOLUTION without BEGIN SOLUTION")
            solution.append(line)
            student.append(line)
        else:
            if _BEGIN.match(line):
                raise SourceError(f"{path}:{lineno}: nested BEGIN SOLUTION")
            if _END.match(line):
                region_indent = None
                continue
            solution.append(line)
    if region_indent is not None:
        raise SourceError(f"{path}:{cell.first_line}: BEGIN SOLUTION is never closed in this cell")
    return "\n".join(solution), "\n".join(student)


def build(source: Path) -> tuple[dict, dict]:
    """Return (solution_notebook, student_notebook) as nbformat v4 dicts for ``source``."""
    import nbformat
    from nbformat import v4

    chapter = source.name[:2]
    rel = source.resolve().relative_to(REPO_ROOT).as_posix() if source.resolve().is_relative_to(REPO_ROOT) else source.name
    cells = parse_cells(source.read_text(encoding="utf-8"), str(source))
    counter = [0]
    notebooks = {}
    outputs: dict[str, list] = {"solution": [], "student": []}
    for index, cell in enumerate(cells):
        cell_id = f"c{chapter}-{index:03d}"
        if cell.kind == "markdown":
            text = "\n".join(cell.lines)
            for variant in outputs:
                outputs[variant].append(v4.new_markdown_cell(text, id=cell_id))
        else:
            solution, student = split_solution(cell, chapter, counter, str(source))
            outputs["solution"].append(v4.new_code_cell(solution, id=cell_id))
            outputs["student"].append(v4.new_code_cell(student, id=cell_id))
    for variant, nb_cells in outputs.items():
        nb = v4.new_notebook(cells=nb_cells)
        nb.metadata = {
            "kernelspec": dict(KERNELSPEC),
            "language_info": dict(LANGUAGE_INFO),
            "course": {"chapter": chapter, "variant": variant, "source": rel, "exercises": counter[0]},
        }
        nbformat.validate(nb)
        notebooks[variant] = nb
    return notebooks["solution"], notebooks["student"]


def targets(source: Path, root: Path = REPO_ROOT) -> tuple[Path, Path]:
    """(solution .ipynb path, student .ipynb path) for a source file."""
    name = source.with_suffix(".ipynb").name
    return root / "solutions" / name, root / "chapters" / name


def render(nb: dict) -> str:
    import nbformat

    return nbformat.writes(nbformat.from_dict(nb)) + "\n"


def sources(root: Path = REPO_ROOT) -> list[Path]:
    return sorted((root / "solutions").glob(SOURCE_GLOB))


def build_all(root: Path = REPO_ROOT, check: bool = False) -> list[Path]:
    """Write (or with ``check``, only compare) every notebook. Returns the paths that differ."""
    differ: list[Path] = []
    for source in sources(root):
        for nb, path in zip(build(source), targets(source, root)):
            text = render(nb)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                differ.append(path)
                if not check:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
    return differ


def main(argv: list[str]) -> int:
    check = "--check" in argv
    differ = build_all(check=check)
    if check and differ:
        print("These notebooks differ from their sources; run `make notebooks`:", file=sys.stderr)
        for path in differ:
            print(f"  {path.relative_to(REPO_ROOT)}", file=sys.stderr)
        return 1
    verb = "would change" if check else "wrote"
    print(f"{verb} {len(differ)} notebook(s)" + "".join(f"\n  {p.relative_to(REPO_ROOT)}" for p in differ))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
