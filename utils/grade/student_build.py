"""The course files a graded notebook runs against: the chapter's reference answers are not callable.

The reference implementations of the exercises ship in ``utils/`` (the checks compare with them, and
the chapters use some as helpers). In a graded run a submission must not get its marks from them
(``greedy_decode = tour.greedy_decode``). :func:`build` writes a copy of ``utils/`` in which every
top-level function named like one of the chapter's exercises is renamed ``_reference_<name>`` (the
module's own code keeps calling it, so helpers that use it still work) and the public name becomes a
stub that raises :class:`ReferenceUnavailable`. The grader puts the copy first on the kernel's
import path; a learner's function that still reaches a reference raises, and the record says so.

Limits, said plainly: the renamed function is still in the copy, so a student who reads the build can
call ``tour._reference_greedy_decode`` by that name (searching for it is no longer an accident, and the
grader flags names starting with ``_reference_`` in the notebook's source); ``utils/data`` is linked,
not copied, and the repository's other top-level files (``environment.yml``, ``binder/``...) are linked beside it.
"""

from __future__ import annotations

import ast
import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"data", "__pycache__"}
UNCHANGED = ("checks", "grade")  # the check modules and the grader itself import the references by name
PREFIX = "_reference_"
LEFT_OUT = {"utils", ".git", ".venv", "work", "grades", "__pycache__", ".pytest_cache"}
STUB = '''

class ReferenceUnavailable(RuntimeError):
    """A graded notebook called the course's reference implementation of an exercise."""


def _unavailable(name):
    def stub(*args, **kwargs):
        raise ReferenceUnavailable(
            f"`{{name}}` here is the course's reference implementation, which graded runs do not provide: "
            f"write the exercise's function yourself")
    stub.__name__ = name
    return stub
'''


class _Rename(ast.NodeTransformer):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.names:
            return ast.copy_location(ast.Name(id=PREFIX + node.id, ctx=node.ctx), node)
        return node


def hide_references(source: str, names: set[str]) -> tuple[str, list[str]]:
    """Rewrite one module's source: top-level ``def name`` (for ``name`` in ``names``) becomes ``def _reference_name``,
    every use of ``name`` in the module follows it, and ``name`` becomes a stub. Returns (source, hidden names); the
    source is unchanged when the module defines none of them."""
    tree = ast.parse(source)
    hidden = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name in names]
    if not hidden:
        return source, []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in hidden:
            node.name = PREFIX + node.name
    tree = _Rename(set(hidden)).visit(tree)
    stubs = STUB.replace("{{", "{").replace("}}", "}") + "".join(f"\n{n} = _unavailable({n!r})" for n in hidden) + "\n"
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n" + stubs, hidden


def build(dest: Path, names: set[str], source_root: Path = REPO_ROOT) -> list[str]:
    """Write ``dest/utils``: a copy of ``source_root/utils`` with the references of ``names`` hidden (see the module
    docstring) and ``data`` linked. Returns the hidden functions as ``module.name``."""
    src = source_root / "utils"
    out = dest / "utils"
    hidden: list[str] = []
    for directory, subdirs, files in os.walk(src):
        subdirs[:] = [d for d in subdirs if d not in SKIP_DIRS]
        rel = Path(directory).relative_to(src)
        (out / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            if not name.endswith(".py"):
                shutil.copy2(Path(directory) / name, out / rel / name)
                continue
            text = (Path(directory) / name).read_text(encoding="utf-8")
            if not rel.parts or rel.parts[0] not in UNCHANGED:
                text, done = hide_references(text, names)
                module = ".".join(("utils", *rel.parts, name.removesuffix(".py"))).removesuffix(".__init__")
                hidden += [f"{module}.{n}" for n in done]
            (out / rel / name).write_text(text, encoding="utf-8")
    (out / "data").symlink_to((src / "data").resolve(), target_is_directory=True)
    for entry in source_root.iterdir():  # environment.yml, pyproject.toml, binder/, ...: read by some chapters
        if entry.name not in LEFT_OUT and not (dest / entry.name).exists():
            (dest / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return hidden
