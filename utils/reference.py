"""Reference outputs: the solution notebooks run end to end, kept lean, in ``reference/``.

``make reference`` (``python -m utils.bench --no-load --reference reference``) executes every
``solutions/NN_*.ipynb`` in a fresh kernel, as ``make bench`` does, and writes the executed copy to
``reference/NN_*.ipynb``. A learner opens one next to their own copy to compare a plot or a number
without running anything; GitHub renders them too.

Lean, so that the folder stays small and diffs stay readable:

* plotly figures are kept as their JSON (``application/vnd.plotly.v1+json``, which JupyterLab's
  bundled plotly extension draws offline) and never as a ``text/html`` copy carrying plotly.js;
* a widget becomes a static HTML snapshot of its last state (:func:`widget_snapshot`: the feature
  browser's controls and dashboard, the steering panel's answers), so it reads the same in JupyterLab
  with or without a kernel, on GitHub and in nbviewer; progress-bar widgets are dropped;
* the per-cell execution timestamps become one number, ``metadata.course.seconds``;
* text progress bars (tqdm lines on stderr) are dropped: frozen at whatever they showed when saved, they
  would only mislead a reader;
* each notebook's metadata records ``course.reference.built_from``: :func:`source_digest` of the
  solution notebook it was run from. ``tests/test_reference.py`` fails when the digest no longer
  matches the current solution notebook ("run ``make reference``").
"""

from __future__ import annotations

import hashlib
import html
import sys
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
SCRIPT_NOTE = ('<p style="color:#666;font-size:12px"><em>An interactive circuitsvis view: JupyterLab draws it when '
               "you run the notebook (it does not run scripts in outputs saved in a file).</em></p>")
REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reference"


def _text(cell: dict[str, Any]) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def source_digest(nb: dict[str, Any], code_only: bool = False) -> str:
    """sha256 over the notebook's cells as ``(cell_type, source)`` pairs, in order: what it runs and says,
    not its outputs, ids or metadata. ``code_only``: the code cells alone (what the outputs depend on)."""
    cells = [[c["cell_type"], _text(c)] for c in nb["cells"] if not code_only or c["cell_type"] == "code"]
    return hashlib.sha256(json.dumps(cells, ensure_ascii=False).encode("utf-8")).hexdigest()


def sync_prose(solution: Path, folder: Path = REFERENCE_DIR) -> str:
    """Bring a reference up to date with its solution when only the prose changed: same code cells in the same
    order, so the outputs still hold. Copies the markdown cells and restamps. Returns "current", "updated" or
    "rerun" (the code changed, or the cell layout did: ``make reference`` must run it again)."""
    ref_path = reference_path(solution, folder)
    current = json.loads(solution.read_text(encoding="utf-8"))
    if not ref_path.is_file():
        return "rerun"
    import nbformat

    ref = nbformat.read(ref_path, as_version=4)
    if ref["metadata"]["course"]["reference"]["built_from"] == source_digest(current):
        return "current"
    kinds = [c["cell_type"] for c in current["cells"]]
    if kinds != [c["cell_type"] for c in ref["cells"]] or source_digest(current, True) != source_digest(ref, True):
        return "rerun"
    for mine, theirs in zip(ref["cells"], current["cells"]):
        if mine["cell_type"] == "markdown":
            mine["source"] = theirs["source"]
    ref["metadata"]["course"]["reference"]["built_from"] = source_digest(current)
    nbformat.write(ref, ref_path)
    return "updated"


_PROGRESS_LINE = re.compile(r"^[^\n]*\d+%\|[^\n]*\|[^\n]*$")


def is_progress_bar(output: dict[str, Any]) -> bool:
    """A stderr stream output whose every non-empty line (``\\r`` or ``\\n`` separated) is a tqdm bar, or that
    is blank (what a finished bar leaves once the carriage returns are applied)."""
    if output.get("output_type") != "stream" or output.get("name") != "stderr":
        return False
    text = output["text"] if isinstance(output["text"], str) else "".join(output["text"])
    lines = [line for line in re.split(r"[\r\n]", text) if line.strip()]
    return all(_PROGRESS_LINE.match(line) for line in lines)


WIDGET_NOTE = ('<p style="color:#666;font-size:12px"><em>A snapshot of an interactive widget (reference output): '
               "run the notebook to use it.</em></p>")
_TEXT_INPUTS = {"TextModel", "TextareaModel", "IntTextModel", "FloatTextModel", "BoundedIntTextModel",
                "BoundedFloatTextModel", "IntSliderModel", "FloatSliderModel", "CheckboxModel", "ToggleButtonModel"}
_PICKERS = {"DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel"}


def _children(state: dict[str, Any]) -> list[str]:
    return [c.removeprefix("IPY_MODEL_") for c in state.get("children", []) if isinstance(c, str)]


def is_progress_widget(models: dict[str, Any], model_id: str) -> bool:
    """tqdm's notebook bar: a box holding a progress model (and labels)."""
    model = models.get(model_id, {})
    kids = [models.get(c, {}).get("model_name") for c in _children(model.get("state", {}))]
    return model.get("model_name", "").endswith("ProgressModel") or (
        model.get("model_name") == "HBoxModel" and any(str(k).endswith("ProgressModel") for k in kids))


def widget_snapshot(models: dict[str, Any], model_id: str, depth: int = 0) -> str:
    """Static HTML for one widget from its saved state (``models``: id -> {"model_name", "state"}).

    Boxes lay out their children; HTML and Label widgets show their value; inputs show their description
    and value as text; dropdowns their selected label; buttons their caption (greyed); output widgets their
    HTML or text outputs. Anything else is named in brackets."""
    model = models.get(model_id)
    if model is None or depth > 20:
        return ""
    name, state = model.get("model_name", ""), model.get("state", {})
    label = html.escape(str(state.get("description", "")))
    if name in ("VBoxModel", "BoxModel", "GridBoxModel", "HBoxModel", "AccordionModel", "TabModel"):
        direction = "row" if name == "HBoxModel" else "column"
        inner = "".join(f"<div>{widget_snapshot(models, c, depth + 1)}</div>" for c in _children(state))
        return f'<div style="display:flex;flex-direction:{direction};gap:8px;flex-wrap:wrap">{inner}</div>'
    if name in ("HTMLModel", "HTMLMathModel"):
        return (f"<b>{label}</b> " if label else "") + str(state.get("value", ""))
    if name == "LabelModel":
        return html.escape(str(state.get("value", "")))
    if name in _TEXT_INPUTS:
        value = state.get("value", "")
        shown = html.escape(str(value)) if value != "" else f'<span style="color:#999">{html.escape(str(state.get("placeholder", "")))}</span>'
        return f'<span style="color:#555">{label}</span> <code style="border:1px solid #ccc;padding:1px 6px">{shown}</code>'
    if name in _PICKERS:
        labels, index = state.get("_options_labels", []), state.get("index")
        chosen = labels[index] if isinstance(index, int) and 0 <= index < len(labels) else ""
        return f'<span style="color:#555">{label}</span> <code style="border:1px solid #ccc;padding:1px 6px">{html.escape(str(chosen))}</code>'
    if name == "ButtonModel":
        return f'<span style="border:1px solid #ccc;padding:2px 8px;color:#888">{label}</span>'
    if name == "OutputModel":
        parts = []
        for output in state.get("outputs", []):
            data = output.get("data", {})
            if "text/html" in data:
                parts.append("".join(data["text/html"]))
            elif "text/plain" in data or "text" in output:
                text = "".join(data.get("text/plain", output.get("text", "")))
                parts.append(f"<pre>{html.escape(text)}</pre>")
        return "".join(parts)
    if name.endswith(("LayoutModel", "StyleModel")):
        return ""
    return f"<em>[{html.escape(name.removesuffix('Model'))}]</em>"


def _snapshot_widgets(nb: dict[str, Any]) -> None:
    """Replace widget outputs by static snapshots (progress bars by nothing) and drop the saved state."""
    saved = nb.get("metadata", {}).pop("widgets", {})
    models = saved.get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":  # only code cells have outputs (nbformat rejects the key elsewhere)
            continue
        kept = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_MIME)
            if view is None:
                kept.append(output)
                continue
            model_id = view.get("model_id", "")
            if is_progress_widget(models, model_id):
                continue
            snapshot = widget_snapshot(models, model_id)
            output["data"] = {"text/html": snapshot + WIDGET_NOTE if snapshot else WIDGET_NOTE,
                              "text/plain": "(interactive widget: run the notebook to use it)"}
            kept.append(output)
        cell["outputs"] = kept


def _seconds(cell: dict[str, Any]) -> float | None:
    """Wall time of one executed cell from nbclient's ``metadata.execution`` timestamps (``None`` if absent)."""
    ex = cell.get("metadata", {}).get("execution", {})
    start, end = ex.get("iopub.execute_input"), ex.get("shell.execute_reply")
    if not (start and end):
        return None
    parse = lambda t: datetime.fromisoformat(t.replace("Z", "+00:00"))  # noqa: E731
    return round((parse(end) - parse(start)).total_seconds(), 1)


def lean(nb: dict[str, Any], built_from: str) -> dict[str, Any]:
    """Slim an executed notebook in place (see the module docstring) and stamp it; returns it."""
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        seconds = _seconds(cell)
        cell["metadata"].pop("execution", None)
        if seconds is not None:
            cell["metadata"].setdefault("course", {})["seconds"] = seconds
        cell["outputs"] = [o for o in cell.get("outputs", []) if not is_progress_bar(o)]
        for output in cell["outputs"]:
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                data.pop("text/html", None)
            html_text = "".join(data.get("text/html", ""))
            if "CircuitsVis.render" in html_text and SCRIPT_NOTE not in html_text:
                data["text/html"] = SCRIPT_NOTE + html_text
    _snapshot_widgets(nb)
    course = nb["metadata"].setdefault("course", {})
    course["variant"] = "reference"
    course["reference"] = {"built_from": built_from}
    return nb


def reference_path(solution: Path, folder: Path = REFERENCE_DIR) -> Path:
    return folder / solution.name


def slow_cells(nb: dict[str, Any], seconds: float) -> list[tuple[int, float, str]]:
    """Code cells that ran longer than ``seconds``: ``(cell index, seconds, first line)``."""
    out = []
    for index, cell in enumerate(nb["cells"]):
        took = cell.get("metadata", {}).get("course", {}).get("seconds")
        if cell["cell_type"] == "code" and took is not None and took > seconds:
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            out.append((index, took, (source.strip().splitlines() or [""])[0]))
    return out


def error_outputs(nb: dict[str, Any]) -> list[tuple[int, str]]:
    """``(cell index, "Ename: evalue")`` for every error output (a reference notebook must have none)."""
    return [(i, f"{o.get('ename')}: {o.get('evalue')}") for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
            for o in c.get("outputs", []) if o.get("output_type") == "error"]


README_START, README_END = "<!-- reference-table:start -->", "<!-- reference-table:end -->"
SLOW_CELL_S = 10.0  # cells slower than this are listed in the reference table (and should show progress)


def reference_table(folder: Path = REFERENCE_DIR) -> str:
    """The table of reference notebooks on ``docs/RESULTS.md`` (:data:`utils.readme_blocks.RESULTS_PAGE`): size, summed
    cell time, and the cells over ``SLOW_CELL_S``. Its links are relative to ``docs/``."""
    rows = ["| reference notebook | size | cells ran for | cells over 10 s |", "|---|---|---|---|"]
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        total = sum(c.get("metadata", {}).get("course", {}).get("seconds", 0.0) for c in nb["cells"])
        slow = ", ".join(f"cell {i} ({s:.0f} s)" for i, s, _ in slow_cells(nb, SLOW_CELL_S)) or "none"
        rows.append(f"| [`reference/{path.name}`](../reference/{path.name}) | {path.stat().st_size / 1000:,.0f} kB "
                    f"| {total:.0f} s | {slow} |")
    return "\n".join(rows)


USAGE = """usage: python -m utils.reference --readme | --sync-prose
  --readme      rewrite the reference table in docs/RESULTS.md from reference/
  --sync-prose  copy changed prose into the reference notebooks whose code is unchanged (no kernel needed);
                lists the ones that need `make reference` because their code changed"""


def main(argv: list[str]) -> int:
    if argv == ["--readme"]:
        from utils.readme_blocks import RESULTS_PAGE, replace_block

        replace_block(README_START, README_END, reference_table(), readme=RESULTS_PAGE)
        print(reference_table())
        return 0
    if argv == ["--sync-prose"]:
        from utils.notebook_build import sources, targets

        states = {targets(s)[0]: sync_prose(targets(s)[0]) for s in sources()}
        for path, state in states.items():
            print(f"{state:8s} {path.name}")
        stale = [p for p, state in states.items() if state == "rerun"]
        if stale:
            print("code changed: run `python -m utils.bench --no-load --reference reference " + " ".join(
                f"solutions/{p.name}" for p in stale) + "`", file=sys.stderr)
        return 1 if stale else 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
