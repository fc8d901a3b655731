# Two commands on a fresh machine:
#   make lab    build/refresh .venv from environment.yml, copy the chapters into work/ (once), open JupyterLab on
#               work/00_setup_and_tour.ipynb with the repository as its root
#   make test   build/refresh .venv, then run the whole test suite
# Others: make bench (time + memory per notebook), make reference (run the solutions into reference/),
# make notebooks (regenerate chapters/ and
# solutions/ from their sources), make grade SUBMISSIONS=folder/, make clean-venv.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
VPY    := $(VENV)/bin/python
STAMP  := $(VENV)/.course-installed
PORT   ?= 8888
PIP    := $(VPY) -m pip --disable-pip-version-check
# Unreachable extra indexes must fail fast, not retry for minutes.
PIPNET := --retries 1 --timeout 20

.PHONY: lab fresh test test-all bench reference notebooks grade venv clean-venv browser
.PHONY: gradescope
.PHONY: handout

venv: $(STAMP)

# Rebuilt whenever the pins or the package metadata change (a stale venv is refreshed in place).
$(STAMP): environment.yml pyproject.toml utils/pins.py binder/jupyterlab-overrides.json binder/jupyter-server-course.json
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version.split()[0] + ": set PYTHON=/path/to/python3.11"'
	$(PYTHON) -m utils.pins torch > $(VENV)/torch.txt
	$(PYTHON) -m utils.pins requirements > $(VENV)/requirements.txt
	$(PYTHON) -m utils.pins no-deps > $(VENV)/no-deps.txt
	$(PIP) install $(PIPNET) -q -r $(VENV)/torch.txt 2>&1 | grep -v -e '^WARNING: Retrying' -e 'is ignored: it is neither' || true
	$(VPY) -c 'import torch' || { echo "torch failed to install (see above)"; exit 1; }
	$(PIP) install $(PIPNET) -q -r $(VENV)/requirements.txt
	$(PIP) install $(PIPNET) -q --no-deps -r $(VENV)/no-deps.txt
	$(PIP) install -q --no-deps --no-build-isolation -e .
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp binder/jupyterlab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	mkdir -p $(VENV)/etc/jupyter
	cp binder/jupyter-server-course.json $(VENV)/etc/jupyter/jupyter_server_config.json
	$(VPY) -m utils.model --warm-cache
	touch $(STAMP)

# The learner works in work/ (git-ignored copies of chapters/, made once and never overwritten); the server is
# rooted at the repository so solutions/ and the README are one click away.
LAB_OPEN := work/00_setup_and_tour.ipynb
lab: $(STAMP)
	$(VPY) -m utils.workspace
	$(VENV)/bin/jupyter lab --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root) \
	  --ServerApp.root_dir="$(CURDIR)" "--LabApp.default_url=/lab/tree/$(LAB_OPEN)?file-browser-path=/"

# A fresh copy of one chapter in work/ (your old copy is renamed with a time stamp, never deleted): make fresh CHAPTER=03
fresh: $(STAMP)
	$(VPY) -m utils.workspace --fresh $(CHAPTER)

# Debian's Chromium drives the end-to-end browser test (no browser download) and bubblewrap sandboxes graded
# kernels; installed when missing and we are root, otherwise the tests that need them are skipped with the
# reason (outside CI), and `make grade` says how to grade without the sandbox.
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/bwrap || { test "$$(id -u)" = 0 && command -v apt-get >/dev/null && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium bubblewrap >/dev/null) || \
	  echo "note: /usr/bin/chromium or /usr/bin/bwrap missing; the browser and sandbox tests will be skipped"; }

test: $(STAMP) browser
	$(VPY) -m pytest -q --durations=40

# Every case of the sampled tests (tests/sampling.py): make test runs a daily rotating share of a few slow ones.
test-all: $(STAMP) browser
	COURSE_TESTS=all $(VPY) -m pytest -q --durations=40

bench: $(STAMP)
	$(VPY) -m utils.bench

# The solution notebooks run end to end, lean, into reference/ (also a bench run); tests/test_reference.py checks
# they match the current sources.
reference: $(STAMP)
	$(VPY) -m utils.bench --no-load --reference reference
	$(VPY) -m utils.reference --readme

notebooks: $(STAMP)
	$(VPY) -m utils.notebook_build

grade: $(STAMP) browser
	$(VPY) -m utils.grade $(SUBMISSIONS) --json grades/grades.json --csv grades/grades.csv --gradebook grades/gradebook.csv \
	  --log grades/grades.jsonl

# A Gradescope autograder zip for one chapter, built from the course's checks: make gradescope CHAPTER=00; with
# SUBMISSION=notebook.ipynb it also runs the zip on it here, offline, before you upload (docs/INSTRUCTORS.md).
gradescope: $(STAMP)
	@test -n "$(CHAPTER)" || { echo "usage: make gradescope CHAPTER=00 [SUBMISSION=notebook.ipynb]"; exit 2; }
	$(VPY) -m utils.grade.gradescope build --chapter $(CHAPTER) --out grades/gradescope_$(CHAPTER).zip
	$(if $(SUBMISSION),$(VPY) -m utils.grade.gradescope run grades/gradescope_$(CHAPTER).zip $(SUBMISSION))

# A student handout (docs/INSTRUCTORS.md): the chapters' notebooks and the course files, the chapters' reference answers
# not callable by name, the in-notebook checks still working; OUT must be new or empty. make handout OUT=handout
# [CHAPTERS="00 01"] (default: every chapter)
OUT ?= handout
handout: $(STAMP)
	$(VPY) -W "ignore:'utils.grade.student_build' found in sys.modules:RuntimeWarning" -m utils.grade.student_build \
	  --out $(OUT) $(foreach c,$(CHAPTERS),--chapter $(c))

clean-venv:
	rm -rf $(VENV)
