"""Every shipped notebook is valid nbformat: JupyterLab otherwise prints "Notebook JSON is invalid" with a dump of the
cell each time a learner opens it (the reference notebooks once carried ``"outputs": []`` on markdown cells)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p for folder in ("chapters", "solutions", "reference") for p in (ROOT / folder).glob("*.ipynb"))


def test_every_folder_ships_notebooks():
    assert {p.parent.name for p in NOTEBOOKS} == {"chapters", "solutions", "reference"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.name}" for p in NOTEBOOKS])
def test_notebook_validates(path):
    nbformat.validate(nbformat.read(path, as_version=4))


def test_lean_keeps_markdown_cells_without_outputs():
    from utils.reference import lean

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell("1 + 1")])
    nbformat.validate(nbformat.from_dict(lean(nbformat.from_dict(nb), built_from="test")))
