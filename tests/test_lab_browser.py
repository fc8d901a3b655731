"""The learner's first minute, checked the way a person would: JupyterLab in headless Chromium.

Starts ``jupyter lab`` from the running interpreter's environment (the course venv under
``make test``) on a free 127.0.0.1 port, with throw-away Jupyter config/data/runtime/settings
directories, so the tester's own settings cannot leak in while the environment's
``share/jupyter/lab/settings/overrides.json`` (copied from binder/ by ``make venv`` and Binder's
postBuild) still applies. Debian's Chromium is driven through the ``playwright`` package; no browser
is ever downloaded. It opens chapter 00 and asserts:

* the notebook renders (its first markdown heading is visible);
* its kernel starts by itself and becomes idle, with no kernel-chooser dialog;
* no "Jupyter news" prompt appears;
* the page requests nothing from outside 127.0.0.1 (the course is offline).

A second test drives chapter 02's feature browser (the real widget, model, SAE and dashboards) in a
throw-away notebook: it runs the cell, sees coloured example rows, types a phrase, presses Enter and
sees the browser move to the praise latent with its examples.

A screenshot is saved in the test's temporary directory and, when ``COURSE_SCREENSHOT_DIR`` is
set, copied there. Without /usr/bin/chromium the test is skipped, except under CI (``CI`` set),
where it fails (``make browser`` installs Chromium).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_00 = "chapters/00_setup_and_tour.ipynb"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_S = 60.0
PAGE_READY_MS = 60_000
NEWS_GRACE_S = 3.0  # JupyterLab asks about news shortly after start-up; give it time to (not) do so
NEWS_TEXT = re.compile(r"Jupyter news", re.IGNORECASE)


# --- the server ---------------------------------------------------------------------------------


@dataclass
class LabServer:
    """A running ``jupyter lab``: its base URL (ends in ``/``), token, process and log file."""

    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path
    root: Path = field(default=ROOT)

    def api(self, path: str, method: str = "GET", timeout: float = 5.0) -> object:
        """Call the Jupyter server REST API; return the decoded JSON (``None`` for an empty body)."""
        req = urllib.request.Request(
            self.url + path.lstrip("/"), method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def isolated_jupyter_env(workdir: Path) -> dict[str, str]:
    """Environment for a Jupyter server that ignores the user's config, settings and kernels.

    Only per-user locations are redirected; the environment's own ``share/jupyter`` (kernels,
    JupyterLab app dir with ``settings/overrides.json``) and ``etc/jupyter`` stay in effect.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    dirs = {
        "JUPYTER_CONFIG_DIR": workdir / "config",
        "JUPYTER_DATA_DIR": workdir / "data",
        "JUPYTER_RUNTIME_DIR": workdir / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": workdir / "config" / "lab" / "user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": workdir / "config" / "lab" / "workspaces",
        "IPYTHONDIR": workdir / "ipython",
    }
    for name, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_until_up(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            server.api("api/status", timeout=2)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            time.sleep(0.3)
    raise TimeoutError(f"jupyter lab did not answer within {timeout:.0f} s:\n{server.log_tail()}")


def _stop(server: LabServer) -> None:
    """Shut the server down (kernels included); escalate to signals; kill leftover kernels."""
    import psutil

    try:
        leftovers = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        leftovers = []
    with contextlib.suppress(Exception):
        server.api("api/shutdown", method="POST", timeout=5)  # stops kernels, then the server
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=5)
    # Kernels run in their own sessions; any that survived the shutdown are ours to end.
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.kill()


@contextlib.contextmanager
def running_lab(root: Path, workdir: Path, timeout: float = SERVER_START_S) -> Iterator[LabServer]:
    """Run ``jupyter lab`` on ``root`` (bound to 127.0.0.1, with a token) for the ``with`` block."""
    token = secrets.token_hex(16)
    port = _free_port()
    log = workdir / "jupyter-lab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI often run as root
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            cmd, cwd=root, env=isolated_jupyter_env(workdir), stdout=log_file, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    server = LabServer(url=f"http://127.0.0.1:{port}/", token=token, process=process, log=log, root=root)
    try:
        _wait_until_up(server, timeout)
        yield server
    finally:
        _stop(server)


# --- the notebook -------------------------------------------------------------------------------


def first_heading(notebook: Path) -> tuple[int, str]:
    """Level and plain text of the first markdown heading in ``notebook`` (``# Title`` -> (1, "Title"))."""
    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        for line in source.splitlines():
            m = re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
            if m:
                text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(2))  # [text](link) -> text
                text = re.sub(r"[*_`]", "", text).strip()
                return len(m.group(1)), text
    raise AssertionError(f"{notebook} has no markdown heading")


def kernel_name(notebook: Path) -> str | None:
    return json.loads(notebook.read_text()).get("metadata", {}).get("kernelspec", {}).get("name")


# --- the browser --------------------------------------------------------------------------------


def _require_chromium() -> None:
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    reason = f"{CHROMIUM} not found (Debian's chromium; `make browser` installs it as root)"
    if os.environ.get("CI"):
        pytest.fail(reason + " -- required under CI")
    pytest.skip(reason)


@dataclass
class PageReport:
    """What the browser saw."""

    screenshot: Path
    external_requests: list[str]
    session: dict


def open_notebook_and_check(server: LabServer, notebook: str, out_dir: Path) -> PageReport:
    """Open ``notebook`` (path relative to the server root) and assert the first-minute promises."""
    from playwright.sync_api import sync_playwright

    level, heading = first_heading(server.root / notebook)
    expected_kernel = kernel_name(server.root / notebook)
    external: list[str] = []
    screenshot = out_dir / "lab-chapter-00.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 850})

            def note_request(request: object) -> None:
                url = request.url  # type: ignore[attr-defined]
                host = urlsplit(url).hostname
                if url.startswith(("http://", "https://", "ws://", "wss://")) and host not in ("127.0.0.1", "localhost"):
                    external.append(url)

            page.on("request", note_request)
            page.goto(f"{server.url}lab/tree/{notebook}?token={server.token}", wait_until="domcontentloaded")
            try:
                # 1. The notebook renders: its first heading is visible.
                page.locator(f".jp-NotebookPanel .jp-RenderedMarkdown h{level}").filter(
                    has_text=heading
                ).first.wait_for(state="visible", timeout=PAGE_READY_MS)
                # 2. Its kernel starts on its own and goes idle; a dialog (the kernel chooser) fails fast.
                idle = page.locator('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status="idle"]')
                dialog = page.locator(".jp-Dialog")
                idle.or_(dialog).first.wait_for(state="attached", timeout=PAGE_READY_MS)
                assert dialog.count() == 0, f"a dialog is in the way: {dialog.first.inner_text()!r}"
                page.wait_for_timeout(NEWS_GRACE_S * 1000)
            finally:
                page.screenshot(path=str(screenshot))
                _copy_screenshot(screenshot)

            dialogs = page.locator(".jp-Dialog")
            assert dialogs.count() == 0, f"a dialog is in the way: {dialogs.first.inner_text()!r}"
            assert page.get_by_text("Select Kernel").count() == 0, "a kernel chooser is showing"
            status = page.locator(".jp-NotebookPanel .jp-KernelStatus, .jp-StatusBar-Widget").all_inner_texts()
            assert not any("No Kernel" in s for s in status), status
            # 3. No news prompt (a toast, or the notification centre's badge counting one).
            toasts = page.locator(".Toastify__toast").all_inner_texts()
            assert not any(NEWS_TEXT.search(t) for t in toasts), f"news prompt shown: {toasts}"
            assert page.get_by_text(NEWS_TEXT).count() == 0, "a 'Jupyter news' prompt is on the page"
        finally:
            browser.close()

    sessions = server.api("api/sessions")
    assert isinstance(sessions, list)
    mine = [s for s in sessions if s.get("path") == notebook]
    assert len(mine) == 1, f"expected one kernel session for {notebook}, server has {sessions}"
    kernel = mine[0]["kernel"]
    assert kernel["execution_state"] == "idle", kernel
    if expected_kernel:
        assert kernel["name"] == expected_kernel, kernel
    return PageReport(screenshot=screenshot, external_requests=external, session=mine[0])


def _copy_screenshot(screenshot: Path) -> None:
    target = os.environ.get("COURSE_SCREENSHOT_DIR")
    if target and screenshot.is_file():
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy2(screenshot, Path(target) / screenshot.name)


# --- the test -----------------------------------------------------------------------------------


def test_chapter_00_opens_ready_to_run(tmp_path: Path) -> None:
    _require_chromium()
    assert (ROOT / CHAPTER_00).is_file(), (
        f"{CHAPTER_00} is missing: the learner's first minute lands there (`make notebooks` writes it)"
    )
    with running_lab(ROOT, tmp_path) as server:
        try:
            report = open_notebook_and_check(server, CHAPTER_00, tmp_path)
        except BaseException:
            print(f"--- jupyter lab log ---\n{server.log_tail()}")
            raise
    print(f"screenshot: {report.screenshot}")
    assert not report.external_requests, f"the page reached outside 127.0.0.1: {report.external_requests}"


# --- the feature browser --------------------------------------------------------------------------

BROWSER_CELL = """\
from utils.browser import feature_browser
from utils.corpus import load_corpus
from utils.feature_scan import FeatureStats
from utils.model import load_model
from utils.named_latents import load_registry
from utils.sae import load_course_sae

model, sae, stats, docs = load_model(), load_course_sae(), FeatureStats.load(), load_corpus()
names = {name: entry.latent for name, entry in load_registry().items()}
feature_browser(model, sae, stats, docs, names=names)
"""
BROWSER_READY_MS = 180_000  # the kernel loads the model, corpus and scan first


def write_browser_notebook(path: Path) -> None:
    """A one-cell notebook that shows the feature browser with the course SAE and registry."""
    nb = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "browser", "metadata": {}, "outputs": [],
                   "source": BROWSER_CELL}],
        "metadata": json.loads((ROOT / CHAPTER_00).read_text())["metadata"],
        "nbformat": 4, "nbformat_minor": 5,
    }
    path.write_text(json.dumps(nb, indent=1))


def run_first_cell(page: object, attempts: int = 4) -> None:
    """Run the notebook's first cell once its kernel is idle. A Shift+Enter sent while the kernel is still
    connecting can be dropped silently, so try again until the prompt shows ``[*]`` or a number."""
    idle = page.locator('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status="idle"]')  # type: ignore[attr-defined]
    idle.first.wait_for(state="attached", timeout=PAGE_READY_MS)
    prompt = page.locator(".jp-CodeCell .jp-InputPrompt").first  # type: ignore[attr-defined]
    for _ in range(attempts):
        page.locator(".jp-CodeCell .cm-content").first.click()  # type: ignore[attr-defined]
        page.keyboard.press("Shift+Enter")  # type: ignore[attr-defined]
        try:
            page.wait_for_function(  # type: ignore[attr-defined]
                "el => /\\[(\\*|\\d+)\\]/.test(el.innerText)", arg=prompt.element_handle(), timeout=5_000)
            return
        except Exception:  # noqa: BLE001 - playwright's TimeoutError; try again
            continue
    raise AssertionError(f"the cell never started running; its prompt reads {prompt.inner_text()!r}")


def test_feature_browser_shows_examples_in_the_real_browser(tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    from utils.named_latents import named_latent

    bridge, praise = named_latent("bridge").latent, named_latent("praise").latent
    root = tmp_path / "course"
    root.mkdir()
    write_browser_notebook(root / "browser.ipynb")
    screenshot = tmp_path / "lab-feature-browser.png"
    external: list[str] = []
    with running_lab(root, tmp_path) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 1000})
            page.on("request", lambda r: external.append(r.url) if urlsplit(r.url).hostname not in
                    (None, "127.0.0.1", "localhost") and r.url.startswith(("http", "ws")) else None)
            page.goto(f"{server.url}lab/tree/browser.ipynb?token={server.token}", wait_until="domcontentloaded")
            run_first_cell(page)
            output = page.locator(".jp-OutputArea-output")
            rows = output.locator(".sae-example")
            try:
                # 1. The widget renders the first named latent's dashboard with coloured example rows.
                output.get_by_text(f"latent {bridge}").first.wait_for(state="visible", timeout=BROWSER_READY_MS)
                rows.first.wait_for(state="visible", timeout=30_000)
                assert rows.count() >= 3, f"only {rows.count()} example rows"
                coloured = rows.first.locator('span[style*="rgba(255,140,0,1.000)"]')
                assert coloured.count() >= 1, "no token at full colour in the first example row"
                assert "bridge" in rows.all_inner_texts()[0].lower(), rows.all_inner_texts()[:2]
                assert output.locator("select").first.evaluate("s => s.options[s.selectedIndex].text") == "bridge"
                # 2. Typing a phrase and pressing Enter moves to the praise latent, examples and all.
                text_box = output.locator("input[type=text]").first
                text_box.fill("What a brilliant")
                text_box.press("Enter")
                output.get_by_text(f"latent {praise}").first.wait_for(state="visible", timeout=60_000)
                page.wait_for_function(
                    "() => [...document.querySelectorAll('.sae-example')].some(r => /brilliant/i.test(r.innerText))",
                    timeout=30_000,
                )
                assert output.locator("select").first.evaluate("s => s.options[s.selectedIndex].text") == "praise"
                assert output.get_by_text("activation × specificity").count() >= 1
                assert page.locator(".jp-OutputArea-output [data-mime-type='application/vnd.jupyter.stderr']").count() == 0
            finally:
                page.screenshot(path=str(screenshot), full_page=True)
                _copy_screenshot(screenshot)
        except BaseException:
            print(f"--- jupyter lab log ---\n{server.log_tail()}")
            raise
        finally:
            browser.close()
    assert not external, f"the page reached outside 127.0.0.1: {external}"


# --- shipped notebooks opened to read -----------------------------------------------------------

AUTOSAVE_S = 5  # the test's own JupyterLab setting (the default is 120 s), so "past the autosave interval" is short


def _set_autosave_interval(workdir: Path, seconds: int) -> None:
    """Write the docmanager's autosave interval into the throw-away user settings :func:`running_lab` uses."""
    settings = workdir / "config" / "lab" / "user-settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "plugin.jupyterlab-settings").write_text(json.dumps({"autosave": True, "autosaveInterval": seconds}))


def _digests(paths: list[str]) -> dict[str, tuple[str, int]]:
    """Each file's sha256 and modification time (ns): what ``git status`` would notice, and a write of the same
    bytes too."""
    import hashlib

    return {p: (hashlib.sha256((ROOT / p).read_bytes()).hexdigest(), (ROOT / p).stat().st_mtime_ns) for p in paths}


def test_shipped_notebooks_open_read_only_share_one_kernel_and_stay_unchanged(tmp_path: Path) -> None:
    """Issue 25, item 1: open every notebook of reference/ and solutions/ in JupyterLab, wait past the autosave
    interval, and find every file as it was (bytes and modification time: ``git status`` stays clean); all of them
    together started one kernel."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    shipped = sorted(str(p.relative_to(ROOT)) for folder in ("reference", "solutions")
                     for p in (ROOT / folder).glob("*.ipynb"))
    assert len(shipped) >= 12, shipped
    before = _digests(shipped)
    _set_autosave_interval(tmp_path, AUTOSAVE_S)
    with running_lab(ROOT, tmp_path) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 850})
            for notebook in shipped:
                page.goto(f"{server.url}lab/tree/{notebook}?token={server.token}", wait_until="domcontentloaded")
                level, heading = first_heading(ROOT / notebook)
                # the visible one: reference/00 and solutions/00 share a heading, and earlier tabs stay open
                page.locator(f".jp-NotebookPanel .jp-RenderedMarkdown h{level} >> visible=true").filter(
                    has_text=heading).first.wait_for(state="visible", timeout=PAGE_READY_MS)
            page.wait_for_timeout(3 * AUTOSAVE_S * 1000)  # three autosave intervals with every notebook open
            sessions = server.api("api/sessions")
            kernels = server.api("api/kernels")
        except BaseException:
            print(f"--- jupyter lab log ---\n{server.log_tail()}")
            raise
        finally:
            browser.close()
    changed = [p for p, digest in _digests(shipped).items() if digest != before[p]]
    assert not changed, f"opening them rewrote {changed}"
    opened = {s["path"]: s["kernel"]["id"] for s in sessions if s.get("kernel")}
    assert set(opened) >= set(shipped[-1:]), opened  # the last one opened at least has its session
    assert len({opened[p] for p in opened}) == 1 and len(kernels) == 1, (opened, kernels)
