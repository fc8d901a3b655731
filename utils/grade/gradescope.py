"""A Gradescope autograder built from the course's own checks, and a local run of it before upload.

    python -m utils.grade.gradescope build --chapter 00 --out grades/gradescope_00.zip
    python -m utils.grade.gradescope run grades/gradescope_00.zip alice_00.ipynb [--results FILE]

``build`` writes a zip in the shape of Gradescope's autograder specification: at its root

* ``setup.sh`` — run once, as root and with internet, when Gradescope builds the image: installs Python 3.11
  (deadsnakes, when the image has none), ``make`` and bubblewrap, then ``make venv`` — the course's own install
  from its pins (``environment.yml``), which also warms the model cache;
* ``run_autograder`` — run per submission: ``python -m utils.grade.gradescope autograde``, which grades the one
  notebook in ``/autograder/submission/`` with the course grader (:func:`utils.grade.batch.grade_notebook`; in
  bubblewrap where it works, else as a plain process, said in the output) and writes
  ``/autograder/results/results.json``: one test per exercise. A submission with no notebook, several, one of
  another chapter, or a failure of the autograder itself still gets a ``results.json`` (score 0 and the reason);
* ``gradescope.json`` — what was built: chapters, points per exercise, time and memory limits, the course commit;
* the course files the install and the grading read: ``Makefile``, ``environment.yml``, ``pyproject.toml``,
  ``binder/jupyterlab-overrides.json``, every ``utils/**.py`` and only the entries of ``utils/data`` that the
  chapters' notebooks and checks read (:data:`CHAPTER_DATA`, measured by grading each solution notebook with
  every file it opened logged).

``run`` unpacks a zip into a temporary folder laid out like ``/autograder`` (``source/``, ``submission/``,
``results/``), runs its ``run_autograder`` with ``AUTOGRADER_ROOT`` pointing there and ``COURSE_PYTHON`` set to
this interpreter (the installed course venv: ``setup.sh`` is not run, so nothing is downloaded), prints the
per-test scores and checks ``results.json`` against the specification. The zip's own copy of ``utils/`` is first
on the import path, so a file the zip lacks fails here as it would on Gradescope.

Points: one per exercise, as in the gradebook (:func:`utils.grade.exports.gradebook` counts passed exercises).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_NAME = "gradescope.json"
ROOT_ENV = "AUTOGRADER_ROOT"  # the folder laid out like /autograder (default: /autograder)
PYTHON_ENV = "COURSE_PYTHON"  # the interpreter run_autograder uses (default: source/.venv/bin/python)
DEFAULT_ROOT = "/autograder"
POINTS_PER_EXERCISE = 1.0
DEFAULT_RUN_TIMEOUT = 1800.0  # seconds for a whole local run (the notebook's own limit is in gradescope.json)
# The course files outside utils/ that setup.sh (`make venv`) reads.
INSTALL_FILES = ("Makefile", "environment.yml", "pyproject.toml", "binder/jupyterlab-overrides.json")
# The files of utils/data that grading a chapter reads (its notebook's cells, in the kernel, and its checks, in the
# grader), measured by grading each solution notebook with every file opened or stat'ed logged:
#   strace -f -e trace=openat,open,stat,newfstatat,statx -o LOG python -m utils.grade --no-sandbox solutions/NN_*.ipynb
# A folder stands for all its files. Re-measure when a chapter starts reading another file (a missing one fails
# the local run of that chapter's solution through the zip).
CHAPTER_DATA: dict[str, tuple[str, ...]] = {
    "00": (),
    "01": ("course_corpus.jsonl.gz", "course_sae/cfg.json", "course_sae/sae_weights.safetensors", "human_eval.txt",
           "matryoshka_sae/cfg.json"),
    "02": ("concept_eval.jsonl", "course_corpus.jsonl.gz", "course_sae/cfg.json", "course_sae/feature_stats.safetensors",
           "course_sae/named_latents.json", "course_sae/sae_weights.safetensors", "matryoshka_sae/cfg.json",
           "matryoshka_sae/feature_stats_1024.safetensors", "matryoshka_sae/feature_stats_4096.safetensors",
           "matryoshka_sae/feature_stats_16384.safetensors", "matryoshka_sae/named_latents.json",
           "matryoshka_sae/sae_weights.safetensors"),
    "03": ("course_sae/cfg.json", "course_sae/named_latents.json", "course_sae/sae_weights.safetensors",
           "identity_attempts.json", "identity_labels.jsonl", "identity_study.json",
           "matryoshka_sae/cfg.json", "matryoshka_sae/named_latents.json", "matryoshka_sae/sae_weights.safetensors",
           "steering_sweep.json", "sycophancy_labels.jsonl"),
    "04": ("af_runs/base.jsonl", "af_runs/organism.jsonl", "af_transcripts.jsonl", "organism/adapter.safetensors",
           "organism/training_log.json"),
    "05": ("af_inside/residuals.safetensors", "af_inside/results.json", "af_runs/organism_v2.situation.jsonl",
           "course_corpus.jsonl.gz", "course_sae/cfg.json", "course_sae/feature_stats.safetensors",
           "course_sae/sae_weights.safetensors", "organism_v2/adapter.safetensors"),
}
VALID_VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


class GradescopeError(Exception):
    """Bad input to ``build`` or ``run``: the message says what to do."""


# --------------------------------------------------------------------------------------------
# Building the zip


def normalise_chapters(chapters: str | Iterable[str], root: Path = REPO_ROOT) -> list[str]:
    """``"0"``/``"00"``/``["00", "04"]`` -> sorted two-digit chapters that have a check module; raises
    :class:`GradescopeError` naming the chapters that exist otherwise."""
    items = [chapters] if isinstance(chapters, str) else list(chapters)
    known = sorted(p.stem[2:] for p in (root / "utils" / "checks").glob("ch[0-9][0-9].py"))
    out: set[str] = set()
    for item in items:
        text = str(item).strip()
        # ASCII digits only: "²" passes str.isdigit() and then fails int()
        chapter = f"{int(text):02d}" if re.fullmatch(r"[0-9]{1,2}", text) else text
        if chapter not in known:
            raise GradescopeError(f"no checks for chapter {item!r}: choose from {', '.join(known)}")
        out.add(chapter)
    if not out:
        raise GradescopeError("name at least one chapter (--chapter 00)")
    return sorted(out)


def data_needed(chapters: Sequence[str]) -> list[str]:
    """The paths under ``utils/data`` (files or folders) that grading ``chapters`` reads."""
    return sorted({entry for chapter in chapters for entry in CHAPTER_DATA.get(chapter, ())})


def _files_under(folder: Path) -> list[Path]:
    """Every regular file under ``folder`` (or ``folder`` itself), skipping caches; sorted."""
    if folder.is_file():
        return [folder]
    return sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                  and p.suffix != ".pyc" and not p.name.endswith(".partial.jsonl"))


def source_files(chapters: Sequence[str], root: Path = REPO_ROOT) -> list[tuple[Path, str]]:
    """(file on disk, name in the zip) for the course files the zip carries (see the module docstring)."""
    entries: list[tuple[Path, str]] = []
    for name in INSTALL_FILES:
        path = root / name
        if not path.is_file():
            raise GradescopeError(f"{path} is missing: build the zip from a full checkout of the course")
        entries.append((path, name))
    utils = root / "utils"
    for path in sorted(utils.rglob("*.py")):
        rel = path.relative_to(root)
        if "__pycache__" not in rel.parts and rel.parts[:2] != ("utils", "data"):
            entries.append((path, rel.as_posix()))
    for entry in data_needed(chapters):
        path = utils / "data" / entry
        if not path.exists():
            raise GradescopeError(f"{path} is missing (chapter data the grading reads)")
        entries += [(p, p.relative_to(root).as_posix()) for p in _files_under(path)]
    return entries


def setup_script() -> str:
    """``setup.sh``: Gradescope runs it once, as root with internet, when it builds the autograder image."""
    return """#!/usr/bin/env bash
# Gradescope runs this once (as root, with internet) to build the autograder image: the course's own install.
set -euo pipefail
cd /autograder/source
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if ! command -v python3.11 >/dev/null; then  # Ubuntu images ship another Python: take 3.11 from deadsnakes
  apt-get install -y -qq software-properties-common
  add-apt-repository -y ppa:deadsnakes/ppa
  apt-get update -qq
  apt-get install -y -qq python3.11 python3.11-venv
fi
apt-get install -y -qq make bubblewrap  # bubblewrap: the grader's sandbox, used when the container allows it
make venv PYTHON="$(command -v python3.11)"  # pinned packages from environment.yml, then the model cache
.venv/bin/python -c "import utils.grade.gradescope"  # fail the build now, not at the first submission
"""


def run_script() -> str:
    """``run_autograder``: Gradescope runs it per submission; it always leaves a ``results.json``."""
    return f"""#!/usr/bin/env bash
# Gradescope runs this once per submission. {ROOT_ENV} and {PYTHON_ENV} exist for the local run
# (python -m utils.grade.gradescope run ZIP NOTEBOOK); on Gradescope the defaults apply.
ROOT="${{{ROOT_ENV}:-{DEFAULT_ROOT}}}"
SOURCE="$ROOT/source"
PY="${{{PYTHON_ENV}:-$SOURCE/.venv/bin/python}}"
mkdir -p "$ROOT/results"
rm -f "$ROOT/results/results.json"
cd "$SOURCE" && PYTHONPATH="$SOURCE" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \\
  "$PY" -m utils.grade.gradescope autograde --root "$ROOT"
status=$?
if [ ! -s "$ROOT/results/results.json" ]; then  # the grader could not even start: still give Gradescope a result
  printf '{{"score": 0.0, "output": "The autograder failed before grading (exit status %s). This is not a problem with your notebook: tell your instructor."}}\\n' "$status" > "$ROOT/results/results.json"
fi
exit 0
"""


def course_commit(root: Path = REPO_ROOT) -> str:
    """The checkout's commit (with ``+changes`` when files differ from it), or ``unknown`` outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (commit + ("+changes" if dirty else "")) if commit else "unknown"


def exercise_points(chapters: Sequence[str]) -> dict[str, dict[str, Any]]:
    """{exercise id: {name, title, points}} for every exercise of ``chapters``, in order."""
    from utils.grade import runtime

    return {e.id: {"name": e.name, "title": e.title, "points": POINTS_PER_EXERCISE}
            for chapter in chapters for e in runtime.exercises(chapter)}


def build_config(chapters: Sequence[str], timeout: float, check_timeout: float, memory_mb: float,
                 root: Path = REPO_ROOT) -> dict[str, Any]:
    """The content of ``gradescope.json``."""
    return {"chapters": list(chapters), "exercises": exercise_points(chapters), "timeout": timeout,
            "check_timeout": check_timeout, "memory_mb": memory_mb, "data": data_needed(chapters),
            "course_commit": course_commit(root)}


def _zip_info(name: str, executable: bool = False) -> zipfile.ZipInfo:
    """A member with a fixed date (the same files give the same zip) and Unix permissions."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = ((0o755 if executable else 0o644) | 0o100000) << 16
    return info


@dataclass
class Built:
    """What :func:`build_zip` wrote."""

    path: Path
    size_bytes: int
    files: int
    chapters: list[str]
    data: list[str]

    def summary(self) -> str:
        data = ", ".join(f"utils/data/{d}" for d in self.data) or "no utils/data"
        return (f"wrote {self.path}: {self.size_bytes / 1e6:.2f} MB, {self.files} files, chapter(s) "
                f"{', '.join(self.chapters)}, {data}")


def build_zip(chapters: str | Iterable[str], out_path: str | os.PathLike[str], root: Path = REPO_ROOT,
              timeout: float | None = None, check_timeout: float | None = None,
              memory_mb: float | None = None) -> Built:
    """Write the Gradescope autograder zip for ``chapters`` to ``out_path`` (see the module docstring)."""
    from utils.grade import batch, sandbox

    chosen = normalise_chapters(chapters, root)
    out = Path(out_path)
    if out.suffix != ".zip":
        raise GradescopeError(f"the output must be a .zip file, got {out}")
    files = source_files(chosen, root)
    config = build_config(chosen, timeout or batch.DEFAULT_TIMEOUT, check_timeout or batch.DEFAULT_CHECK_TIMEOUT,
                          memory_mb or sandbox.DEFAULT_MEMORY_MB, root)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        archive.writestr(_zip_info("setup.sh", executable=True), setup_script())
        archive.writestr(_zip_info("run_autograder", executable=True), run_script())
        archive.writestr(_zip_info(CONFIG_NAME), json.dumps(config, indent=2) + "\n")
        for path, name in files:
            archive.writestr(_zip_info(name), path.read_bytes())
    os.replace(tmp, out)
    return Built(out, out.stat().st_size, len(files) + 3, chosen, config["data"])


# --------------------------------------------------------------------------------------------
# Grading one submission (inside the zip, on Gradescope or in a local run)


def find_submission(folder: Path) -> tuple[Path | None, str | None]:
    """(the one notebook in ``folder``, None) or (None, why not): none, or several."""
    if not folder.is_dir():
        return None, f"the submission folder {folder} does not exist"
    from utils.grade.batch import find_notebooks

    notebooks = find_notebooks([folder])
    if not notebooks:
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())[:10]
        got = f" (received: {', '.join(names)})" if names else " (the submission is empty)"
        return None, f"no Jupyter notebook (.ipynb) in the submission{got}: upload your chapter's .ipynb file"
    if len(notebooks) > 1:
        names = ", ".join(p.relative_to(folder).as_posix() for p in notebooks)
        return None, f"{len(notebooks)} notebooks in the submission ({names}): upload exactly one .ipynb file"
    return notebooks[0], None


def _metadata(content: bytes) -> dict[str, Any] | None:
    """The notebook's top-level metadata, or None when it is not readable JSON (the grader reports that)."""
    try:
        metadata = json.loads(content.decode("utf-8")).get("metadata")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return metadata if isinstance(metadata, dict) else None


def _tests(config: dict[str, Any], chapter: str, outcome: dict[str, tuple[bool, str]]) -> list[dict[str, Any]]:
    """One Gradescope test per exercise of ``chapter``; ``outcome`` maps exercise id -> (passed, message)."""
    tests = []
    for exercise_id, info in config["exercises"].items():
        if not exercise_id.startswith(chapter + "."):
            continue
        passed, message = outcome.get(exercise_id, (False, "not graded"))
        points = float(info["points"])
        tests.append({"name": f"{exercise_id} {info['title']} (`{info['name']}`)", "number": exercise_id,
                      "score": points if passed else 0.0, "max_score": points,
                      "status": "passed" if passed else "failed", "output": message, "visibility": "visible"})
    return tests


def failure_results(config: dict[str, Any], message: str, chapter: str | None = None) -> dict[str, Any]:
    """Score 0 with ``message`` as the output; every exercise of ``chapter`` (or of the zip's only chapter) listed
    at 0 so that Gradescope still shows the assignment's full point total."""
    chapters = config.get("chapters", [])
    chapter = chapter or (chapters[0] if len(chapters) == 1 else None)
    tests = _tests(config, chapter, {}) if chapter else []
    for test in tests:
        test["output"] = "not graded: " + message
    return {"score": 0.0, "output": message, "tests": tests}


def results_from_records(config: dict[str, Any], chapter: str, records: Sequence[Any],
                         notes: Sequence[str] = ()) -> dict[str, Any]:
    """``results.json`` from the grader's records of one notebook (:class:`utils.grade.batch.Record`)."""
    errors = [r.message for r in records if not r.exercise]
    if errors:
        return failure_results(config, "; ".join(errors), chapter)
    tests = _tests(config, chapter, {r.exercise: (bool(r.passed), r.message) for r in records})
    score = sum(t["score"] for t in tests)
    total = sum(t["max_score"] for t in tests)
    lines = [f"Chapter {chapter}: {score:g}/{total:g} points, graded by the course's own checks "
             f"(python -m utils.grade, course commit {config.get('course_commit', 'unknown')})."]
    record_notes = next((r.notes for r in records if r.notes), "")
    if record_notes:
        lines.append(f"Notes: {record_notes}")
    lines += list(notes)
    return {"score": score, "output": "\n".join(lines), "tests": tests}


def grade_submission(root: Path, config: dict[str, Any]) -> dict[str, Any]:
    """Grade the notebook in ``root/submission`` and return ``results.json``'s content (never raises for a bad
    submission: those get score 0 and the reason)."""
    from utils.grade import batch, sandbox
    from utils.grade.safe_text import printable

    notebook, problem = find_submission(root / "submission")
    if notebook is None:
        return failure_results(config, problem or "no submission")
    content = notebook.read_bytes()
    chapters = config["chapters"]
    chapter = batch.chapter_of(notebook, _metadata(content))
    notes: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="gradescope-"))
    try:
        if chapter is None and len(chapters) == 1:  # a renamed notebook without course metadata: the zip's chapter
            chapter = chapters[0]
            notes.append(f"The notebook names no chapter; graded as chapter {chapter}, the only one this "
                         "autograder grades.")
            notebook = workdir / f"{chapter}_{notebook.name}"
            notebook.write_bytes(content)
        shown = printable(notebook.name)
        if chapter is None:
            return failure_results(config, f"cannot tell which chapter `{shown}` is (no course.chapter in "
                                           "its metadata, no NN_ in its name): upload the course's notebook")
        if chapter not in chapters:
            wanted = " or ".join(chapters)
            return failure_results(config, f"this autograder grades chapter {wanted}, but `{shown}` is "
                                           f"chapter {chapter}: upload your chapter {wanted} notebook")
        why = sandbox.unavailable()
        if why:
            notes.append(f"Graded without the sandbox ({why.split(';')[0]}); each Gradescope submission runs in its "
                         "own container.")
        isolation = batch.Isolation(sandboxed=why is None, memory_mb=float(config["memory_mb"]))
        records = batch.grade_notebook(notebook, float(config["timeout"]), float(config["check_timeout"]), isolation,
                                       content)
        records = [batch.clean_record(r) for r in records]  # no terminal control sequences in results.json
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results_from_records(config, chapter, records, notes)


def autograde(root: Path) -> int:
    """What ``run_autograder`` runs: grade, then write ``root/results/results.json`` (also when anything fails)."""
    started = time.monotonic()
    results_path = root / "results" / "results.json"
    config: dict[str, Any] = {"chapters": [], "exercises": {}}
    try:
        config = json.loads((root / "source" / CONFIG_NAME).read_text(encoding="utf-8"))
        results = grade_submission(root, config)
    except Exception as error:  # noqa: BLE001 - the student must get a result, and the instructor the reason
        results = failure_results(config, f"the autograder failed ({type(error).__name__}: {error}). This is not a "
                                          "problem with your notebook: tell your instructor.")
    results["execution_time"] = round(time.monotonic() - started, 1)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(format_results(results))
    return 0


# --------------------------------------------------------------------------------------------
# Checking results.json, and the local run


def validate_results(results: Any) -> list[str]:
    """What in ``results`` breaks Gradescope's ``results.json`` specification (empty when nothing does): a number
    ``score`` (or one on every test), tests with a number score and max_score, string name/number/output, a known
    visibility, and a total that is the sum of the tests."""
    if not isinstance(results, dict):
        return ["results.json is not a JSON object"]
    problems = []
    tests = results.get("tests", [])
    if not isinstance(tests, list):
        return ["`tests` is not a list"]
    for i, test in enumerate(tests):
        if not isinstance(test, dict):
            problems.append(f"tests[{i}] is not an object")
            continue
        for key in ("score", "max_score"):
            if key in test and not isinstance(test[key], (int, float)):
                problems.append(f"tests[{i}].{key} is not a number")
        for key in ("name", "number", "output"):
            if key in test and not isinstance(test[key], str):
                problems.append(f"tests[{i}].{key} is not a string")
        if test.get("visibility", "visible") not in VALID_VISIBILITY:
            problems.append(f"tests[{i}].visibility {test['visibility']!r} is not one of {sorted(VALID_VISIBILITY)}")
        if "score" not in test and "score" not in results:
            problems.append(f"tests[{i}] has no score and there is no top-level score")
    if "score" in results:
        if not isinstance(results["score"], (int, float)):
            problems.append("`score` is not a number")
        elif tests and abs(results["score"] - sum(float(t.get("score", 0)) for t in tests if isinstance(t, dict))) > 1e-9:
            problems.append("`score` is not the sum of the tests' scores")
    elif not tests:
        problems.append("neither a `score` nor any tests")
    if not isinstance(results.get("output", ""), str):
        problems.append("`output` is not a string")
    return problems


def format_results(results: dict[str, Any]) -> str:
    """A table of the tests and the total, as the local run prints it."""
    from utils.grade.safe_text import printable

    out = io.StringIO()
    for test in results.get("tests", []):
        line = " ".join(printable(test.get("output", "")).split())
        line = line if len(line) <= 90 else line[:89] + "…"
        number = printable(test.get("number", ""))
        out.write(f"  {number:<6} {test.get('score', 0):>4g}/{test.get('max_score', 0):<4g} {line}\n")
    total = sum(float(t.get("max_score", 0)) for t in results.get("tests", []))
    out.write(f"score: {results.get('score', 0):g}/{total:g}\n")
    if results.get("output"):
        out.write(f"output: {printable(results['output'])}\n")
    return out.getvalue()


def _extract(zip_path: Path, dest: Path) -> None:
    """Unpack ``zip_path`` into ``dest``, keeping the executable bits (zipfile drops them) and refusing members that
    would land outside ``dest``."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            target = (dest / info.filename).resolve()
            if not target.is_relative_to(dest.resolve()):
                raise GradescopeError(f"{zip_path}: member {info.filename!r} points outside the zip's folder")
            archive.extract(info, dest)
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                target.chmod(mode)


@dataclass
class LocalRun:
    """What :func:`run_local` saw."""

    results: dict[str, Any]
    problems: list[str]  # how results.json breaks the specification (empty: valid)
    seconds: float
    peak_rss_mb: float  # the run's process tree (grader + kernel), sampled every 0.2 s
    log: str  # what run_autograder printed (Gradescope keeps it as results/stdout)


def run_local(zip_path: str | os.PathLike[str], submission: str | os.PathLike[str],
              timeout: float = DEFAULT_RUN_TIMEOUT, python: str = sys.executable) -> LocalRun:
    """Run the zip's ``run_autograder`` on ``submission`` (a notebook, or a folder handed in as the submission) in a
    temporary ``/autograder``-like folder, offline, with ``python`` (the installed course venv)."""
    from utils.bench import PeakRssMonitor

    zip_path, submission = Path(zip_path), Path(submission)
    if not zipfile.is_zipfile(zip_path):
        raise GradescopeError(f"{zip_path} is not a zip file: build one with `python -m utils.grade.gradescope build`")
    if not submission.exists():
        raise GradescopeError(f"no such submission: {submission}")
    root = Path(tempfile.mkdtemp(prefix="autograder-"))
    try:
        _extract(zip_path, root / "source")
        script = root / "source" / "run_autograder"
        if not script.is_file():
            raise GradescopeError(f"{zip_path} has no run_autograder at its root: is it a Gradescope autograder zip?")
        shutil.copy2(script, root / "run_autograder")  # where Gradescope puts it
        if submission.is_dir():
            shutil.copytree(submission, root / "submission")
        else:
            (root / "submission").mkdir()
            shutil.copy2(submission, root / "submission" / submission.name)
        (root / "results").mkdir()
        env = {**os.environ, ROOT_ENV: str(root), PYTHON_ENV: python}
        started = time.monotonic()
        process = subprocess.Popen([str(root / "run_autograder")], cwd=root, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        with PeakRssMonitor(process.pid) as monitor:
            try:
                log, _ = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                log, _ = process.communicate()
                log += f"\n(the local run was stopped after {timeout:g} s)"
        seconds = time.monotonic() - started
        results_path = root / "results" / "results.json"
        try:
            results = json.loads(results_path.read_text(encoding="utf-8"))
            problems = validate_results(results)
        except (OSError, ValueError) as error:
            results, problems = {}, [f"no readable results.json ({type(error).__name__}: {error})"]
        return LocalRun(results, problems, seconds, monitor.peak_bytes / 1e6, log)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m utils.grade.gradescope",
                                     description="Build a Gradescope autograder zip from the course's checks, and run "
                                                 "it locally on a submission before uploading it.")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write the autograder zip")
    build.add_argument("--chapter", action="append", required=True, metavar="NN",
                       help="a chapter to grade (repeat for several; one Gradescope assignment per chapter is usual)")
    build.add_argument("--out", type=Path, required=True, metavar="ZIP")
    build.add_argument("--timeout", type=float, metavar="S", help="seconds to run the notebook (default: the grader's)")
    build.add_argument("--memory", type=float, metavar="MB", help="kernel memory cap (default: the grader's)")
    run = sub.add_parser("run", help="run a zip on one submission, offline, with this venv (setup.sh is not run)")
    run.add_argument("zip", type=Path)
    run.add_argument("submission", type=Path, metavar="SUBMISSION", help="a notebook, or a folder as handed in")
    run.add_argument("--results", type=Path, metavar="FILE", help="also write results.json to FILE")
    run.add_argument("--timeout", type=float, default=DEFAULT_RUN_TIMEOUT, metavar="S",
                     help=f"stop the run after S seconds (default {DEFAULT_RUN_TIMEOUT:g})")
    run.add_argument("--verbose", action="store_true",
                     help="print everything run_autograder printed (Gradescope shows it to instructors as stdout)")
    grade = sub.add_parser("autograde", help="(what run_autograder calls) grade ROOT/submission into ROOT/results")
    grade.add_argument("--root", type=Path, default=Path(os.environ.get(ROOT_ENV, DEFAULT_ROOT)))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``build`` / ``run`` / ``autograde``; 0 on success, 1 when a local run's results.json is missing or invalid,
    2 on usage errors."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "autograde":
            return autograde(args.root)
        if args.command == "build":
            print(build_zip(args.chapter, args.out, timeout=args.timeout, memory_mb=args.memory).summary())
            return 0
        print(f"running {args.zip} on {args.submission} offline with {sys.executable} (setup.sh is not run: "
              "this venv stands in for the image it builds) ...", file=sys.stderr, flush=True)
        run = run_local(args.zip, args.submission, args.timeout)
    except GradescopeError as error:
        parser.print_usage(sys.stderr)
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.verbose or run.problems:
        print(run.log, end="" if run.log.endswith("\n") else "\n", file=sys.stderr)
    if run.results:
        print(format_results(run.results), end="")
    print(f"local run: {run.seconds:.0f} s, peak memory {run.peak_rss_mb:,.0f} MB (grader + kernel)")
    if args.results and run.results:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(run.results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if run.problems:
        print("results.json does not follow Gradescope's specification: " + "; ".join(run.problems))
        return 1
    print("results.json follows Gradescope's specification")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
