"""The student build: the course files with the chosen chapters' reference answers not callable by their names.

The reference implementations of the exercises ship in ``utils/`` (the checks compare with them, and the chapters
use some as helpers). A learner must not get marks from them (``greedy_decode = tour.greedy_decode``). :func:`build`
writes a copy of ``utils/`` in which, for the given exercise names:

* every top-level function named like an exercise is renamed ``_reference_<name>``, and the public name becomes a
  stub that raises ``ReferenceUnavailable`` (its message says "reference implementation");
* a course module that imports such a function at its top level (``utils/steering/__init__.py`` re-exports
  ``clamp_hook``) gets the stub under the public name too, and ``_reference_<name>`` beside it;
* every use of a hidden function inside the course's code follows the rename: the module's own calls, imports from
  another course module (``from utils.features import context_window`` becomes ``from utils.features import
  _reference_context_window as context_window`` inside a function) and attribute uses through a name bound to a
  course module (``tour.greedy_decode`` becomes ``tour._reference_greedy_decode``). So the helpers the notebooks call
  keep working, and so do the in-notebook self-study checks (``utils/checks``), which compare with the references.

Only names really hidden in the module named are rewritten. Two users:

* the grader (:mod:`utils.grade.batch`) builds one per graded notebook (``utils/data`` linked, the pin files of
  :data:`GRADED_TOP_LEVEL` copied, nothing else of the checkout) and puts it first on the kernel's import path; the
  sandbox hides the checkout itself (:func:`utils.grade.sandbox.course_hiding`);
* an instructor hands one out::

      python -m utils.grade.student_build --out DIR [--chapter NN ...]    # or: make handout OUT=DIR

  writes ``DIR`` with the chosen chapters' student notebooks (``chapters/``), the build's ``utils/`` (``utils/data``
  copied, about 90 MB), and the files a learner's machine needs to install and run the course (``README.md`` with the
  ``docs/`` pages it links, ``LICENSE``, ``environment.yml``, ``pyproject.toml``, ``Makefile``, ``binder/``), all
  copies (ready to zip or put on a server). No ``solutions/``, ``reference/`` or ``tests/``. It hides the references of every chosen chapter (all
  chapters by default), prints what it hid and which notebook cells still name a hidden function (such a cell raises
  ``ReferenceUnavailable`` in that build), and refuses a ``DIR`` that exists and is not empty.

The two builds differ in what stays of a reference (issue 24, item 1):

* the **handout** (self-study) keeps it under the new name, so that its in-notebook checks can compare with it: a
  learner who reads the build can call ``tour._reference_greedy_decode``, which is fine for one's own copy;
* the **sealed** build, the one a graded kernel gets (``sealed=True``, :mod:`utils.grade.batch`), holds no
  reference implementation under any name. Each hidden function's definition is cut out of its module, and
  ``_reference_<name>`` becomes :func:`_yours`: the *learner's own* function of that name, looked up in the
  notebook's namespace when called. So a course helper that builds on an exercise (``dashboard`` on
  ``context_window``), and a fixture the grader hands a learner's function (chapter 03's clamp hook), use what the
  learner wrote, and calling ``_reference_<name>`` gives back one's own code. The chapters' check modules
  (``utils/checks/chNN.py``, which hold references and golden values) are replaced by stubs that say the grader
  checks the exercise; of ``utils/grade`` only what the kernel runs (``answer``, ``wire``) is copied. The verdicts are
  decided in the grader's process, on its own copy of the course (:mod:`utils.grade.remote`).

Code outside the build (a teacher's checks on ``COURSE_CHECKS_PATH``) is not rewritten and sees the stubs.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"data", "__pycache__", ".ipynb_checkpoints"}
UNCHANGED = ("checks", "grade")  # packages that get no stubs: the checks and the grader use the references by name
PREFIX = "_reference_"
LEFT_OUT = {"utils", ".git", ".venv", "work", "grades", "__pycache__", ".pytest_cache"}
GRADED_TOP_LEVEL = ("environment.yml", "pyproject.toml")  # what a graded kernel reads beside utils/ (the pins)
HANDOUT_FILES = ("README.md", "docs", "LICENSE", "environment.yml", "pyproject.toml", "Makefile", "binder")
DATA_IGNORED = ("*.partial.jsonl", "__pycache__", ".ipynb_checkpoints", "*.pyc")  # as in .gitignore
STUB = '''

class ReferenceUnavailable(RuntimeError):
    """A graded notebook called the course's reference implementation of an exercise."""


def _unavailable(name):
    def stub(*args, **kwargs):
        raise ReferenceUnavailable(
            f"`{name}` here is the course's reference implementation, which this student build does not provide: "
            f"write the exercise's function yourself")
    stub.__name__ = name
    return stub
'''
SEALED_STUB = '''

def _yours(name):
    """The learner's own `name`, from the notebook's namespace, called when this is called (a sealed build)."""
    def yours(*args, **kwargs):
        import sys

        namespace = getattr(sys.modules.get("__main__"), "__dict__", {})
        function = namespace.get(name)
        if function is None or getattr(function, "_course_placeholder", False) or not callable(function):
            raise ReferenceUnavailable(
                f"this course code uses your `{name}`, and the notebook has no working one: in a graded copy the "
                f"course's own implementation is not available. Define `{name}` (its exercise) and run its cell "
                f"before the cells that use it")
        return function(*args, **kwargs)
    yours.__name__ = name
    yours._course_placeholder = True
    return yours
'''
CHECKS_STUB = '''"""Chapter {chapter}'s checks, in a graded copy of the course: the grader checks each exercise in its own
process, outside this notebook, so nothing here computes an answer."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)

    def checked_by_the_grader(*args, **kwargs):
        print(f"check.{{name}}: this notebook is being graded; the grader checks this exercise outside the notebook.")

    checked_by_the_grader.__name__ = name
    return checked_by_the_grader
'''
SEALED_GRADE_MODULES = ("__init__.py", "answer.py", "wire.py")  # the kernel's half of grading, all it imports


class BuildError(ValueError):
    """A course module cannot be rewritten safely (e.g. a parameter named like a hidden function)."""


# --- which names are hidden where -------------------------------------------------------------------------------
@dataclass
class _Plan:
    modules: set[str]  # every module of the build ("utils", "utils.tour", "utils.steering", ...)
    hidden: dict[str, set[str]] = field(default_factory=dict)  # module -> public names that are stubs in the build

    def is_hidden(self, module: str | None, name: str) -> bool:
        return module is not None and name in self.hidden.get(module, ())


def _module_name(rel: Path) -> str:
    """``steering/hooks.py`` -> ``utils.steering.hooks``; ``steering/__init__.py`` -> ``utils.steering``."""
    return ".".join(("utils", *rel.with_suffix("").parts)).removesuffix(".__init__")


def _unchanged(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[1] in UNCHANGED


def _import_base(node: ast.ImportFrom, module: str, is_package: bool) -> str | None:
    """The absolute module an ``ImportFrom`` in ``module`` reads from (relative imports resolved)."""
    if not node.level:
        return node.module
    parts = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 > len(parts):
        return None
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _top_level(tree: ast.Module) -> Iterable[ast.stmt]:
    """The statements of the module body, also inside top-level ``if``/``try``/``with`` blocks."""
    todo = list(tree.body)
    while todo:
        node = todo.pop(0)
        yield node
        if isinstance(node, (ast.If, ast.Try, ast.With)) or type(node).__name__ == "TryStar":
            for name in ("body", "orelse", "finalbody"):
                todo += getattr(node, name, [])
            for handler in getattr(node, "handlers", []):
                todo += handler.body


def _plan(sources: dict[str, tuple[str, bool]], names: set[str]) -> _Plan:
    """Hidden names per module: the chosen functions defined at a module's top level, then (to a fixed point) the
    names a module imports at its top level from a module where they are hidden. ``sources``: module -> (source,
    is_package)."""
    plan = _Plan(modules=set(sources))
    trees = {m: ast.parse(text) for m, (text, _) in sources.items()}
    for module, tree in trees.items():
        if _unchanged(module):
            continue
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name in names}
        if defined:
            plan.hidden[module] = defined
    changed = True
    while changed:
        changed = False
        for module, tree in trees.items():
            if _unchanged(module):
                continue
            for node in _top_level(tree):
                if not isinstance(node, ast.ImportFrom):
                    continue
                base = _import_base(node, module, sources[module][1])
                for alias in node.names:
                    bound = alias.asname or alias.name
                    if plan.is_hidden(base, alias.name) and bound not in plan.hidden.get(module, set()):
                        plan.hidden.setdefault(module, set()).add(bound)
                        changed = True
    return plan


# --- rewriting one module ---------------------------------------------------------------------------------------
def _module_bindings(tree: ast.Module, module: str, is_package: bool, plan: _Plan) -> dict[str, str]:
    """Local names bound to a course module anywhere in ``tree`` (``from utils import tour`` -> ``tour``,
    ``import utils.sae as s`` -> ``s``, ``import utils.tour`` -> ``utils``). A name also bound to something else is
    left out (it cannot be resolved without scopes)."""
    bound: dict[str, str] = {}
    other: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    (bound.__setitem__(alias.asname, alias.name) if alias.name in plan.modules else other.add(alias.asname))
                else:
                    top = alias.name.split(".")[0]
                    (bound.__setitem__(top, top) if top in plan.modules else other.add(top))
        elif isinstance(node, ast.ImportFrom):
            base = _import_base(node, module, is_package)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                local = alias.asname or alias.name
                (bound.__setitem__(local, target) if target in plan.modules else other.add(local))
    return {name: target for name, target in bound.items() if name not in other}


def _resolve(node: ast.expr, bindings: dict[str, str], plan: _Plan) -> str | None:
    """The course module an expression such as ``tour`` or ``utils.steering.judges`` stands for, or None."""
    if isinstance(node, ast.Name):
        return bindings.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, bindings, plan)
        if base is not None and f"{base}.{node.attr}" in plan.modules:
            return f"{base}.{node.attr}"
    return None


class _Rewrite(ast.NodeVisitor):
    """Collects the edits for one module as (start, end, text) byte spans of its source: the rewrite is done in
    place, so comments, layout and line numbers stay those of the course's file."""

    def __init__(self, source: bytes, module: str, is_package: bool, plan: _Plan, renamed: set[str],
                 bindings: dict[str, str], sealed: bool = False) -> None:
        self.module, self.is_package, self.plan = module, is_package, plan
        self.sealed = sealed  # cut hidden definitions out instead of renaming them
        self.cut: list[str] = []
        self.renamed = renamed  # names renamed to PREFIX + name throughout the module
        self.bindings = bindings
        self.source = source
        self.starts = [0]
        for line in source.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))
        self.edits: list[tuple[int, int, str]] = []
        self.scopes: list[str] = []  # "function" / "class" for each enclosing definition
        self.conflicts: list[str] = []

    def _at(self, lineno: int, col: int) -> int:
        return self.starts[lineno - 1] + col

    def _edit(self, start: int, end: int, text: str, original: str) -> None:
        if self.source[start:end].decode("utf-8", "replace") != original:  # positions we cannot trust: stop
            raise BuildError(f"{self.module}: expected {original!r} at byte {start}, found "
                             f"{self.source[start:end][:40]!r}")
        self.edits.append((start, end, text))

    def _scoped(self, node: ast.AST) -> None:
        name = getattr(node, "name", None)
        in_class = bool(self.scopes) and self.scopes[-1] == "class"  # a method is an attribute: no name to follow
        if name in self.renamed and not in_class:
            if self.sealed and not self.scopes and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                start, end = self._at(first, 0), self.starts[node.end_lineno]
                lines = node.end_lineno - first + 1
                text = f"# `{name}`: the course's implementation is not in this graded copy\n" + "\n" * (lines - 1)
                self._edit(start, end, text, self.source[start:end].decode("utf-8", "replace"))
                self.cut.append(name)
                return  # nothing inside it is kept, so nothing inside it is rewritten
            if not self.scopes and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                line_start = self._at(node.lineno, 0)
                line = self.source[line_start:self.starts[node.lineno]]
                pattern = re.compile(rb"(?:async\s+)?def\s+(" + re.escape(name.encode()) + rb")\b")
                match = pattern.search(line, node.col_offset)
                if match is None:
                    raise BuildError(f"{self.module}: cannot find `def {name}` on line {node.lineno}")
                self._edit(line_start + match.start(1), line_start + match.end(1), PREFIX + name, name)
            else:
                self.conflicts.append(f"{type(node).__name__} `{name}` (line {node.lineno})")
        self.scopes.append("class" if isinstance(node, ast.ClassDef) else "function")
        try:
            self.generic_visit(node)
        finally:
            self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _scoped

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.renamed:
            self._edit(self._at(node.lineno, node.col_offset), self._at(node.end_lineno, node.end_col_offset),
                       PREFIX + node.id, node.id)

    def visit_arg(self, node: ast.arg) -> None:
        if node.arg in self.renamed:
            self.conflicts.append(f"parameter `{node.arg}` (line {node.lineno})")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        for name in set(node.names) & self.renamed:
            start, end = self._at(node.lineno, node.col_offset), self._at(node.end_lineno, node.end_col_offset)
            for match in re.finditer(rb"\b" + re.escape(name.encode()) + rb"\b", self.source[start:end]):
                self._edit(start + match.start(), start + match.end(), PREFIX + name, name)

    visit_Nonlocal = visit_Global

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.generic_visit(node)
        if self.plan.is_hidden(_resolve(node.value, self.bindings, self.plan), node.attr):
            end = self._at(node.end_lineno, node.end_col_offset)
            self._edit(end - len(node.attr.encode()), end, PREFIX + node.attr, node.attr)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = _import_base(node, self.module, self.is_package)
        for alias in node.names:
            if self.plan.is_hidden(base, alias.name):
                local = alias.asname or alias.name
                if local in self.renamed:  # a top-level binding: the module uses PREFIX + local throughout
                    local = PREFIX + local
                text = PREFIX + alias.name + ("" if local == PREFIX + alias.name else f" as {local}")
                start, end = self._at(alias.lineno, alias.col_offset), self._at(alias.end_lineno, alias.end_col_offset)
                written = self.source[start:end].decode("utf-8", "replace")
                self._edit(start, end, text, written if written.split()[0] == alias.name else alias.name)

    def rewritten(self) -> str:
        out, position = [], 0
        for start, end, text in sorted(set(self.edits)):
            if start < position:
                raise BuildError(f"{self.module}: overlapping edits at byte {start}")
            out += [self.source[position:start], text.encode()]
            position = end
        out.append(self.source[position:])
        return b"".join(out).decode("utf-8")


def _rewrite(source: str, module: str, is_package: bool, plan: _Plan, sealed: bool = False) -> tuple[str, list[str]]:
    """``source`` of ``module`` rewritten for the build (see the module docstring); returns (source, the module's
    public names that became stubs). The source is returned unchanged when nothing in it needs rewriting. With
    ``sealed`` the hidden definitions are cut out and ``_reference_<name>`` is the learner's own (:func:`_yours`)."""
    tree = ast.parse(source)
    stubs = sorted(plan.hidden.get(module, set())) if not _unchanged(module) else []
    renamed = set(stubs)
    if _unchanged(module):  # top-level imports of hidden functions: renamed in the module, no stub
        for node in _top_level(tree):
            if isinstance(node, ast.ImportFrom):
                base = _import_base(node, module, is_package)
                renamed |= {a.asname or a.name for a in node.names if plan.is_hidden(base, a.name)}
    rewrite = _Rewrite(source.encode("utf-8"), module, is_package, plan, renamed,
                       _module_bindings(tree, module, is_package, plan), sealed)
    rewrite.visit(tree)
    if rewrite.conflicts:
        raise BuildError(f"{module}: cannot hide {sorted(renamed)}: {', '.join(rewrite.conflicts)} has the same name")
    if not rewrite.edits and not stubs:
        return source, []
    text = rewrite.rewritten()
    if stubs:
        text = text.rstrip("\n") + "\n" + STUB + (SEALED_STUB if rewrite.cut else "")
        text += "".join(f"\n{PREFIX}{n} = _yours({n!r})" for n in rewrite.cut)
        text += "".join(f"\n{n} = _unavailable({n!r})" for n in stubs) + "\n"
    return text, stubs


def hide_references(source: str, names: set[str]) -> tuple[str, list[str]]:
    """Rewrite one module's source on its own: top-level ``def name`` (for ``name`` in ``names``) becomes ``def
    _reference_name``, every use of ``name`` in the module follows it, and ``name`` becomes a stub. Returns (source,
    hidden names); the source is unchanged when the module defines none of them. (:func:`build` also rewires the
    imports between modules.)"""
    module = "utils._module"
    plan = _plan({module: (source, False)}, names)
    text, hidden = _rewrite(source, module, False, plan)
    return text, hidden


# --- the build --------------------------------------------------------------------------------------------------
def _python_sources(src: Path) -> dict[Path, str]:
    out = {}
    for directory, subdirs, files in os.walk(src):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS)
        for name in sorted(files):
            if name.endswith(".py"):
                path = Path(directory) / name
                out[path.relative_to(src)] = path.read_text(encoding="utf-8")
    return out


def _sealed_replacement(rel: Path) -> str | None:
    """In a sealed build: what replaces the file ``rel`` of ``utils/`` (its text), ``""`` to leave it out, or None
    to rewrite it as usual. A chapter's check module becomes :data:`CHECKS_STUB`; of ``utils/grade`` only
    :data:`SEALED_GRADE_MODULES` stay."""
    parts = rel.parts
    if len(parts) == 2 and parts[0] == "checks" and re.fullmatch(r"ch\d+\.py", parts[1]):
        return CHECKS_STUB.format(chapter=parts[1][2:-3])
    if len(parts) >= 2 and parts[0] == "grade" and (len(parts) > 2 or parts[1] not in SEALED_GRADE_MODULES):
        return ""
    return None


def build(dest: Path, names: set[str], source_root: Path = REPO_ROOT, *, copy: bool = False,
          top_level: Sequence[str] | None = None, sealed: bool = False) -> list[str]:
    """Write ``dest/utils``: a copy of ``source_root/utils`` with the references of ``names`` hidden (see the module
    docstring). ``utils/data`` and the repository's top-level entries (``top_level``, default: all but ``LEFT_OUT``)
    are linked (directories) or copied (files, and everything when ``copy``). Returns every public name that became a stub, as ``module.name``
    (re-exports included: ``utils.steering.clamp_hook`` beside ``utils.steering.hooks.clamp_hook``). ``sealed``: the
    graded kernel's build, with no reference implementation in it (see the module docstring)."""
    dest = Path(dest)
    src = source_root / "utils"
    out = dest / "utils"
    python = _python_sources(src)
    sources = {_module_name(rel): (text, rel.name == "__init__.py") for rel, text in python.items()}
    plan = _plan(sources, set(names))
    hidden: list[str] = []
    for directory, subdirs, files in os.walk(src):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS)
        rel = Path(directory).relative_to(src)
        (out / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(files):
            if not name.endswith(".py"):
                if not name.endswith(".pyc") and not (sealed and rel.parts[:1] == ("grade",)):
                    shutil.copy2(Path(directory) / name, out / rel / name)
                continue
            module = _module_name(rel / name)
            replacement = _sealed_replacement(rel / name) if sealed else None
            if replacement is not None:
                if replacement:
                    (out / rel / name).write_text(replacement, encoding="utf-8")
                continue
            text, done = _rewrite(python[rel / name], module, name == "__init__.py", plan, sealed)
            hidden += [f"{module}.{n}" for n in done]
            (out / rel / name).write_text(text, encoding="utf-8")
    if (src / "data").is_dir():
        if copy:
            shutil.copytree(src / "data", out / "data", ignore=shutil.ignore_patterns(*DATA_IGNORED))
        else:
            (out / "data").symlink_to((src / "data").resolve(), target_is_directory=True)
    entries = [source_root / n for n in top_level] if top_level is not None else \
        [e for e in sorted(source_root.iterdir()) if e.name not in LEFT_OUT]
    for entry in entries:  # environment.yml, pyproject.toml, binder/, ...: read by some chapters
        target = dest / entry.name
        if not entry.exists() or target.exists() or target.is_symlink():
            continue
        if entry.is_file():  # small files are copied: a link would point into the checkout the sandbox hides
            shutil.copy2(entry, target)
        elif not copy:
            target.symlink_to(entry.resolve(), target_is_directory=True)
        elif entry.is_dir():
            shutil.copytree(entry, target, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
        else:
            shutil.copy2(entry, target)
    return hidden


# --- what a notebook still reaches ------------------------------------------------------------------------------
def hidden_uses(cells: Sequence[str], hidden: Iterable[str], source_root: Path = REPO_ROOT) -> list[tuple[int, str]]:
    """(cell index, ``module.name``) for each code cell that imports or names, through a course module, a function
    in ``hidden`` (as :func:`build` returns them): in the build such a cell raises ``ReferenceUnavailable``."""
    plan = _Plan(modules={_module_name(rel) for rel in _python_sources(source_root / "utils")})
    for item in hidden:
        module, name = item.rsplit(".", 1)
        plan.hidden.setdefault(module, set()).add(name)
    trees: list[ast.Module | None] = []
    for cell in cells:  # IPython magics and shell lines are not Python
        text = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell.splitlines())
        try:
            trees.append(ast.parse(text))
        except SyntaxError:
            trees.append(None)
    bindings: dict[str, str] = {}
    for tree in trees:  # names bound to course modules in any cell (the notebook's one namespace)
        if tree is not None:
            bindings.update(_module_bindings(tree, "__main__", False, plan))
    found: list[tuple[int, str]] = []
    for index, tree in enumerate(trees):
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.ImportFrom) and not node.level:
                found += [(index, f"{node.module}.{a.name}") for a in node.names if plan.is_hidden(node.module, a.name)]
            elif isinstance(node, ast.Attribute):
                module = _resolve(node.value, bindings, plan)
                if plan.is_hidden(module, node.attr):
                    found.append((index, f"{module}.{node.attr}"))
    return sorted(set(found))


# --- the handout ------------------------------------------------------------------------------------------------
def chapter_notebooks(chapters: Sequence[str], source_root: Path = REPO_ROOT) -> dict[str, Path]:
    """chapter -> ``chapters/NN_*.ipynb``; raises ``ValueError`` for a chapter without a notebook."""
    out = {}
    for chapter in chapters:
        found = sorted((source_root / "chapters").glob(f"{chapter}_*.ipynb"))
        if len(found) != 1:
            raise ValueError(f"chapter {chapter}: expected one chapters/{chapter}_*.ipynb, found {len(found)}")
        out[chapter] = found[0]
    return out


def all_chapters(source_root: Path = REPO_ROOT) -> list[str]:
    return sorted(p.name[:2] for p in (source_root / "chapters").glob("[0-9][0-9]_*.ipynb"))


def handout(out: Path, chapters: Sequence[str], source_root: Path = REPO_ROOT) -> tuple[list[str], list[str]]:
    """Write the student handout for ``chapters`` into ``out`` (which must not exist or be empty); returns (hidden
    functions as ``module.name``, warnings: notebook cells that name a hidden function)."""
    from utils.checks import exercises

    out = Path(out)
    if out.is_symlink() or (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        raise FileExistsError(f"{out} exists and is not empty: the handout is written only into a new or empty folder "
                              "(nothing of yours is overwritten); choose another --out")
    notebooks = chapter_notebooks(chapters, source_root)
    names = set()
    for chapter in chapters:
        try:
            names |= {e.name for e in exercises(chapter)}
        except ModuleNotFoundError:  # a chapter without checks has nothing to hide
            pass
    out.mkdir(parents=True, exist_ok=True)
    try:
        hidden = build(out, names, source_root, copy=True, top_level=HANDOUT_FILES)
        (out / "chapters").mkdir()
        for notebook in notebooks.values():
            shutil.copy2(notebook, out / "chapters" / notebook.name)
    except BaseException:  # the folder was empty: leave it so, not half written
        for entry in out.iterdir():
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        raise
    warnings = []
    for notebook in notebooks.values():
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        sources = ["".join(c["source"]) if c["cell_type"] == "code" else "" for c in cells]
        for index, name in hidden_uses(sources, hidden, source_root):
            warnings.append(f"chapters/{notebook.name} cell {index} uses {name}, which is hidden in this build: "
                            "that cell raises ReferenceUnavailable")
    return hidden, warnings


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m utils.grade.student_build",
        description="Write a student handout: the chapters' notebooks and the course files, with the reference "
                    "implementations of the chosen chapters' exercises not callable by their names (the in-notebook "
                    "checks still work).")
    parser.add_argument("--out", required=True, type=Path, help="a new or empty folder for the handout")
    parser.add_argument("--chapter", action="append", metavar="NN",
                        help="a chapter to hand out (repeat for several; default: every chapter)")
    args = parser.parse_args(argv)
    chapters = sorted(set(args.chapter)) if args.chapter else all_chapters()
    try:
        hidden, warnings = handout(args.out, chapters)
    except (FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"hid {len(hidden)} reference implementations (chapters {', '.join(chapters)}):")
    for name in hidden:
        print(f"  {name}")
    for warning in warnings:
        print(f"warning: {warning}")
    data = args.out / "utils" / "data"
    print(f"handout written to {args.out.resolve()} ({_size(args.out) / 1e6:.0f} MB, of which utils/data "
          f"{_size(data) / 1e6:.0f} MB): chapters/ holds the student notebooks; learners install with "
          "`make lab` (or on Binder) as with the course itself")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
