"""The reference outputs in reference/ are the current solution notebooks, run end to end, and lean.

They are rebuilt by ``make reference`` (about 20 minutes on 2 cores); this test only reads them, so it
fails fast and says what to run whenever a solution notebook changed since its reference was built.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from utils import notebook_build
from utils.reference import PLOTLY_MIME, WIDGET_MIME, error_outputs, reference_path, source_digest

SOLUTIONS = [notebook_build.targets(s)[0] for s in notebook_build.sources()]
MAX_MB = {"02_finding_features.ipynb": 3.0}  # chapter 02 carries one 1.3 MB circuitsvis bundle on purpose
DEFAULT_MAX_MB = 1.5


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[s.stem for s in SOLUTIONS])
def test_reference_matches_the_current_solution(solution: Path) -> None:
    ref = reference_path(solution)
    assert ref.is_file(), f"{ref} is missing: run `make reference`"
    nb, current = json.loads(ref.read_text()), json.loads(solution.read_text())
    stamp = nb["metadata"]["course"]["reference"]["built_from"]
    assert stamp == source_digest(current), (
        f"{solution.name} changed since {ref} was built: run `make reference` (or "
        f"`python -m utils.bench --no-load --reference reference {solution}`) and commit the result"
    )
    assert source_digest(nb) == stamp  # nobody edited the reference's cells by hand
    assert not error_outputs(nb), error_outputs(nb)
    assert sum(bool(c.get("outputs")) for c in nb["cells"] if c["cell_type"] == "code") >= 5  # it was really run


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[s.stem for s in SOLUTIONS])
def test_reference_is_lean_and_reads_without_a_kernel(solution: Path) -> None:
    ref = reference_path(solution)
    if not ref.is_file():
        pytest.skip(f"{ref} is missing (the test above says so)")
    text = ref.read_text()
    size_mb = len(text.encode()) / 1e6
    assert size_mb <= MAX_MB.get(solution.name, DEFAULT_MAX_MB), f"{ref} is {size_mb:.2f} MB"
    nb = json.loads(text)
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            assert not (PLOTLY_MIME in data and "text/html" in data), "a plotly figure carries an HTML copy"
            assert "plotly.js" not in str(data.get("text/html", ""))[:2000], "plotly.js is inlined"
    assert "widgets" not in nb["metadata"], "widget state should have become snapshots"
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            assert WIDGET_MIME not in output.get("data", {}), "a widget output needs a kernel: snapshot it"
            # JupyterLab strips <svg> from HTML it did not produce this session: a reference opened from disk
            markup = "".join(output.get("data", {}).get("text/html", ""))
            assert "<svg" not in markup or "var CircuitsVis" in markup  # the circuitsvis bundle draws its own
    html = ["".join(o.get("data", {}).get("text/html", "")) for c in nb["cells"] for o in c.get("outputs", [])]
    assert sum(h.count("var CircuitsVis") for h in html) <= 1, "the circuitsvis bundle is inlined more than once"
    from utils.reference import SCRIPT_NOTE

    assert all(SCRIPT_NOTE in h for h in html if "CircuitsVis.render" in h), "say that the script view needs a run"


def test_results_page_table_matches_the_reference_folder() -> None:
    from utils.readme_blocks import RESULTS_PAGE, read_block
    from utils.reference import README_END, README_START, reference_table

    block = read_block(README_START, README_END, RESULTS_PAGE)
    assert block == reference_table(), "run `python -m utils.reference --readme` (make reference does)"


def test_sync_prose_updates_prose_only_changes_and_asks_for_a_rerun_otherwise(tmp_path: Path) -> None:
    from utils.reference import sync_prose

    solution = SOLUTIONS[0]
    (tmp_path / "ref").mkdir()
    ref = tmp_path / "ref" / solution.name
    ref.write_bytes(reference_path(solution).read_bytes())
    nb = json.loads(solution.read_text())
    mine = tmp_path / solution.name

    def save(notebook: dict) -> None:
        mine.write_text(json.dumps(notebook))

    save(nb)
    assert sync_prose(mine, tmp_path / "ref") == "current"
    md = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    md["source"] = "# A new title\n\nNew prose."
    save(nb)
    before = json.loads(ref.read_text())
    assert sync_prose(mine, tmp_path / "ref") == "updated"
    after = json.loads(ref.read_text())
    assert after["metadata"]["course"]["reference"]["built_from"] == source_digest(nb)
    assert [c.get("outputs") for c in after["cells"]] == [c.get("outputs") for c in before["cells"]]
    assert "".join(next(c for c in after["cells"] if c["cell_type"] == "markdown")["source"]) == md["source"]
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["source"] = "print('changed')"
    save(nb)
    assert sync_prose(mine, tmp_path / "ref") == "rerun"


# What a reader of reference/ should never see: a bare value a cell happened to end on, an object's repr, a line
# that looks like a failed check, transformers' weight-loading bar, a warning on stderr (issue 25, item 4).
STRAY = [
    (r"^(?:True|False|None|''|\"\"|\[\]|\{\})\s*$", "a bare value the cell ended on"),
    (r"<[\w.]+ (?:object )?at 0x[0-9a-f]+>", "an object's repr"),
    (r"not disabled|EXPECTED ", "a line that reads as a failed setup check"),
    (r"Loading weights|\d+/\d+ \[\d\d:\d\d", "a progress bar"),
    (r"\b\w*Warning:", "a warning"),
]


def stray_outputs(nb: dict) -> list[str]:
    """``cell N: <why>: <text>`` for each output of ``nb`` matching :data:`STRAY`."""
    import re

    found = []
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")] + [output.get("data", {}).get("text/plain", "")]
            for text in ("".join(t) if isinstance(t, list) else t for t in texts):
                for pattern, why in STRAY:
                    match = re.search(pattern, text, re.MULTILINE)
                    if match:
                        found.append(f"cell {index}: {why}: {match.group(0)!r}")
    return found


def test_stray_output_scan_finds_each_kind() -> None:
    def nb(*outputs: dict) -> dict:
        return {"cells": [{"cell_type": "code", "outputs": list(outputs)}]}

    assert stray_outputs(nb({"output_type": "execute_result", "data": {"text/plain": "True"}}))
    assert stray_outputs(nb({"output_type": "execute_result", "data": {"text/plain": "<torch._C.Generator at 0x7fa7>"}}))
    assert stray_outputs(nb({"output_type": "stream", "name": "stdout", "text": "hub access: not disabled\n"}))
    assert stray_outputs(nb({"output_type": "stream", "name": "stderr", "text": ["x.py:4: UserWarning: careful\n"]}))
    assert stray_outputs(nb({"output_type": "stream", "name": "stderr", "text": "Loading weights: 100%\n"}))
    assert not stray_outputs(nb({"output_type": "stream", "name": "stdout", "text": "torch   2.13.0  ok\nTrue positives: 4\n"}))


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[s.stem for s in SOLUTIONS])
def test_reference_shows_no_stray_output(solution: Path) -> None:
    ref = reference_path(solution)
    if not ref.is_file():
        pytest.skip(f"{ref} is missing (test_reference_matches_the_current_solution says what to run)")
    assert not stray_outputs(json.loads(ref.read_text())), stray_outputs(json.loads(ref.read_text()))
