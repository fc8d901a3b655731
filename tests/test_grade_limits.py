"""Limits a kernel cannot step around (issue 24, item 5): processes counted by the watchdog (RLIMIT_NPROC does not
bind for root), the private /tmp size-capped and counted as memory, a CPU-time cap, a time budget for all of a
notebook's checks, and long messages and notes cut in the records. Each test plays the attack and shows it stopped;
none starts a Jupyter kernel."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from utils.grade import batch, remote, sandbox

NEEDS_BWRAP = pytest.mark.skipif(sandbox.unavailable() is not None, reason="bubblewrap cannot run here")


def _in_sandbox(tmp_path: Path, code: str, **limits) -> subprocess.Popen:
    argv = sandbox.bwrap_argv([sys.executable, "-c", code], tmp_path, [], **limits)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_the_watchdog_stops_a_tree_with_too_many_processes() -> None:
    code = "import subprocess, sys, time\n" \
           "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']) for _ in range(8)]\n" \
           "time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        with sandbox.MemoryWatchdog(proc.pid, limit_mb=100_000, interval=0.1, max_processes=5) as watchdog:
            proc.wait(timeout=30)
        assert watchdog.tripped_processes is not None and watchdog.tripped_processes > 5
        assert watchdog.tripped_mb is None
    finally:
        proc.kill()


@NEEDS_BWRAP
def test_the_private_tmp_is_capped_and_what_it_holds_is_counted(tmp_path: Path) -> None:
    import psutil

    from utils.memory import process_tree

    write = ("import time\n"
             "with open('/tmp/a', 'wb') as f:\n"
             "    f.write(b'x' * 60_000_000)\n"
             "try:\n"
             "    with open('/tmp/b', 'wb') as f:\n"
             "        f.write(b'x' * 100_000_000)\n"
             "    print('wrote past the cap', flush=True)\n"
             "except OSError as error:\n"
             "    print('refused', error.errno, flush=True)\n"
             "time.sleep(60)\n")
    proc = _in_sandbox(tmp_path, write, tmp_bytes=120_000_000)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("refused"), line  # the 512 MB default is 120 MB here: 60 + 100 MB does not fit
        used = sandbox.private_tmp_bytes(process_tree(proc.pid))
        assert 55e6 < used <= 121e6, used  # the 60 MB file (and what fit of the second) counts as memory
        assert sandbox.private_tmp_bytes([psutil.Process()]) == 0  # the grader's own /tmp is not counted
    finally:
        proc.kill()
        proc.wait()


@NEEDS_BWRAP
def test_a_kernel_that_spins_is_stopped_by_its_cpu_cap(tmp_path: Path) -> None:
    start = time.monotonic()
    proc = _in_sandbox(tmp_path, "while True:\n    pass\n", cpu_seconds=1)
    proc.wait(timeout=60)
    assert proc.returncode != 0 and time.monotonic() - start < 30


def test_the_sandbox_command_carries_every_cap(tmp_path: Path) -> None:
    argv = sandbox.bwrap_argv(["python"], tmp_path, [])
    assert argv[argv.index("--tmpfs") - 2:argv.index("--tmpfs") + 2] == ["--size", str(sandbox.DEFAULT_TMP_BYTES),
                                                                          "--tmpfs", "/tmp"]
    assert f"--cpu={sandbox.DEFAULT_CPU_SECONDS}" in argv and any(a.startswith("--as=") for a in argv)


def test_no_call_is_sent_once_the_checks_budget_is_spent() -> None:
    sent = []
    kernel = remote.RemoteKernel(lambda code, seconds: sent.append(seconds) or "", timeout=600)
    kernel.deadline = time.monotonic() + 20
    with pytest.raises(remote.NoReply):  # the transport answers nothing, but the call went out with <= 20 s
        kernel.call({"name": "f"}, (), {})
    assert sent and sent[0] <= 20
    kernel.deadline = time.monotonic() - 1
    with pytest.raises(remote.BudgetSpent):
        kernel.call({"name": "f"}, (), {})
    assert len(sent) == 1


def test_a_spent_budget_fails_that_check_and_every_later_one() -> None:
    class Exercise:
        name = "f"

        def check(self, fn):
            raise AssertionError("not reached")

    kernel = remote.RemoteKernel(lambda code, seconds: "", timeout=600)
    kernel.deadline = time.monotonic() - 1
    passed, message, fatal = batch._remote_check(kernel, Exercise())
    assert not passed and message.startswith("not checked") and fatal and "total time" in fatal


def test_long_messages_and_notes_are_cut(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    huge = "Traceback line\n" * 500_000  # 7.5 MB, as a notebook raising a giant exception would give
    monkeypatch.setattr(batch, "_grade_executable",
                        lambda nb, copy, chapter, exercises, *a, **k: ([(False, huge) for _ in exercises], huge))
    notebook = tmp_path / "someone_00.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    records = batch.grade_notebook(notebook)
    assert records
    for r in records:
        assert len(r.message) < batch.MAX_MESSAGE_CHARS + 100 and "more characters cut" in r.message
        assert len(r.notes) < batch.MAX_NOTES_CHARS + 100 and r.message.startswith("Traceback line")


@NEEDS_BWRAP
def test_the_kernel_is_not_root_inside_the_sandbox(tmp_path: Path) -> None:
    code = ("import os\n"
            "caps = [l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')][0]\n"
            "open('written', 'w').write('ok')\n"
            "print(os.getuid(), os.getgid(), caps, flush=True)\n")
    proc = _in_sandbox(tmp_path, code)
    out, err = proc.communicate(timeout=60)
    uid, gid, caps = out.split()
    assert (int(uid), int(gid)) == (sandbox.SANDBOX_UID, sandbox.SANDBOX_UID) and int(caps, 16) == 0, (out, err)
    assert (tmp_path / "written").read_text() == "ok"  # its own grading folder stays writable
