"""A graded notebook cannot reach the grader, other submissions or the course, and a killed batch resumes.

Runs ``python -m utils.grade`` (sandboxed by default: bubblewrap) on a folder of chapter-00 notebooks: a
solved one, a symlink to it, and stubs that each attack from inside their kernel: kill the grader, leave
a detached process behind, rewrite the checks and a sibling submission, eat memory. Without bubblewrap
the tests skip, except under CI (``CI`` set), where they fail (``make test`` installs it as root).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from utils.grade import sandbox

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
STUB = ROOT / "chapters" / "00_setup_and_tour.ipynb"
SOLVED = ROOT / "solutions" / "00_setup_and_tour.ipynb"
MARKER = "course-sandbox-survivor-7f3a"


def _require_bwrap() -> None:
    why = sandbox.unavailable()
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(why + " -- required under CI")
    pytest.skip(why)


def with_cell(source: Path, target: Path, code: str) -> Path:
    nb = json.loads(source.read_text())
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "attack", "metadata": {}, "outputs": [],
                        "source": code})
    target.write_text(json.dumps(nb))
    return target


def grade_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "utils.grade", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def log_records(log: Path) -> dict[str, list[dict]]:
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {Path(e["notebook"]).name: e["records"] for e in entries}


def test_hostile_notebooks_reach_nothing_outside_their_sandbox(tmp_path: Path) -> None:
    _require_bwrap()
    subs = tmp_path / "submissions"
    subs.mkdir()
    solved = subs / "d_solved_00.ipynb"
    solved.write_bytes(SOLVED.read_bytes())
    (subs / "f_link_00.ipynb").symlink_to(solved)
    checks = ROOT / "utils" / "checks" / "ch00.py"
    before = {checks: digest(checks), solved: digest(solved)}
    with_cell(STUB, subs / "a_kills_the_grader_00.ipynb", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)")
    with_cell(STUB, subs / "b_leaves_a_process_00.ipynb",
              f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)', "
              f"'{MARKER}'], start_new_session=True)")
    with_cell(STUB, subs / "c_rewrites_files_00.ipynb",
              "import utils.checks.ch00 as c\nfor path in [c.__file__, " + repr(str(solved)) + "]:\n"
              "    try:\n        open(path, 'a').write('\\n# tampered')\n    except OSError as e:\n        print(e)\n")
    with_cell(STUB, subs / "e_eats_memory_00.ipynb",  # grows past the 2,000 MB watchdog before the address-space cap
              "import time\nblocks = []\nfor _ in range(40):\n    blocks.append(b'x' * 10**8)\n    time.sleep(0.05)")
    log = tmp_path / "grades.jsonl"
    proc = grade_cli(str(subs), "--log", str(log), "--json", str(tmp_path / "grades.json"), "--timeout", "600")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = log_records(log)
    assert sorted(got) == sorted(p.name for p in subs.iterdir())  # the symlink is graded, not dropped
    passed = {name: sum(r["passed"] for r in records) for name, records in got.items()}
    assert passed == {"a_kills_the_grader_00.ipynb": 0, "b_leaves_a_process_00.ipynb": 0,
                      "c_rewrites_files_00.ipynb": 0, "d_solved_00.ipynb": 5, "e_eats_memory_00.ipynb": 0,
                      "f_link_00.ipynb": 5}, passed
    assert all(digest(path) == value for path, value in before.items()), "a notebook changed the course or a sibling"
    memory = got["e_eats_memory_00.ipynb"][0]
    assert "memory" in memory["notes"] and "limit" in memory["notes"], memory
    survivors = [p.info for p in psutil.process_iter(["pid", "cmdline"]) if MARKER in " ".join(p.info["cmdline"] or [])]
    assert not survivors, f"a process outlived its kernel: {survivors}"
    assert len(json.loads((tmp_path / "grades.json").read_text())) == 6 * 5


def test_a_killed_batch_keeps_what_it_finished_and_resumes(tmp_path: Path) -> None:
    _require_bwrap()
    subs = tmp_path / "submissions"
    subs.mkdir()
    for name in ("a_00.ipynb", "b_00.ipynb"):
        (subs / name).write_bytes(STUB.read_bytes())
    log = tmp_path / "grades.jsonl"
    args = [sys.executable, "-m", "utils.grade", str(subs), "--log", str(log), "--timeout", "600"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (log.exists() and log.read_text().count("\n") >= 1):
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert list(log_records(log)) == ["a_00.ipynb"], "the first notebook's records were not kept"
    again = grade_cli(str(subs), "--log", str(log), "--timeout", "600")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "a_00.ipynb: already in" in again.stderr
    got = log_records(log)
    assert sorted(got) == ["a_00.ipynb", "b_00.ipynb"]
    assert all("not attempted" in r["message"] for records in got.values() for r in records), got  # they really ran
    assert log.read_text().count("\n") == 2  # nothing graded twice
