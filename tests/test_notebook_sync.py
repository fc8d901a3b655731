"""One source per notebook: the generated notebooks equal what their sources build, and the builder
turns solution regions into stubs correctly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from utils import notebook_build as nbb


def test_committed_notebooks_match_their_sources(repo_root):
    differ = nbb.build_all(repo_root, check=True)
    assert not differ, f"run `make notebooks`; these differ from their sources: {differ}"


def test_every_source_has_both_notebooks_and_no_outputs(repo_root):
    sources = nbb.sources(repo_root)
    assert sources, "no notebook sources found in solutions/"
    for source in sources:
        for path in nbb.targets(source, repo_root):
            nb = json.loads(path.read_text())
            assert nb["metadata"]["kernelspec"]["name"] == "python3"
            for cell in nb["cells"]:
                if cell["cell_type"] == "code":
                    assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path} has outputs"


def test_student_notebooks_stub_every_solution_and_leak_none(repo_root):
    for source in nbb.sources(repo_root):
        solution_path, student_path = nbb.targets(source, repo_root)
        student = json.loads(student_path.read_text())
        solution = json.loads(solution_path.read_text())
        text = "".join("".join(c["source"]) for c in student["cells"])
        n = student["metadata"]["course"]["exercises"]
        assert n >= 1 and text.count("raise NotImplementedError(") == n
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text
        assert "BEGIN SOLUTION" not in "".join("".join(c["source"]) for c in solution["cells"])
        assert student["metadata"]["course"]["variant"] == "student"


SOURCE = '''# %% [markdown]
# # Title
# Prose.

# %%
def double(x):
    """Doc."""
    # BEGIN SOLUTION
    y = x * 2
    return y
    # END SOLUTION


# %%
class Thing:
    def go(self):
        # BEGIN SOLUTION
        return 1
        # END SOLUTION
'''


def _build(tmp_path: Path, text: str) -> tuple[dict, dict]:
    source = tmp_path / "07_demo.py"
    source.write_text(text)
    return nbb.build(source)


def test_builder_replaces_regions_with_named_stubs(tmp_path):
    solution, student = _build(tmp_path, SOURCE)
    assert [c.cell_type for c in student.cells] == ["markdown", "code", "code"]
    assert student.cells[0].source == "# Title\nProse."
    assert student.cells[1].source == (
        'def double(x):\n    """Doc."""\n    raise NotImplementedError("Exercise 07.1 `double`: replace this line '
        'with your solution (hints are in the cell above).")'
    )
    assert "Exercise 07.2 `go`" in student.cells[2].source
    assert solution.cells[1].source == 'def double(x):\n    """Doc."""\n    y = x * 2\n    return y'
    assert solution.metadata["course"] == {"chapter": "07", "variant": "solution", "source": "07_demo.py", "exercises": 2}
    assert solution.cells[1].id == student.cells[1].id == "c07-001"


@pytest.mark.parametrize(
    "text, message",
    [
        ("# %%\nx = 1\n    # BEGIN SOLUTION\n", "never closed"),
        ("# %%\n# END SOLUTION\n", "without BEGIN"),
        ("# %%\n# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "nested"),
        ("x = 1\n# %%\n", "before the first"),
        ("# %% [markdown]\nnot a comment\n", "must start with '#'"),
    ],
)
def test_builder_rejects_malformed_sources_with_the_line(tmp_path, text, message):
    with pytest.raises(nbb.SourceError, match=message) as info:
        _build(tmp_path, text)
    assert "07_demo.py:" in str(info.value)


def test_check_mode_reports_drift_without_writing(tmp_path):
    (tmp_path / "solutions").mkdir()
    (tmp_path / "chapters").mkdir()
    (tmp_path / "solutions" / "07_demo.py").write_text(SOURCE)
    assert len(nbb.build_all(tmp_path, check=True)) == 2
    assert not (tmp_path / "chapters" / "07_demo.ipynb").exists()
    assert len(nbb.build_all(tmp_path)) == 2
    assert nbb.build_all(tmp_path, check=True) == []
    (tmp_path / "chapters" / "07_demo.ipynb").write_text("edited by hand")
    assert nbb.build_all(tmp_path, check=True) == [tmp_path / "chapters" / "07_demo.ipynb"]
