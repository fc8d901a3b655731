"""No submission changes another's grade (issue 24, item 3).

The grader grades one notebook after another in one process, keeping the checks' caches (the course model, SAE,
corpus, ...) from one to the next. These tests play a hostile notebook and then an honest one against the same
caches and check that the honest one is graded as if it came first:

* a learner's function never receives an object the grader keeps: it gets copies (``utils.checks.learner_copy``,
  ``call_checked``), whether it runs in this process or, as in a graded run, in a kernel that sends its changes
  back (the copy-back of changed arguments and of mirrored SAEs, ``utils.grade.remote``);
* ``utils.checks.reset_between_notebooks``, which ``utils.grade.batch.grade_notebook`` calls before each notebook,
  forgets the hooks a kernel reported, removes hooks from the models, reseeds, and drops any kept object an
  earlier notebook managed to change.

The fast tests call the checks directly, in this process; the remote path runs the kernel's half
(``utils.grade.answer.respond``) in this process too (:class:`InProcessKernel`), so no kernel is started. The slow
tests at the end grade real notebooks, sandboxed as a batch would, victim before and after attacker.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch

from sampling import rotating

from utils import checks
from utils.checks import CheckFailure
from utils.grade import remote

ROOT = Path(__file__).resolve().parent.parent


class InProcessKernel:
    """The kernel's half of remote grading (:func:`utils.grade.answer.respond`) run in this process, on a namespace
    that holds the learner's functions: arguments travel as data and changes come back exactly as in a graded run
    (copy-back of lists, dicts and tensors; mirrored SAEs), without starting a kernel. The kernel's "model" fixture
    is this process's course model."""

    def __init__(self, **functions: Any) -> None:
        self.namespace: dict[str, Any] = dict(functions)
        self.handle = remote.RemoteKernel(self.run, timeout=600)

    def run(self, code: str, seconds: float) -> str:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(code, self.namespace)  # noqa: S102 - the grader's own request code, as a kernel would run it
        return printed.getvalue()

    def remote(self, name: str) -> remote.RemoteFunction:
        return remote.RemoteFunction(self.handle, name)


@pytest.fixture(autouse=True)
def clean_state():
    """Each test starts and ends as a new notebook would: reset, and no object left in the kernel's half."""
    from utils.grade import answer

    checks.reset_between_notebooks()
    answer.OBJECTS.clear()
    yield
    answer.OBJECTS.clear()
    checks.reset_between_notebooks()


def quietly(check: Any, fn: Any) -> None:
    """Run a check, swallowing its pass line."""
    with contextlib.redirect_stdout(io.StringIO()):
        check(fn)


def fails(check: Any, fn: Any) -> str:
    with pytest.raises(CheckFailure) as raised:
        quietly(check, fn)
    return str(raised.value)


def same_sae(a: Any, b: Any) -> bool:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return pa.keys() == pb.keys() and all(torch.equal(pa[n].detach(), pb[n].detach()) for n in pa)


# --- chapter 02: the cached corpus, statistics and SAE ------------------------------------------------------------
def empties_everything(latent, model, sae, stats, docs, **kwargs):  # noqa: ANN001, ANN003 - a hostile build_dashboard
    """Empties its corpus, zeroes its SAE and statistics, and returns nothing (a hostile notebook's function)."""
    docs.clear()
    with torch.no_grad():
        for p in sae.parameters():
            p.zero_()
    stats.top_docs.fill_(0)
    stats.doc_ids.clear()
    return None


def empties_docs(tokenizer, stats, docs, latent, n):  # noqa: ANN001 - a hostile peak_token_counts
    docs.clear()
    stats.top_docs.fill_(-1)
    raise IndexError("list index out of range")


def assert_ch02_inputs_pristine() -> None:
    from utils.checks import ch02
    from utils.corpus import load_corpus
    from utils.feature_scan import FeatureStats
    from utils.sae import load_course_sae

    _, sae, stats, docs = ch02._dashboard_inputs()
    assert docs == load_corpus(), "the grader's cached corpus was changed"
    fresh = FeatureStats.load()
    assert torch.equal(stats.top_docs, fresh.top_docs) and stats.doc_ids == fresh.doc_ids
    assert same_sae(sae, load_course_sae()), "the grader's cached SAE was changed"


def victim_ch02() -> None:
    """What the measured victim lost (02.9 by an IndexError, 02.3's cases sampled from the corpus): both work."""
    from utils import named_latents
    from utils.checks import ch02

    quietly(ch02.peak_token_counts, named_latents.peak_token_counts)
    cases = ch02._scan_cases(random.Random(0))
    assert len(cases) == 2 and all(texts for texts, _, _ in cases)


def test_a_hostile_function_called_in_process_changes_only_its_copies() -> None:
    from utils.checks import ch02

    assert "returned None" in fails(ch02.build_dashboard, empties_everything)
    fails(ch02.peak_token_counts, empties_docs)
    assert_ch02_inputs_pristine()
    assert checks.reset_between_notebooks() == []  # nothing kept was changed
    victim_ch02()


def test_a_hostile_function_in_the_kernel_changes_only_the_copies_the_check_sent() -> None:
    """The measured attack: the kernel's changes to the list it was sent (and to its mirrored SAE) are copied back
    into the grader's objects; they are copies now, so the grader's corpus and SAE stay as they were."""
    from utils import named_latents
    from utils.checks import ch02

    kernel = InProcessKernel(build_dashboard=empties_everything, peak_token_counts=empties_docs)
    assert "returned None" in fails(ch02.build_dashboard, kernel.remote("build_dashboard"))
    fails(ch02.peak_token_counts, kernel.remote("peak_token_counts"))
    assert_ch02_inputs_pristine()
    assert checks.reset_between_notebooks() == []
    victim = InProcessKernel(peak_token_counts=named_latents.peak_token_counts)  # the next notebook
    quietly(ch02.peak_token_counts, victim.remote("peak_token_counts"))
    victim_ch02()


def test_even_a_check_that_handed_out_the_kept_corpus_is_protected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: were a check to hand out the object it keeps (learner_copy disabled here), the remote
    copy-back and mirror sync still never write into it; and in this process, where nothing can stop the learner's
    code, reset_between_notebooks notices the change and drops the caches, so the next notebook gets fresh ones."""
    from utils.checks import ch02

    monkeypatch.setattr(ch02, "learner_copy", lambda obj: obj)
    kernel = InProcessKernel(build_dashboard=empties_everything)
    fails(ch02.build_dashboard, kernel.remote("build_dashboard"))
    assert_ch02_inputs_pristine()
    assert checks.reset_between_notebooks() == []

    fails(ch02.build_dashboard, empties_everything)  # called here: the kept objects themselves are emptied
    assert ch02._dashboard_inputs()[3] == []
    found = checks.reset_between_notebooks()
    assert any("ch02" in line and "changed" in line for line in found), found
    assert ch02._dashboard_inputs.cache_info().currsize == 0
    monkeypatch.undo()
    assert_ch02_inputs_pristine()  # loaded afresh
    victim_ch02()


# The checks whose arguments are now copies (or deep copies, through call_checked): the references still pass, in
# this process and through the remote path. (03.5's copied clamp hook is exercised by tests/test_checks_ch03.py.)
COPIED = [("00", "mean_difference_direction"), ("00", "resid_at_layer"), ("01", "reconstruction_metrics"),
          ("01", "spliced_ce"), ("02", "build_dashboard"), ("04", "compliance_gap")]


@pytest.mark.parametrize(("chapter", "name"), COPIED)
def test_the_references_still_pass_on_the_copies(chapter: str, name: str) -> None:
    import importlib

    reference = importlib.import_module(f"test_checks_ch{chapter}").REFERENCE[name]
    check = getattr(importlib.import_module(f"utils.checks.ch{chapter}"), name)
    quietly(check, reference)
    quietly(check, InProcessKernel(**{name: reference}).remote(name))
    assert checks.reset_between_notebooks() == []


# --- the copy-back and the mirror sync never write into a kept object ---------------------------------------------
def small_sae() -> Any:
    from utils.sae import SAEConfig, SparseAutoencoder

    return SparseAutoencoder(SAEConfig(d_in=4, d_sae=8, architecture="topk", k=2, hook_name="check", hook_layer=0),
                             seed=0)


def test_the_mirror_sync_never_writes_into_a_kept_sae() -> None:
    kept, mine = small_sae(), small_sae()
    checks.keep("test SAE", kept)
    before = {n: p.detach().clone() for n, p in kept.named_parameters()}
    handle = remote.RemoteKernel(lambda code, seconds: "", timeout=1)
    kept_key = handle._sae_ref(kept)[1]["key"]
    mine_key = handle._sae_ref(mine)[1]["key"]
    zeros = {n: torch.zeros_like(p) for n, p in kept.named_parameters()}
    handle._apply_mirrors({kept_key: {"state": zeros, "replaced": []}, mine_key: {"state": zeros, "replaced": []}})
    assert all(torch.equal(p.detach(), before[n]) for n, p in kept.named_parameters())
    assert kept_key not in handle._kernel_has  # out of step: the next call sends the grader's parameters again
    assert handle._sae_ref(kept)[1]["state"] is not None
    assert all(not p.detach().any() for p in mine.parameters())  # a check's own copy still sees the learner's change


def test_the_copy_back_never_writes_into_a_kept_list_dict_or_tensor() -> None:
    kept_list, kept_dict, kept_tensor = ["a", "b"], {"k": 1}, torch.ones(3)
    checks.keep("test objects", (kept_list, kept_dict, kept_tensor))
    mine = ["a", "b"]
    remote._copy_back((kept_list, kept_dict, kept_tensor, mine), [[], {}, torch.zeros(3), []])
    assert kept_list == ["a", "b"] and kept_dict == {"k": 1} and torch.equal(kept_tensor, torch.ones(3))
    assert mine == []


# --- copies handed to the learner ---------------------------------------------------------------------------------
def test_call_checked_hands_out_deep_copies_and_still_reports_changes() -> None:
    records = [{"id": "a", "tier": "free"}, {"id": "b", "tier": "paid"}]
    options = {"z": [1.96]}

    def meddles(records, options):  # noqa: ANN001
        records[0]["tier"] = "paid"
        options["z"].append(0)
        return len(records)

    out, changed = checks.call_checked(meddles, ("records", "options"), records, options)
    assert out == 2 and changed == ["records"]
    assert records == [{"id": "a", "tier": "free"}, {"id": "b", "tier": "paid"}] and options == {"z": [1.96]}
    out, changed = checks.call_checked(lambda xs: None, ("xs",), [torch.ones(2), [torch.zeros(1)]])
    assert changed == []  # lists of tensors compare by value


def test_learner_copy_copies_saes_and_rebuilds_recipes_but_never_copies_a_model(model: Any) -> None:
    from utils.checks import ch03

    checks.track_model(model)
    assert checks.learner_copy(model) is model
    pair = checks.learner_copy([model, model.tokenizer])
    assert pair[0] is model and pair[1] is model.tokenizer
    (name, recipe), = ch03._rate_hooks()
    (name_copy, recipe_copy), = checks.learner_copy(ch03._rate_hooks())
    assert name_copy == name and recipe_copy is not recipe and recipe_copy._made is None
    assert recipe_copy.args[0] is not ch03._course_sae() and same_sae(recipe_copy.args[0], ch03._course_sae())
    assert recipe_copy.args[1:] == recipe.args[1:]
    assert checks.is_kept(ch03._course_sae()) and not checks.is_kept(recipe_copy.args[0])


# --- hooks: what a kernel reported, and hooks on the models --------------------------------------------------------
def leaves_a_hook(model, tokens, layer):  # noqa: ANN001 - a hostile chapter-00 resid_at_layer
    model.blocks[layer].hook_resid_post.add_hook(lambda act, hook: act)
    return torch.zeros(*tokens.shape, model.cfg.d_model)


def test_hooks_a_chapter_00_notebook_left_do_not_fail_the_next_chapter_05_notebook(model: Any) -> None:
    """The measured attack: a chapter-00 function leaves a hook in its kernel; the kernel removes and reports it,
    and the report stayed in a module-level list that only chapter 05 reads: a later, honest chapter-05 notebook
    failed 05.1 ("before the check ran, the model already had hooks"). The reset between notebooks forgets it."""
    from utils.checks import ch00, ch05

    kernel = InProcessKernel(resid_at_layer=leaves_a_hook)
    fails(ch00.resid_at_layer, kernel.remote("resid_at_layer"))
    assert checks._KERNEL_HOOKS_LEFT, "the attack left no report: it is not the measured one"
    checks.reset_between_notebooks()
    assert checks.take_kernel_hooks_left() == []
    ch05._no_hooks_before(checks.course_model())  # 05.1's first step: no failure


def test_hooks_left_on_the_graders_model_are_removed_between_notebooks(model: Any) -> None:
    checks.track_model(model)
    model.blocks[2].hook_resid_post.add_hook(lambda act, hook: act)
    checks.note_kernel_hooks_left(["blocks.3.hook_resid_post"])
    found = checks.reset_between_notebooks()
    assert any("had hooks attached" in line for line in found) and any("kernel" in line for line in found)
    assert checks._hooked(model) == [] and checks.take_kernel_hooks_left() == []
    assert checks.reset_between_notebooks() == []


def test_open_watches_are_closed_between_notebooks(model: Any) -> None:
    watch = checks.counting_block_calls(model)
    watch.__enter__()  # never exited: a check interrupted half-way
    assert checks.open_watches()
    checks.reset_between_notebooks()
    assert checks.open_watches() == [] and not watch._handles
    assert not any(block._forward_hooks for block in model.blocks)


def test_a_models_changed_weights_are_noticed_and_it_is_loaded_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracked model whose weights changed is dropped, with every cache of the checks and of the model loaders (the
    loaders are stubbed here, so that the session's model stays loaded for the other tests)."""
    from types import SimpleNamespace

    from utils import model as model_module

    cleared = []
    for name in ("load_model", "load_organism"):
        monkeypatch.setattr(model_module, name, SimpleNamespace(cache_clear=lambda name=name: cleared.append(name)))

    class Tiny(torch.nn.Module):
        hook_dict: dict = {}

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3, 5))

        def reset_hooks(self) -> None:
            pass

    tiny = checks.track_model(Tiny())
    assert checks.reset_between_notebooks() == []
    tiny.w.data.mul_(2)  # through .data: no version bump
    found = checks.reset_between_notebooks()
    assert "a model's weights had changed" in found
    assert sorted(cleared) == ["load_model", "load_organism"] and tiny not in checks._MODELS


def test_the_seeds_are_reset_for_each_notebook() -> None:
    checks.reset_between_notebooks()
    first = (random.random(), torch.rand(3))
    torch.rand(100)
    random.random()
    checks.reset_between_notebooks()
    again = (random.random(), torch.rand(3))
    assert first[0] == again[0] and torch.equal(first[1], again[1])


def test_the_batch_resets_before_each_notebook(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from utils.grade import batch

    calls = []
    monkeypatch.setattr(checks, "reset_between_notebooks", lambda: calls.append(1) or [])
    monkeypatch.setattr(batch, "_grade_executable", lambda nb, copy, chapter, exercises, *a, **k:
                        ([(False, "not run") for _ in exercises], ""))
    notebook = tmp_path / "someone_00.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    batch.grade_notebook(notebook)
    batch.grade_notebook(notebook)
    assert len(calls) == 2


# --- the real grader: a victim graded before and after an attacker, in one process (slow; kernels) ----------------
SOLVED = ROOT / "solutions"
STUBS = ROOT / "chapters"

ZERO_EVERY_MIRRORED_SAE = '''
import utils.grade.answer as _answer
import torch as _torch

def _spoil():
    with _torch.no_grad():
        for _obj in list(_answer.OBJECTS.values()):
            if type(_obj).__name__ == "SparseAutoencoder":
                for _p in _obj.parameters():
                    _p.zero_()
'''

ATTACKERS = {
    # the measured one: a function that empties its input list (and spoils the SAE and statistics it is given)
    "02": ("02_finding_features.ipynb", '''
def build_dashboard(latent, model, sae, stats, docs, **kwargs):
    docs.clear()
    with torch.no_grad():
        for p in sae.parameters():
            p.zero_()
    stats.top_docs.fill_(-1)
    return None

def peak_token_counts(tokenizer, stats, docs, latent, n):
    docs.clear()
    raise IndexError("list index out of range")

def scan_density(model, sae, texts, batch_size=32, max_len=64):
    texts.clear()
    with torch.no_grad():
        sae.W_enc.zero_()
    raise ValueError("spoilt")
'''),
    # every function zeroes every SAE the kernel mirrors (the mirror sync copies changes back) and leaves a hook
    "03": ("03_steering.ipynb", ZERO_EVERY_MIRRORED_SAE + '''
def clamp_hook(sae, latent, value):
    _spoil()
    return lambda act, hook=None: act

def output_score(model, sae, latent, added_norm, prompts):
    _spoil()
    model.blocks[3].hook_resid_post.add_hook(lambda act, hook: act)
    return 0.0

def steering_rate(model, questions, judge, hooks=()):
    _spoil()
    for _, h in hooks:
        if hasattr(h, "args"):
            with torch.no_grad():
                for p in h.args[0].parameters():
                    p.zero_()
    raise ValueError("spoilt")
'''),
    # the measured one: chapter 00 leaves hooks attached in its kernel; the victim is a chapter-05 notebook
    "05": ("00_setup_and_tour.ipynb", '''
def resid_at_layer(model, tokens, layer):
    model.blocks[layer].hook_resid_post.add_hook(lambda act, hook: act)
    return torch.zeros(*tokens.shape, model.cfg.d_model)

def greedy_decode(model, prompt, n_new):
    model.blocks[0].hook_resid_pre.add_hook(lambda act, hook: act)
    raise ValueError("spoilt")
'''),
}

# Each victim keeps the chapter's first code cell (imports, model, SAE) and the solved cells that define the
# exercises an attacker spoils; the chapter's other exercises are "not defined" both times. Whole solved notebooks
# would take ~25 min to grade three times each; these take a few minutes.
VICTIMS = {
    "02": ("02_finding_features.ipynb", ("context_window", "scan_density", "logit_effects", "build_dashboard",
                                         "peak_token_counts")),  # the dashboard calls the learner's 02.2 and 02.4
    "03": ("03_steering.ipynb", ("clamp_hook", "output_score", "steering_rate")),
    "05": ("05_inside_the_faker.ipynb", ("last_position_residuals", "ablate_hook")),
}


def small_notebook(source: Path, names: tuple[str, ...], extra: str, path: Path) -> Path:
    """``source`` cut to its first code cell and the code cells that define one of ``names`` (``def name(``),
    followed by a cell holding ``extra`` (if any); written to ``path``."""
    import re

    nb = json.loads(source.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    kept = [code[0]] + [c for c in code[1:] if any(re.search(rf"^def {n}\(", "".join(c["source"]), re.M)
                                                   for n in names)]
    assert len(kept) == len(names) + 1 or not names, f"{source.name}: did not find a cell for each of {names}"
    if extra:
        kept.append({"cell_type": "code", "execution_count": None, "id": "attack", "metadata": {}, "outputs": [],
                     "source": "import torch\n" + extra})
    nb["cells"] = [{**c, "outputs": [], "execution_count": None} for c in kept]
    path.write_text(json.dumps(nb))
    return path


def attacker_notebook(tmp_path: Path, chapter: str) -> Path:
    stub, code = ATTACKERS[chapter]
    return small_notebook(STUBS / stub, (), code, tmp_path / f"attacker_{stub}")


@pytest.mark.slow
@pytest.mark.parametrize("chapter", rotating(sorted(VICTIMS), keep=1, salt="victims"))  # one chapter a day (sampling.py)
def test_a_victim_graded_after_an_attacker_gets_the_same_grade(tmp_path: Path, chapter: str) -> None:
    """Grade a solved notebook of a chapter with state (02, 03, 05), then a hostile notebook, then the solved one
    again, in one process and sandboxed as a batch runs them: the victim's records are the same both times."""
    import os

    from utils.grade import batch, sandbox

    why = sandbox.unavailable()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why + " -- required under CI")
        pytest.skip(why)
    stem, names = VICTIMS[chapter]
    victim = small_notebook(SOLVED / stem, names, "", tmp_path / f"victim_{stem}")
    isolation = batch.Isolation(sandboxed=True)

    def grade(path: Path) -> list[Any]:
        return batch.grade_notebook(path, timeout=1200, check_timeout=600, isolation=isolation)

    before = grade(victim)
    assert {r.name for r in before if r.passed} == set(names), [(r.exercise, r.message) for r in before]
    attacked = grade(attacker_notebook(tmp_path, chapter))
    assert not any(r.passed for r in attacked if f"def {r.name}(" in ATTACKERS[chapter][1])
    after = grade(victim)
    assert [(r.exercise, r.passed) for r in after] == [(r.exercise, r.passed) for r in before], \
        [(r.exercise, r.message) for r in after if not r.passed]
