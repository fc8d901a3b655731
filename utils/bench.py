"""Wall time and peak memory of every solution notebook, and of loading the model (``make bench``).

    python -m utils.bench                                   # solutions/NN_*.ipynb + the model load
    python -m utils.bench solutions/01_*.ipynb --json bench-results/bench.json
    python -m utils.bench --no-load --threads 1
    python -m utils.bench --no-load --reference reference     # also save the executed notebooks (make reference)

**Notebooks.** Each runs in a fresh kernel (nbclient), one after another so that each has the
machine's cores to itself. Wall time runs from kernel start to the end of the last cell (kernel
start-up included: the learner waits for it too). Peak RSS is the largest of (a) the total RSS of
the kernel process and its children, polled every 0.2 s from a background thread, and (b) the
kernel's own high-water mark (``VmHWM`` in ``/proc/<pid>/status``, Linux), which also catches
spikes between two polls.

**Model load.** After making sure the course cache is warm (``python -m utils.model
--warm-cache``), a new Python process imports torch/transformers/TransformerLens, then calls
``load_model()`` once — the "cold" first call a learner's kernel makes — then runs one short
forward pass, and reports each time with the RSS after it, and the peak RSS. The weights are
memory-mapped, so the RSS right after ``load_model()`` undercounts them; the load target is
checked against the RSS after the first forward.

**Targets** (course design): each notebook ≤ 300 s and ≤ 1600 MB peak RSS (Binder kills kernels
past 2 GB); RSS after ``load_model()`` (and its first forward) ≤ 1200 MB. MB means 10^6 bytes.

The numbers are *measured, not asserted*: the machine is shared and noisy, so a miss is reported
in the table ("NO: ...") and the exit status is non-zero only when a notebook (or the load) fails
to run at all — or, with ``--strict``, when a target is missed too.

**Reference outputs.** With ``--reference DIR`` each executed notebook is also written, lean and
stamped with the digest of its source (:mod:`utils.reference`), to ``DIR/<same name>``; plotly
figures are kept as JSON only (the kernel gets ``PLOTLY_RENDERER=plotly_mimetype``). A notebook that
fails is not written.

**Threads.** Kernels and the load probe get ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` = the CPUs this
process may actually use (its CPU affinity, capped by a cgroup CPU quota), unless ``--threads`` or
an ``OMP_NUM_THREADS`` already in the environment says otherwise; the value is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GLOB = "solutions/[0-9][0-9]_*.ipynb"
MB = 1_000_000


@dataclass(frozen=True)
class Targets:
    """Budgets from the course design (per chapter on 2 cores; Binder's limit is 2 GB)."""

    notebook_wall_s: float = 300.0
    notebook_rss_mb: float = 1600.0
    load_rss_mb: float = 1200.0


@dataclass
class NotebookResult:
    """One notebook run. ``error`` is ``None`` when every cell ran, else "cell N: Error: message"
    (N counts all cells from 0, markdown included)."""

    notebook: str
    wall_s: float
    peak_rss_mb: float
    error: str | None = None
    kernel_python: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def misses(self, targets: Targets) -> list[str]:
        """Human-readable list of the targets this run missed (empty: within targets)."""
        out = []
        if self.wall_s > targets.notebook_wall_s:
            out.append(f"wall > {targets.notebook_wall_s:.0f} s")
        if self.peak_rss_mb > targets.notebook_rss_mb:
            out.append(f"RSS > {targets.notebook_rss_mb:.0f} MB")
        return out


@dataclass
class Stage:
    """One timed statement of a probe and the process's RSS right after it."""

    name: str
    seconds: float
    rss_mb: float


@dataclass
class ProbeResult:
    """Snippets timed in a new Python process: an untimed-for-targets setup, then timed stages."""

    setup_s: float
    stages: list[Stage] = field(default_factory=list)
    peak_rss_mb: float = 0.0  # the process's high-water mark (VmHWM), or the largest stage RSS
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


@dataclass
class BenchReport:
    """Everything ``python -m utils.bench`` measured, as written to ``--json``."""

    threads: int
    python: str
    targets: Targets
    load: ProbeResult | None = None
    notebooks: list[NotebookResult] = field(default_factory=list)


# --- machine ------------------------------------------------------------------------------------


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup (v2 or v1) CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(n, math.ceil(quota))) if quota else n


def _cgroup_cpu_quota() -> float | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 else None
    except (OSError, ValueError):
        return None


def thread_env(threads: int) -> dict[str, str]:
    """A copy of the environment with the BLAS/OpenMP thread count set to ``threads``."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


# --- memory -------------------------------------------------------------------------------------


def vm_hwm_bytes(pid: int) -> int:
    """Peak resident set size of ``pid`` since it started (Linux ``VmHWM``); 0 where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        pass
    return 0


class PeakRssMonitor:
    """Track the peak RSS of a process tree (a kernel and whatever it spawns) from a thread.

    ``sample()`` may also be called directly (e.g. right after the last cell) so that a peak
    reached just before the process exits is not lost between two polls.
    """

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"rss-monitor-{pid}", daemon=True)

    def sample(self) -> int:
        """Record one sample; return the tree's current total RSS in bytes (0 once it is gone)."""
        from utils.memory import process_tree, tree_rss

        procs = process_tree(self.pid)
        if not procs:
            return 0
        total = tree_rss(procs)
        with self._lock:
            self.peak_bytes = max(self.peak_bytes, total, vm_hwm_bytes(self.pid))
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- notebooks ----------------------------------------------------------------------------------


def kernel_pid(km: object) -> int:
    """The process id of a local kernel started by ``km`` (a jupyter_client kernel manager)."""
    provisioner = getattr(km, "provisioner", None)
    pid = getattr(provisioner, "pid", None) or getattr(getattr(provisioner, "process", None), "pid", None)
    if pid is None:
        raise RuntimeError("cannot find the kernel's process id (not a local kernel?)")
    return int(pid)


def _describe(exc: BaseException, cell_index: int | None) -> str:
    where = f"cell {cell_index}: " if cell_index is not None else ""
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:  # CellExecutionError carries the kernel-side exception
        return f"{where}{ename}: {evalue}".strip()
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{where}{type(exc).__name__}: {first_line}".strip()


def run_notebook(
    path: Path | str,
    *,
    cell_timeout: float = 600.0,
    poll_interval: float = 0.2,
    env: dict[str, str] | None = None,
    save_to: Path | None = None,
) -> NotebookResult:
    """Execute ``path`` in a fresh kernel (cwd = its folder); measure wall time and peak RSS.

    Never raises for a failing notebook: the first error is returned in ``NotebookResult.error``.
    The executed notebook is discarded unless ``save_to`` is given: then, if every cell ran, it is
    written there by :func:`utils.reference.lean` (nothing is ever written next to the source).
    """
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    kernel_name = nb.metadata.get("kernelspec", {}).get("name") or "python3"
    from utils.reference import lean, source_digest

    built_from = source_digest(nb)
    client = NotebookClient(
        nb, timeout=cell_timeout, kernel_name=kernel_name, resources={"metadata": {"path": str(path.parent)}},
        record_timing=save_to is not None, store_widget_state=save_to is not None,
    )
    error: str | None = None
    kernel_python: str | None = None
    monitor: PeakRssMonitor | None = None
    t0 = time.perf_counter()
    t_end: float | None = None
    index: int | None = None
    try:
        with client.setup_kernel(env=env or dict(os.environ)):
            pid = kernel_pid(client.km)
            kernel_python = _exe(pid)
            with PeakRssMonitor(pid, poll_interval) as monitor:
                try:
                    for index, cell in enumerate(nb.cells):
                        client.execute_cell(cell, index)
                    if save_to is not None:
                        client.set_widgets_metadata()  # the widgets' last state, so they render without a kernel
                except Exception as exc:  # noqa: BLE001 - any failure is reported, the batch goes on
                    error = _describe(exc, index)
                finally:
                    t_end = time.perf_counter()
                    monitor.sample()  # the high-water mark just before the kernel is shut down
    except Exception as exc:  # noqa: BLE001 - kernel failed to start or to shut down
        error = error or _describe(exc, None)
    wall = (t_end or time.perf_counter()) - t0
    peak = monitor.peak_bytes if monitor else 0
    if save_to is not None and error is None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(lean(nb, built_from), save_to)
    return NotebookResult(_display(path), round(wall, 2), round(peak / MB, 1), error, kernel_python)


def _exe(pid: int) -> str | None:
    import psutil

    try:  # argv[0], not exe(): exe() resolves a venv's python symlink to the base interpreter
        cmdline = psutil.Process(pid).cmdline()
        return cmdline[0] if cmdline else None
    except psutil.Error:
        return None


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# --- model load ---------------------------------------------------------------------------------

# Runs in a new interpreter: exec the setup, then each stage (timed), noting RSS after each;
# prints one JSON line. Memory comes from /proc/self/status (Linux), so no extra import skews it.
_PROBE = """
import json, sys, time
setup, stages = json.loads(sys.argv[1])
def mem(key):
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:  # not Linux: the peak from getrusage (bytes on macOS), no current RSS
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if key == "VmHWM" else 0
    return 0
ns = {"__name__": "__bench_probe__"}
t0 = time.perf_counter(); exec(setup, ns); out = {"setup_s": time.perf_counter() - t0, "stages": []}
for name, code in stages:
    t0 = time.perf_counter(); exec(code, ns)
    out["stages"].append([name, time.perf_counter() - t0, mem("VmRSS")])
out["hwm"] = mem("VmHWM")
print("BENCH-PROBE " + json.dumps(out))
"""

LOAD_SETUP = "import torch, transformers, transformer_lens.model_bridge\nfrom utils.model import load_model"
# The weights are memory-mapped from the safetensors cache, so RSS right after load_model()
# undercounts them; one short forward pass pages them all in (the RSS a learner's kernel has).
LOAD_STAGES = (
    ("load_model()", "model = load_model()"),
    ("first forward", "with torch.no_grad():\n    model('The Golden Gate Bridge is')"),
)


def probe(
    setup: str, stages: Sequence[tuple[str, str]], *, env: dict[str, str] | None = None, timeout: float = 600.0
) -> ProbeResult:
    """Run ``setup`` then each ``(name, code)`` stage in a new Python process; time them, read RSS."""
    cmd = [sys.executable, "-c", _PROBE, json.dumps([setup, [list(s) for s in stages]])]
    try:
        done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return ProbeResult(0.0, error=f"timed out after {timeout:.0f} s")
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH-PROBE ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return ProbeResult(0.0, error=tail)
    data = json.loads(lines[-1].removeprefix("BENCH-PROBE "))
    result = ProbeResult(setup_s=round(data["setup_s"], 2))
    for name, seconds, rss in data["stages"]:
        result.stages.append(Stage(name, round(seconds, 2), round(rss / MB, 1)))
    result.peak_rss_mb = round(max([data["hwm"] / MB] + [s.rss_mb for s in result.stages]), 1)
    return result


def measure_load(env: dict[str, str] | None = None) -> ProbeResult:
    """Cold ``load_model()`` (first call in a new process) with the course cache already warm."""
    warm = subprocess.run(
        [sys.executable, "-m", "utils.model", "--warm-cache"], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    if warm.returncode != 0:
        tail = (warm.stderr.strip().splitlines() or ["?"])[-1]
        return ProbeResult(0.0, error=f"warming the cache failed: {tail}")
    return probe(LOAD_SETUP, LOAD_STAGES, env=env)


def load_rss_mb(load: ProbeResult) -> float:
    """The RSS compared with the load target: after load_model() and its first forward pass."""
    return max(s.rss_mb for s in load.stages) if load.stages else 0.0


# --- report -------------------------------------------------------------------------------------


def format_report(report: BenchReport) -> str:
    """The table ``python -m utils.bench`` prints."""
    t = report.targets
    lines = [
        f"threads: {report.threads} (OMP_NUM_THREADS)   python: {report.python}",
        f"targets: notebook <= {t.notebook_wall_s:.0f} s and <= {t.notebook_rss_mb:.0f} MB peak RSS; "
        f"RSS after load_model() + first forward <= {t.load_rss_mb:.0f} MB   (MB = 10^6 bytes; measured, not asserted)",
        "",
    ]
    if report.load is not None:
        load = report.load
        if load.ok:
            rss = load_rss_mb(load)
            verdict = "yes" if rss <= t.load_rss_mb else f"NO: RSS > {t.load_rss_mb:.0f} MB"
            stages = "; ".join(f"{s.name} {s.seconds:.1f} s -> RSS {s.rss_mb:.0f} MB" for s in load.stages)
            lines.append(f"model load (new process, warm cache): imports {load.setup_s:.1f} s; {stages}")
            lines.append(f"  peak RSS {load.peak_rss_mb:.0f} MB   within targets? {verdict}")
        else:
            lines.append(f"model load: FAILED: {load.error}")
        lines.append("")
    if not report.notebooks:
        lines.append("no notebooks measured")
        return "\n".join(lines)
    width = max(len("notebook"), *(len(r.notebook) for r in report.notebooks))
    lines.append(f"{'notebook':<{width}}  {'wall s':>8}  {'peak RSS MB':>11}  within targets?")
    for r in report.notebooks:
        misses = r.misses(t)
        verdict = "yes" if not misses else "NO: " + ", ".join(misses)
        if not r.ok:
            verdict = f"FAILED ({r.error})"
        lines.append(f"{r.notebook:<{width}}  {r.wall_s:>8.1f}  {r.peak_rss_mb:>11.0f}  {verdict}")
    return "\n".join(lines)


def default_notebooks() -> list[Path]:
    return sorted(REPO_ROOT.glob(DEFAULT_GLOB))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help=f"default: {DEFAULT_GLOB}")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--threads", type=int, help="OMP/MKL threads for kernels (default: the usable CPUs)")
    parser.add_argument("--cell-timeout", type=float, default=600.0, help="seconds per cell (default 600)")
    parser.add_argument("--no-load", action="store_true", help="skip the model-load measurement")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed, too")
    parser.add_argument("--reference", type=Path, metavar="DIR",
                        help="also write each executed notebook, lean, to DIR (make reference)")
    args = parser.parse_args(argv)

    env_threads = os.environ.get("OMP_NUM_THREADS", "")
    threads = args.threads or (int(env_threads) if env_threads.isdigit() else available_cpus())
    env = thread_env(threads)
    notebooks = args.notebooks or default_notebooks()
    report = BenchReport(threads=threads, python=sys.executable, targets=Targets())

    if not args.no_load:
        print("measuring the model load ...", file=sys.stderr, flush=True)
        report.load = measure_load(env)
    for nb in notebooks:
        print(f"running {_display(nb)} ...", file=sys.stderr, flush=True)
        save_to = args.reference / nb.name if args.reference else None
        run_env = {**env, "PLOTLY_RENDERER": "plotly_mimetype"} if save_to else env
        report.notebooks.append(run_notebook(nb, cell_timeout=args.cell_timeout, env=run_env, save_to=save_to))

    print(format_report(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = asdict(report)
        for entry, result in zip(payload["notebooks"], report.notebooks):
            entry["within_targets"] = result.ok and not result.misses(report.targets)
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    load = report.load
    failed = any(not r.ok for r in report.notebooks) or (load is not None and not load.ok)
    missed = any(r.misses(report.targets) for r in report.notebooks) or (
        load is not None and load.ok and load_rss_mb(load) > report.targets.load_rss_mb
    )
    return 1 if failed or (args.strict and missed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
