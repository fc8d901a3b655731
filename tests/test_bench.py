"""utils.bench measures what it claims: a notebook that holds ~200 MB for a second reads as such.

Fast (a couple of tiny kernels and subprocesses); the real notebooks' timings are never asserted
here: the machine is shared and noisy, so ``make bench`` reports them instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from utils import bench

ALLOC_MB = 200


def _notebook(tmp_path: Path, name: str, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def allocating_run(tmp_path_factory: pytest.TempPathFactory) -> bench.NotebookResult:
    tmp = tmp_path_factory.mktemp("bench")
    path = _notebook(
        tmp,
        "alloc.ipynb",
        "import time",
        # bytes * n writes every byte, so the pages are really resident (a bare bytearray(n) is not)
        f"block = b'\\x01' * ({ALLOC_MB} * 10**6)\ntime.sleep(1.0)",
        "del block",
    )
    return bench.run_notebook(path, env=bench.thread_env(1))


def test_peak_rss_sees_the_allocation(allocating_run: bench.NotebookResult) -> None:
    assert allocating_run.ok, allocating_run.error
    # a bare kernel is ~50-100 MB, so the peak must exceed the block itself but not by absurd amounts
    assert ALLOC_MB < allocating_run.peak_rss_mb < ALLOC_MB + 400, allocating_run


def test_wall_time_covers_the_sleep(allocating_run: bench.NotebookResult) -> None:
    assert 1.0 <= allocating_run.wall_s < 60, allocating_run


def test_a_failing_notebook_is_reported_not_raised(tmp_path: Path) -> None:
    path = _notebook(tmp_path, "broken.ipynb", "x = 1", "raise ValueError('boom')", "never = True")
    result = bench.run_notebook(path)
    assert not result.ok
    assert result.error is not None and "cell 1" in result.error and "ValueError: boom" in result.error


def test_probe_times_each_stage_and_reads_memory() -> None:
    stages = [("alloc", "b = b'\\x01' * (150 * 10**6); time.sleep(0.5)"), ("free", "del b")]
    result = bench.probe("import time", stages)
    assert result.ok, result.error
    alloc, free = result.stages
    assert alloc.name == "alloc" and alloc.seconds >= 0.5
    assert 150 < alloc.rss_mb <= result.peak_rss_mb
    assert free.rss_mb < alloc.rss_mb - 100  # the block was returned to the OS
    assert bench.load_rss_mb(result) == alloc.rss_mb


def test_probe_reports_a_failure() -> None:
    result = bench.probe("import no_such_module_here", [("nothing", "pass")])
    assert not result.ok and "no_such_module_here" in (result.error or "")


def test_targets_and_table() -> None:
    targets = bench.Targets()
    fine = bench.NotebookResult("solutions/00_a.ipynb", wall_s=120.0, peak_rss_mb=1200.0)
    slow = bench.NotebookResult("solutions/01_b.ipynb", wall_s=301.0, peak_rss_mb=1700.0)
    broken = bench.NotebookResult("solutions/02_c.ipynb", wall_s=3.0, peak_rss_mb=90.0, error="cell 4: NameError: x")
    assert fine.misses(targets) == [] and len(slow.misses(targets)) == 2
    load = bench.ProbeResult(
        setup_s=6.0, stages=[bench.Stage("load_model()", 1.5, 600.0), bench.Stage("first forward", 3.0, 1100.0)]
    )
    report = bench.BenchReport(threads=2, python="python", targets=targets, load=load, notebooks=[fine, slow, broken])
    table = bench.format_report(report)
    assert "solutions/00_a.ipynb" in table and "yes" in table.splitlines()[-3]
    assert "NO: wall > 300 s, RSS > 1600 MB" in table
    assert "FAILED (cell 4: NameError: x)" in table
    assert "load_model() 1.5 s -> RSS 600 MB" in table and "within targets? yes" in table


def test_cli_writes_json_and_exit_status(tmp_path: Path) -> None:
    ok = _notebook(tmp_path, "ok.ipynb", "x = 1")
    out = tmp_path / "bench.json"
    assert bench.main([str(ok), "--no-load", "--json", str(out), "--threads", "1"]) == 0
    data = json.loads(out.read_text())
    assert data["threads"] == 1 and data["load"] is None
    assert data["notebooks"][0]["within_targets"] is True and data["notebooks"][0]["error"] is None
    broken = _notebook(tmp_path, "broken.ipynb", "1/0")
    assert bench.main([str(broken), "--no-load", "--threads", "1"]) == 1


def test_available_cpus_is_positive() -> None:
    assert bench.available_cpus() >= 1


def test_reference_run_saves_a_lean_stamped_notebook(tmp_path: Path) -> None:
    """--reference keeps every output, plotly as JSON only, widget state, per-cell seconds and the source digest;
    a failing notebook is not written."""
    from utils.reference import PLOTLY_MIME, source_digest

    path = _notebook(
        tmp_path, "fig.ipynb",
        "import time; time.sleep(1.2); print('hello')",
        "import plotly.express as px\npx.bar(x=['a', 'b'], y=[1, 2])",
        "import ipywidgets as w\nw.IntSlider(value=7)",
        "from tqdm import tqdm\nfor _ in tqdm(range(3), desc='bar'): pass\nprint('after')",
        "from tqdm.notebook import tqdm as wbar\nfor _ in wbar(range(3)): pass",
    )
    out = tmp_path / "ref" / "fig.ipynb"
    env = {**bench.thread_env(1), "PLOTLY_RENDERER": "plotly_mimetype"}
    result = bench.run_notebook(path, env=env, save_to=out)
    assert result.ok, result.error
    nb = json.loads(out.read_text())
    first, fig, slider, bar, widget_bar = nb["cells"]
    assert widget_bar["outputs"] == []  # a progress-bar widget is dropped, not frozen
    assert [o["output_type"] for o in bar["outputs"]] == ["stream"] and "".join(bar["outputs"][0]["text"]) == "after\n"
    assert "".join(first["outputs"][0]["text"]) == "hello\n" and first["metadata"]["course"]["seconds"] >= 1.2
    assert "execution" not in first["metadata"]
    (figure,) = [o for o in fig["outputs"] if o.get("data")]
    assert PLOTLY_MIME in figure["data"] and "text/html" not in figure["data"]
    (view,) = [o for o in slider["outputs"] if o.get("data")]  # a static snapshot, readable without a kernel
    assert "application/vnd.jupyter.widget-view+json" not in view["data"] and "widgets" not in nb["metadata"]
    snapshot = "".join(view["data"]["text/html"])
    assert ">7</code>" in snapshot and "run the notebook to use it" in snapshot
    assert nb["metadata"]["course"]["reference"]["built_from"] == source_digest(json.loads(path.read_text()))
    assert json.loads(path.read_text())["cells"][0]["outputs"] == []  # the source is never touched

    broken = _notebook(tmp_path, "broken.ipynb", "raise ValueError('boom')")
    assert not bench.run_notebook(broken, save_to=tmp_path / "ref" / "broken.ipynb").ok
    assert not (tmp_path / "ref" / "broken.ipynb").exists()
