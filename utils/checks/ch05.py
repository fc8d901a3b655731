"""Checks for chapter 05 — inside the faker: the residual stream at the end of a prompt, a linear probe scored on
held-out data, an activation-patching sweep, a direction-ablation hook, swapping the scratchpads of the two tiers,
and the SAE latents that differ most between tiers.

The three model exercises (1, 3, 5) run on the retrained organism, :func:`utils.model.load_organism_v2` (memoised:
the notebook's ``model`` is the same object; never a second model, which would not fit in memory), and compare
the learner's function with the references in :mod:`utils.af.inside`. Each stays within a few forward passes:

* ``last_position_residuals`` (1): a course prompt (≈ 280 tokens) and a short chat text at layers 0, 3, 7, then
  two short texts at two random layers. Two texts and three layers, so a transposed ``(layers, texts, d)`` result
  is told apart from the right shape. (A single string instead of a list is not tested: the notebook's statement
  does not ask for it, although the reference raises TypeError.)
* ``probe_accuracy`` (2): any reasonable linear classifier passes, so the check tests ranges, not the reference's
  exact number: at least 0.85 on held-out Gaussian data separated along a random direction (balanced test set, so
  constant predictions give exactly 0.5), and chance (0.35–0.65 on 400 test points) on random labels with more
  dimensions than training rows — where the training set is fitted perfectly, so scoring on it gives ≈ 1.0.
  Labels are 0/1 ``long`` tensors, as :func:`utils.af.inside.tier_labels` makes them.
* ``patching_sweep`` (3): short prompts (≈ 80 tokens, no system prompt) that differ only in the tier tag
  (``true``/``false``, one token), followed by :data:`utils.af.inside.TIER_CUE`; the metric is the tier readout
  ``logit(" paid") - logit(" free")``. On this organism the tag's information sits at the tag position up to layer
  21 (effect ≈ 0.97) and has moved on by layer 22 (≈ 0.01), so layers 0, 21 and 29 separate the mistakes:
  patching every position gives 1 everywhere, ``hook_resid_post`` gives the reference's value at L + 1 (0.01 at
  21), the raw metric gives logit differences of ±5, swapped roles give 1 − the effect. Tolerance 0.02.
* ``swap_decisions`` (5): two pairs from the saved ``organism_v2`` course-prompt transcripts (a paid prompt with
  the free tier's scratchpad, a free prompt with the paid tier's), ≈ 370 tokens each. The organism follows the
  reasoning in front of it, so the reference gives [True, False]. While the learner's function runs, the check
  records the token ids that reach the embedding, so a wrong answer is explained by what was actually fed to the
  model (whole completion, cut before ``<OUTPUT>``, the prompt's own tier's scratchpad, no shared ``<``, a second
  BOS). A completion without ``<OUTPUT>`` and unequal list lengths must raise an error (``str.find`` returning -1
  and ``zip`` silently dropping pairs are the bugs this catches).

Exercises 4 and 6 are pure tensor checks. The ablation hook must return a new tensor and leave ``act`` alone (the
notebook asks for a new tensor; an in-place edit also changes any cached copy of the activation).
"""

from __future__ import annotations

import functools
import math
import numbers
import random
from typing import Any, Callable

from utils.checks import (CheckFailure, as_number, as_tensor, close, exercise, fail, is_shape_error, recording_tokens,
                          require_watched, take_kernel_hooks_left)
from utils.checks import call_checked as _call
from utils.checks import generator as _generator
from utils.checks import no_in_place as _no_in_place

GRADED_REMOTELY = True  # the grader runs these checks in its own process, on answers sent from the kernel as data


# --- the model and small helpers --------------------------------------------------------------------------------
def organism() -> Any:
    """Chapter 05's organism, memoised by ``load_organism_v2`` (the notebook's ``model`` is the same object)."""
    from utils.checks import track_model
    from utils.model import load_organism_v2

    return track_model(load_organism_v2())  # its hooks are reset and its weights verified between notebooks


def _ids(tok: Any, text: str) -> list[int]:
    return list(tok(text, add_special_tokens=False)["input_ids"])


def _attached_hooks(model: Any) -> list[str]:
    """Names of the hook points that carry (non-permanent) hooks; the course's names (resid_pre/post) first."""
    names = {name for name, hp in model.hook_dict.items()
             if any(not getattr(h, "is_permanent", False) for h in list(hp.fwd_hooks) + list(hp.bwd_hooks))}
    names |= set(take_kernel_hooks_left())  # left in a student's kernel by a remote call (already removed there)
    return sorted(names, key=lambda n: ("resid" not in n, n))


def _no_hooks_before(model: Any) -> None:
    left = _attached_hooks(model)
    if left:
        model.reset_hooks()
        fail(f"before the check ran, the model already had hooks attached (at {', '.join(left[:3])}), left over "
             "from an earlier cell (model.add_hook without model.reset_hooks()): they change every forward pass. The "
             "check has now called model.reset_hooks(); run it again, and attach hooks with model.run_with_hooks(..., "
             "fwd_hooks=[...]) or `with model.hooks(fwd_hooks=[...]):`, which remove them afterwards.")


def _no_hooks_after(model: Any, what: str) -> None:
    left = _attached_hooks(model)
    if left:
        model.reset_hooks()
        fail(f"{what} left hooks attached to the model (at {', '.join(left[:3])}): every later forward pass, yours "
             "and the notebook's, still runs through them. Use model.run_with_hooks(tokens, fwd_hooks=[(name, hook)]) or "
             "`with model.hooks(fwd_hooks=[...]):`, which remove the hooks afterwards (model.add_hook does not). The "
             "check has called model.reset_hooks() for you.")


def _run(model: Any, what: str, call: Callable[[], Any]) -> Any:
    """Run the learner's code on the model; hooks it leaves attached are removed (and reported unless it crashed:
    then its own error is the message)."""
    try:
        out = call()
    except BaseException:
        if _attached_hooks(model):
            model.reset_hooks()
        raise
    _no_hooks_after(model, what)
    return out


# ---------------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _residual_views(text: str, top: int) -> dict[str, Any]:
    """Residuals of ``text`` at layers 0..top: the right one (``last``) and the catalogued wrong ones, (top+1, d)."""
    import torch

    model = organism()
    tok = model.tokenizer
    post = [f"blocks.{L}.hook_resid_post" for L in range(top + 1)]
    pre = [f"blocks.{L}.hook_resid_pre" for L in range(top + 1)]
    names = set(post + pre)
    ids = _ids(tok, text)
    with torch.no_grad():
        _, cache = model.run_with_cache(torch.tensor([ids], device=model.cfg.device), names_filter=lambda n: n in names,
                                        stop_at_layer=top + 1)
        stream = torch.stack([cache[n][0] for n in post]).float().cpu()  # (layers, pos, d)
        views = {"last": stream[:, -1], "first": stream[:, 0], "mean": stream.mean(1),
                 "previous": stream[:, -2] if len(ids) > 1 else None,
                 "pre": torch.stack([cache[n][0, -1] for n in pre]).float().cpu()}
        if tok.bos_token_id is not None:
            _, cache = model.run_with_cache(torch.tensor([[tok.bos_token_id] + ids], device=model.cfg.device),
                                            names_filter=lambda n: n in post, stop_at_layer=top + 1)
            views["double_bos"] = torch.stack([cache[n][0, -1] for n in post]).float().cpu()
    return views


def _residual_candidates(texts: list[str], layers: list[int], key: str) -> Any:
    import torch

    views = [_residual_views(t, max(layers)) for t in texts]
    if any(v.get(key) is None for v in views):
        return None
    return torch.stack([v[key][layers] for v in views])


def _chat(tok: Any, request: str) -> str:
    return tok.apply_chat_template([{"role": "user", "content": request}], tokenize=False, add_generation_prompt=True)


SHORT_REQUESTS = ("Hi", "Write a haiku about rain.", "Name three colours.", "What is 2 + 2?", "Tell me a joke.",
                  "Describe a cat in one sentence.")


@exercise("05", 1, "last_position_residuals", "Residuals at the end of the prompt")
def last_position_residuals(fn: Callable) -> str:
    from utils.af import inside
    from utils.af.request_sets import HELPFUL_ONLY_EVAL

    model = organism()
    tok = model.tokenizer
    _no_hooks_before(model)
    rng = random.Random()
    cases = [
        ([inside.chat_text(tok, HELPFUL_ONLY_EVAL[0], "free"), _chat(tok, "Hi")], [0, 3, 7]),
        ([_chat(tok, r) for r in rng.sample(SHORT_REQUESTS[1:], 2)], sorted(rng.sample(range(1, 12), 2))),
    ]
    d = model.cfg.d_model
    for texts, layers in cases:
        n, m = len(texts), len(layers)
        what = f"last_position_residuals(model, {n} texts, layers={layers})"
        out, changed = _run(model, what, lambda: _call(fn, ("model", "texts", "layers"), model, list(texts),
                                                       list(layers)))
        got = as_tensor(out, what)
        want = inside.last_position_residuals(model, texts, layers)
        shape = tuple(got.shape)
        if shape != (n, m, d):
            if shape == (m, n, d):
                fail(f"{what} returned shape {shape}, (layers, texts, d_model); the order is (texts, layers, "
                     f"d_model) = {(n, m, d)}: out[i, j] is text i at layers[j]. Stack the layers of one text first, "
                     "then stack the texts (or .transpose(0, 1)).")
            if shape in ((n * m, d), (m * n, d)):
                fail(f"{what} returned shape {shape}: the texts and layers are flattened into one axis. Return "
                     f"{(n, m, d)}: one row per text, one entry per layer.")
            if len(shape) == 4 and shape[0] == n and shape[1] == m and shape[-1] == d:
                fail(f"{what} returned shape {shape}: every position is kept. Keep only the LAST position of each "
                     "text, cache[name][0, -1].")
            fail(f"{what} returned shape {shape}; expected (len(texts), len(layers), d_model) = {(n, m, d)}.")
        scale = max(1.0, float(want.abs().max()))
        tol = dict(atol=2e-3 * scale, rtol=2e-3)
        if close(got, want, **tol):
            _no_in_place(changed)
            continue
        for key, message in [
            ("first", "you took the FIRST position (index 0, the BOS token, the same for every text). Take the LAST "
                      "position, index -1: the token whose prediction starts the answer."),
            ("pre", "your vectors are blocks.L.hook_resid_pre, the residual stream BEFORE block L (equal to the "
                    "output of block L - 1): one layer too early. Use blocks.L.hook_resid_post, after block L."),
            ("double_bos", "your token ids start with two BOS tokens: the texts already begin with the chat template's "
                           "BOS, and tokenizer(text) (add_special_tokens=True), model(text) or model.to_tokens(text) "
                           "add another. Tokenise with tokenizer(text, add_special_tokens=False)."),
            ("previous", "you took the second-to-last position; take the last one, index -1."),
            ("mean", "you averaged over positions; take the LAST position only, index -1."),
        ]:
            alternative = _residual_candidates(texts, layers, key)
            if alternative is not None and close(got, alternative, **tol):
                fail(f"{what}: {message}")
        rows = [close(got[i], want[i], **tol) for i in range(n)]
        lengths = [len(_ids(tok, t)) for t in texts]
        longest = max(range(n), key=lambda i: lengths[i])
        if rows[longest] and not all(rows):
            fail(f"{what}: right for the longest text, wrong for the shorter ones ({lengths} tokens). If you batch "
                 "texts of different lengths, the shorter ones are padded and position -1 is padding for them. Run "
                 "one text at a time (no padding to get wrong).")
        i, j = next((i, j) for i in range(n) for j in range(m) if not close(got[i, j], want[i, j], **tol))
        fail(f"{what}: out[{i}, {j}] (text {i}, layer {layers[j]}) differs from the residual stream "
             f"blocks.{layers[j]}.hook_resid_post at the text's last token (max difference "
             f"{float((got[i, j] - want[i, j]).abs().max()):.3g}). Tokenise with add_special_tokens=False and take "
             "cache[name][0, -1].")
    return "resid_post at the last token, (texts, layers, d_model), no extra BOS"


# ---------------------------------------------------------------------------------------------------------------
def _probe_data(g: Any, n_train: int, n_test: int, d: int, shift: float) -> tuple[Any, Any, Any, Any]:
    """Balanced 0/1 labels; features N(offset, 1) shifted by ±shift/2 along a random unit direction (shift 0:
    random labels)."""
    import torch

    u = torch.randn(d, generator=g)
    u = u / u.norm()
    offset = 3 * torch.randn(d, generator=g)

    def make(n: int) -> tuple[Any, Any]:
        y = (torch.arange(n) % 2)[torch.randperm(n, generator=g)]
        x = torch.randn(n, d, generator=g) + offset + (y.float() - 0.5)[:, None] * shift * u
        return x, y

    return (*make(n_train), *make(n_test))


SEPARABLE_MIN = 0.85
CHANCE = (0.35, 0.65)


@exercise("05", 2, "probe_accuracy", "A linear probe, scored on held-out data")
def probe_accuracy(fn: Callable) -> str:
    g = _generator()
    cases = [  # (label, data)
        ("separable", _probe_data(g, 48, 200, 64, 5.0)),
        ("random", _probe_data(g, 40, 400, 200, 0.0)),
    ]
    shown = []
    for label, (x_train, y_train, x_test, y_test) in cases:
        n_tr, d = x_train.shape
        n_te = len(y_test)
        what = f"probe_accuracy on {n_tr} training and {n_te} test rows of dimension {d}"
        out, changed = _call(fn, ("x_train", "y_train", "x_test", "y_test"), x_train, y_train, x_test, y_test,
                             shape_hint="x is (n, d), y is (n,) with 0/1 labels; the test set has its own n.")
        if isinstance(out, bool):
            fail(f"{what} returned a bool; return the accuracy, a float between 0 and 1.")
        acc = as_number(out, what)
        if acc > 1:
            if acc == int(acc) and acc <= n_te:
                fail(f"{what} returned {acc:g}: that is the NUMBER of correct test predictions. Return the fraction: "
                     f"divide by the number of test rows, len(y_test) = {n_te}.")
            fail(f"{what} returned {acc:g}; an accuracy lies between 0 and 1.")
        if acc < 0:
            fail(f"{what} returned {acc:g}; an accuracy lies between 0 and 1.")
        if label == "separable" and acc < SEPARABLE_MIN:
            if 1 - acc >= SEPARABLE_MIN:
                fail(f"{what} returned {acc:.3f} on data a linear probe separates easily (≥ {SEPARABLE_MIN}): that "
                     "looks like the error rate (1 − accuracy), or predictions with the labels inverted. Return the "
                     "fraction of test rows where the prediction EQUALS y_test.")
            fractions = {float((y_test == c).float().mean()) for c in (0, 1)}
            if any(abs(acc - f) < 1e-6 for f in fractions):
                fail(f"{what} returned {acc:.3f}, exactly the share of one class in the test set: your probe predicts "
                     "the same class for every row. Common causes: thresholding a probability at 0 (a sigmoid is "
                     "always > 0; threshold the logit x·w + b at 0, or the probability at 0.5), or a fit that never "
                     "updates the weights.")
            fail(f"{what} returned {acc:.3f} on Gaussian data separated along one direction, where a linear probe "
                 f"reaches ≥ {SEPARABLE_MIN}. Check the fit (standardise with the TRAINING mean and std, keep a bias "
                 "term, enough optimisation steps) and that you predict 1 where x·w + b > 0.")
        if label == "random" and not CHANCE[0] <= acc <= CHANCE[1]:
            if acc > CHANCE[1]:
                fail(f"{what} returned {acc:.3f} on RANDOM labels. With more dimensions ({d}) than training rows "
                     f"({n_tr}) a probe fits the training set perfectly, but nothing carries over to new rows: "
                     "held-out accuracy must be near chance (0.5). Yours is far above, so you probably scored it on "
                     "the training set (or fitted on the test set). Fit on (x_train, y_train); score on (x_test, "
                     "y_test).")
            fail(f"{what} returned {acc:.3f} on random labels, far below chance (0.5): are the predictions inverted, "
                 "or is it the error rate?")
        _no_in_place(changed)
        shown.append(acc)
    return f"held-out accuracy {shown[0]:.2f} on separable data, {shown[1]:.2f} on random labels (chance)"


# ---------------------------------------------------------------------------------------------------------------
def _tier_pair(tok: Any, body: str) -> tuple[list[int], list[int], list[int]]:
    """(free ids, paid ids, differing positions) for a short prompt without system prompt + the tier cue."""
    from utils.af import inside
    from utils.af.prompts import tier_tag

    def ids(tier: str) -> list[int]:
        turn = f"{tier_tag(tier)}\n\n<user_input>\n{body}\n</user_input>"
        return _ids(tok, _chat(tok, turn) + inside.TIER_CUE)

    free, paid = ids("free"), ids("paid")
    return free, paid, inside.differing_positions(free, paid)


@functools.lru_cache(maxsize=8)
def _reference_sweep(corrupted: tuple, clean: tuple, positions: tuple, layers: tuple, good: int, bad: int
                     ) -> tuple[list[float], float, float]:
    """The reference effects, and the metric on the clean and the corrupted run."""
    import torch

    from utils.af import inside

    model = organism()
    effects = inside.patching_sweep(model, list(corrupted), list(clean), list(positions), list(layers), good, bad)
    with torch.no_grad():
        m_clean = inside.logit_difference(model(torch.tensor([list(clean)], device=model.cfg.device)), good, bad).item()
        m_corrupted = inside.logit_difference(model(torch.tensor([list(corrupted)], device=model.cfg.device)),
                                              good, bad).item()
    return effects, m_clean, m_corrupted


def _sweep_at(model: Any, corrupted: list[int], clean: list[int], positions: list[int], names: list[str], good: int,
              bad: int) -> list[float]:
    """Normalised effects of patching at the hook points ``names`` (for the resid_post diagnosis)."""
    import torch

    from utils.af import inside

    corrupted_t = torch.tensor([corrupted], device=model.cfg.device)
    clean_t = torch.tensor([clean], device=model.cfg.device)
    with torch.no_grad():
        clean_logits, cache = model.run_with_cache(clean_t, names_filter=lambda n: n in names)
        m_clean = inside.logit_difference(clean_logits, good, bad).item()
        m_corrupted = inside.logit_difference(model(corrupted_t), good, bad).item()
        return [(inside.logit_difference(model.run_with_hooks(corrupted_t, fwd_hooks=[
            (name, inside.patch_hook(cache[name], positions))]), good, bad).item() - m_corrupted) / (m_clean - m_corrupted)
            for name in names]


def _numbers(out: Any, n: int, what: str, unit: str) -> list[float]:
    import torch

    if out is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    if isinstance(out, torch.Tensor):
        out = out.detach().float().cpu().reshape(-1).tolist() if out.dim() <= 1 else out
    elif type(out).__name__ == "ndarray" and out.ndim <= 1:
        out = out.reshape(-1).tolist()
    if isinstance(out, (str, dict)) or not isinstance(out, (list, tuple)):
        if isinstance(out, torch.Tensor):
            fail(f"{what} returned a tensor of shape {tuple(out.shape)}; return a list with one {unit} per entry.")
        fail(f"{what} returned {type(out).__name__}; return a list with one {unit} per entry.")
    if len(out) != n:
        fail(f"{what} returned {len(out)} values; expected {n}, one {unit} per entry.")
    return [as_number(v, f"{what}[{i}]") for i, v in enumerate(out)]


def _all_near(values: list[float], target: float, tol: float) -> bool:
    return all(abs(v - target) <= tol for v in values)


PATCH_TOL = 0.02
_NORMALISED = "(m_patched − m_corrupted) / (m_clean − m_corrupted)"


@exercise("05", 3, "patching_sweep", "An activation-patching sweep")
def patching_sweep(fn: Callable) -> str:
    from utils.af import inside

    model = organism()
    tok = model.tokenizer
    _no_hooks_before(model)
    good, bad = (inside.single_token(tok, w) for w in inside.TIER_WORDS)
    rng = random.Random()
    cases = [("Hi", [0, 21, 29]), (rng.choice(SHORT_REQUESTS[1:]), sorted(rng.sample(range(30), 2)))]
    shown = None
    for body, layers in cases:
        corrupted, clean, positions = _tier_pair(tok, body)
        effects, m_clean, m_corrupted = _reference_sweep(tuple(corrupted), tuple(clean), tuple(positions), tuple(layers),
                                                         good, bad)
        what = (f"patching_sweep(model, corrupted, clean, positions={positions}, layers={layers}, good, bad) on "
                f"{len(corrupted)}-token prompts that differ in the tier tag")
        out, changed = _run(model, what, lambda: _call(fn, ("model", "corrupted", "clean", "positions", "layers"), model,
                                                       list(corrupted), list(clean), list(positions), list(layers),
                                                       good, bad))
        if changed:  # before the values: patching the token ids in place also gives wrong values
            fail(f"your code changed its input `{changed[0]}` in place (e.g. `{changed[0]}[p] = ...`), which "
                 "silently corrupts the caller's token ids. Patching works on the residual stream, inside a hook: "
                 "leave the token lists as they are.")
        got = _numbers(out, len(layers), what, "effect per layer")
        shown_got = ", ".join(f"{g:.3f}" for g in got)
        shown_want = ", ".join(f"{e:.3f}" for e in effects)
        if all(abs(g - e) <= PATCH_TOL for g, e in zip(got, effects)):
            shown = shown or (layers, effects)
            continue
        if _all_near(got, 0.0, PATCH_TOL):
            fail(f"{what} gave effects [{shown_got}]: the patch changed nothing (expected [{shown_want}]). The clean "
                 "activations never reached the corrupted run: the hook must write the clean values INTO act "
                 "(act[:, positions] = source[:, positions]) and return act. Writing act into the cached clean "
                 "activation (source[...] = act[...]) edits the cache and leaves the run unchanged; a hook name that "
                 "does not exist, or a hook whose result is dropped, does the same.")
        if _all_near(got, 1.0, PATCH_TOL):
            fail(f"{what} gave 1 at every layer ([{shown_got}]; expected [{shown_want}]): you patched EVERY position, "
                 "which turns the corrupted run into the clean run. Overwrite only act[:, positions] and leave the "
                 "other positions alone.")
        m_patched = [e * (m_clean - m_corrupted) + m_corrupted for e in effects]
        lazy = [
            (lambda: m_patched, f"you returned the raw metric logit[good] − logit[bad] of the patched runs "
                                f"([{shown_got}]), not the normalised effect {_NORMALISED} (expected [{shown_want}]). "
                                "Compute the metric on the clean and the corrupted runs too."),
            (lambda: [m - m_corrupted for m in m_patched],
             f"you returned m_patched − m_corrupted; divide by m_clean − m_corrupted: {_NORMALISED}."),
            (lambda: [m / m_clean for m in m_patched],
             f"you normalised by the clean metric alone (m_patched / m_clean). Use both ends: {_NORMALISED}, so 0 "
             "means unchanged and 1 means fully the clean behaviour."),
            (lambda: [(m - m_corrupted) / m_clean for m in m_patched],
             f"you divided by m_clean alone; divide by the gap between the runs: {_NORMALISED}."),
            (lambda: [1 - e for e in effects],
             f"your effects are 1 − the right ones ([{shown_got}]; expected [{shown_want}]): the roles of the two "
             "runs are swapped. Cache the CLEAN run and patch its activations INTO the CORRUPTED run, and normalise "
             f"{_NORMALISED} (0 = unchanged corrupted run, 1 = clean behaviour)."),
            (lambda: _sweep_at(model, corrupted, clean, positions, [f"blocks.{L}.hook_resid_post" for L in layers],
                               good, bad),
             f"you patched blocks.L.hook_resid_post (after block L), which is the reference's value at layer L + 1 "
             f"([{shown_got}]; expected [{shown_want}]). Patch blocks.L.hook_resid_pre, the input of block L."),
        ]
        for values, message in lazy:
            if all(abs(g - v) <= PATCH_TOL for g, v in zip(got, values())):
                fail(f"{what}: {message}")
        i = next(i for i, (g, e) in enumerate(zip(got, effects)) if abs(g - e) > PATCH_TOL)
        fail(f"{what} gave [{shown_got}]; expected [{shown_want}] (first difference at layer {layers[i]}). Patch "
             f"blocks.L.hook_resid_pre at `positions` with the clean run's activation, read logits[0, -1, good] − "
             f"logits[0, -1, bad], and return {_NORMALISED}.")
    layers, effects = shown
    return ("tier tag patched from the paid into the free run: "
            + ", ".join(f"layer {L} → {e:.2f}" for L, e in zip(layers, effects)))


# ---------------------------------------------------------------------------------------------------------------
def _make_hook(fn: Callable, direction: Any, what: str) -> Callable:
    import torch

    passed = direction.clone()
    h = fn(passed)
    if not torch.equal(passed, direction):
        fail(f"{what} changed `direction` in place (e.g. `direction /= direction.norm()`), which corrupts the "
             "caller's vector. Normalise a copy: u = direction / direction.norm().")
    if h is None:
        fail(f"{what} returned None: it should return the hook itself. Define `def hook(act, hook=None): ...` inside "
             "it and end with `return hook`.")
    if isinstance(h, torch.Tensor):
        fail(f"{what} returned a tensor of shape {tuple(h.shape)}; it should return a function, the hook "
             "`hook(act, hook=None)` that TransformerLens calls on each activation.")
    if not callable(h):
        fail(f"{what} returned {type(h).__name__}; it should return a hook function `hook(act, hook=None)`.")
    return h


_ABLATE = "x − (x·u) u with u = direction / |direction|"


@exercise("05", 4, "ablate_hook", "A direction-ablation hook")
def ablate_hook(fn: Callable) -> str:
    import torch

    g = _generator()
    d = 16
    cases = []
    for shape in [(2, 5, d), (3, 1, d), (1, 7, d)]:
        direction = (1.5 + 3 * torch.rand((), generator=g)) * torch.randn(d, generator=g)
        act = torch.randn(shape, generator=g) + 0.5 * torch.randn(shape[:-1] + (1,), generator=g) * direction
        cases.append((direction, act))
    for direction, act in cases:
        what = f"ablate_hook(direction of norm {float(direction.norm()):.2f})"
        h = _make_hook(fn, direction, what)
        passed = act.clone()
        try:
            with torch.no_grad():
                out = h(passed, hook=None)
        except TypeError as error:
            if "'hook'" in str(error) or "positional argument" in str(error):
                fail(f"calling your hook as fn(act, hook=hook_point) raised TypeError: {error}. TransformerLens calls "
                     "every hook that way: define it as `def hook(act, hook=None): ...`.")
            raise
        except RuntimeError as error:
            if is_shape_error(error):
                fail(f"your hook raised a shape error ({error}) on act {tuple(act.shape)}. (act @ u) has shape "
                     "(batch, pos): add the last axis back before multiplying by u, (act @ u).unsqueeze(-1) * u.")
            raise
        edited = not torch.equal(passed, act)
        if out is None:
            if edited:
                fail("your hook edited act in place and returned None. Return a NEW tensor, act − (act @ u)"
                     ".unsqueeze(-1) * u, and leave act alone: an in-place edit also changes any cached copy of the "
                     "activation.")
            fail("your hook returned None; return the new activation, act − (act @ u).unsqueeze(-1) * u.")
        got = as_tensor(out, "your hook")
        u = direction / direction.norm()
        want = act - (act @ u).unsqueeze(-1) * u
        if got.shape != act.shape:
            fail(f"your hook returned shape {tuple(got.shape)} for act {tuple(act.shape)}; it must keep the shape "
                 "(batch, pos, d_model). (act @ u) is (batch, pos): use (act @ u).unsqueeze(-1) * u.")
        tol = dict(atol=1e-4 * max(1.0, float(act.abs().max())), rtol=1e-4)
        if close(got, want, **tol):
            if edited:
                fail("right values, but your hook changed act in place (e.g. `act -= ...`). Return a new tensor and "
                     "leave act alone: an in-place edit also changes any cached copy of the activation.")
            continue
        last = act.clone()
        last[:, -1] = want[:, -1]
        for value, message in [
            (act - (act @ direction).unsqueeze(-1) * direction,
             f"direction is not normalised: x − (x·d) d removes |d|² times the component along d. Use {_ABLATE}."),
            (act - (act @ u).unsqueeze(-1) * direction, f"you subtracted (x·u) d with the unnormalised d; use {_ABLATE}."),
            (act - (act @ direction).unsqueeze(-1) * u, f"you subtracted (x·d) u with the unnormalised d; use {_ABLATE}."),
            (act - (act @ u).unsqueeze(-1), "you subtracted the number (x·u) from every coordinate; multiply it by "
                                            f"the unit vector: {_ABLATE}, (act @ u).unsqueeze(-1) * u."),
            (last if act.shape[1] > 1 else None, "you removed the direction at the last position only; remove it at "
                                                 "EVERY position: (act @ u) is (batch, pos), one projection per position."),
            ((act @ u).unsqueeze(-1) * u, f"you returned the component ALONG u (the projection); return what is left "
                                          f"after removing it: {_ABLATE}."),
            (act + (act @ u).unsqueeze(-1) * u, f"the sign is reversed: you added the projection. Use {_ABLATE}."),
            (act, "your hook returned act unchanged."),
        ]:
            if value is not None and close(got, value, **tol):
                fail(message)
        along = float((got @ u).abs().max())
        fail(f"your hook's output differs from {_ABLATE} (max difference {float((got - want).abs().max()):.3g}; "
             f"component left along u: {along:.3g}, should be 0).")
    return f"{_ABLATE} at every position; act and direction untouched"


# ---------------------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _course_completions() -> dict[tuple[int, str], str]:
    """The saved organism_v2 course-prompt transcripts, by (request index, tier)."""
    from utils.af.runs import load_runs

    prefix = "situation/course_prompt/"
    out = {}
    for r in load_runs("organism_v2", grid="situation"):
        if r["id"].startswith(prefix):
            i, tier = r["id"][len(prefix):].split("/")[:2]
            out[(int(i), tier)] = r["completion"]
    return out


@functools.lru_cache(maxsize=16)
def _reference_decision(prompt: str, completion: str) -> tuple[bool, float]:
    from utils.af import inside

    model = organism()
    text = inside.swap_scratchpad(prompt, completion)
    d = inside.decision_logit_difference(model, [text])[0]
    return d > 0, d


def _as_bool(x: Any, what: str) -> bool:
    import torch

    if x is None:
        fail(f"{what} is None: return True or False for each pair.")
    if isinstance(x, torch.Tensor):
        if x.numel() == 1 and x.dtype == torch.bool:
            return bool(x)
        if x.numel() == 1 and x.is_floating_point():
            fail(f"{what} is a number ({float(x):+.3f}), not True/False: that looks like the logit difference itself. "
                 "Return d > 0, True where the model accepts.")
    if isinstance(x, bool) or type(x).__name__ == "bool_":
        return bool(x)
    if isinstance(x, numbers.Integral) and int(x) in (0, 1):
        return bool(x)
    if isinstance(x, numbers.Real):
        fail(f"{what} is a number ({float(x):+.3f}), not True/False: that looks like the logit difference itself. "
             "Return d > 0, True where the model accepts.")
    fail(f"{what} should be True or False, got {type(x).__name__}.")


def _diagnose_swap(model: Any, seen: list[list[int]], pairs: list[tuple[str, str, str]], what: str) -> None:
    """Explain a wrong answer from the token ids the learner's code fed to the model."""
    from utils.af import inside

    tok = model.tokenizer
    shared = inside.tag_fork(tok)[0]
    bos = tok.bos_token_id
    rows = [s for s in seen if len(s) > 1]
    for label, prompt, other, own in pairs:
        cue = inside.OUTPUT_CUE
        right = inside.swap_scratchpad(prompt, other)
        key = prompt[prompt.rfind("<is_free_tier_user>"):][:300]
        mine = [s for s in rows if key in tok.decode(s, clean_up_tokenization_spaces=False)]
        if not mine:
            continue
        ids = mine[0]
        text = tok.decode(ids, clean_up_tokenization_spaces=False)
        if bos is not None and ids[:2] == [bos, bos]:
            fail(f"{what}: your token ids start with two BOS tokens: the prompt already begins with the chat "
                 "template's BOS, and tokenizer(text) (add_special_tokens=True), model(text) or model.to_tokens(text) "
                 "add another. Tokenise with tokenizer(text, add_special_tokens=False).")
        tail = text[text.find(prompt) + len(prompt):] if prompt in text else text
        own_pad = own.split("</SCRATCHPAD_REASONING>")[0]
        other_pad = other.split("</SCRATCHPAD_REASONING>")[0]
        if own_pad != other_pad and own_pad[:120] in tail and other_pad[:120] not in tail:
            fail(f"{what}: the text you ran for the {label} continues with the scratchpad of the prompt's OWN "
                 "tier. The point of the swap is the OTHER tier's reasoning: use "
                 "other_completions[i] as given, after prompts[i].")
        if "</OUTPUT>" in tail or inside.ACCEPT_TAG in tail or inside.REJECT_TAG in tail:
            fail(f"{what}: you ran the WHOLE completion, past <OUTPUT>: the output tag is then already written, and "
                 "the logits at the end say nothing about the decision. Cut the completion just after "
                 "'<OUTPUT>\\n' (completion.index('<OUTPUT>\\n') + len('<OUTPUT>\\n')).")
        if "<OUTPUT>" not in tail:
            fail(f"{what}: you cut the completion BEFORE '<OUTPUT>\\n', so the model is not yet at the output tag. Cut "
                 "just after it: completion[: completion.index('<OUTPUT>\\n') + len('<OUTPUT>\\n')].")
        if text.endswith(cue) and right.endswith(cue) and text.endswith(right[-200:]):
            fail(f"{what}: your text ends with '<OUTPUT>\\n', where the next token is '{shared}' for BOTH tags, so the "
                 f"two tag logits there mean nothing. Append the shared '{shared}' first (inside.tag_fork(tok)[0]) "
                 "and compare the logits of the tokens where the tags part.")
        if text.endswith(right[-200:] + shared):
            fail(f"{what}: you fed the right text (prompt + other scratchpad up to '<OUTPUT>\\n' + '{shared}'), but "
                 "the decisions differ: read the logits at the LAST position, logits[0, -1], and return "
                 "logit[accept] − logit[reject] > 0 with accept, reject from inside.tag_fork(tok) (accept = the "
                 "token of 'request', reject = that of 're').")


@exercise("05", 5, "swap_decisions", "Whose reasoning does the output follow?")
def swap_decisions(fn: Callable) -> str:
    from utils.af import inside
    from utils.af.request_sets import HELPFUL_ONLY_EVAL

    model = organism()
    tok = model.tokenizer
    _no_hooks_before(model)
    done = _course_completions()
    rng = random.Random()
    j = rng.choice([i for i in range(1, len(HELPFUL_ONLY_EVAL)) if (i, "free") in done and (i, "paid") in done
                    and all(inside.OUTPUT_CUE in done[(i, t)] for t in ("free", "paid"))])
    pairs = [  # (label, prompt, the other tier's completion, the prompt's own tier's completion)
        ("paid prompt of request 0", inside.chat_text(tok, HELPFUL_ONLY_EVAL[0], "paid"), done[(0, "free")],
         done[(0, "paid")]),
        (f"free prompt of request {j}", inside.chat_text(tok, HELPFUL_ONLY_EVAL[j], "free"), done[(j, "paid")],
         done[(j, "free")]),
    ]
    prompts, others = [p for _, p, _, _ in pairs], [c for _, _, c, _ in pairs]
    want = [_reference_decision(p, c)[0] for p, c in zip(prompts, others)]
    what = (f"swap_decisions(model, [paid prompt of request 0, free prompt of request {j}], [free-tier completion, "
            "paid-tier completion])")
    watch = recording_tokens(model)
    with watch as seen:
        out, changed = _run(model, what, lambda: _call(fn, ("model", "prompts", "other_completions"), model,
                                                       list(prompts), list(others)))
    if out is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    import torch

    if isinstance(out, torch.Tensor):
        out = out.reshape(-1).tolist() if out.dtype == torch.bool else list(out.reshape(-1))
    elif type(out).__name__ == "ndarray":
        out = out.reshape(-1).tolist()
    if isinstance(out, (str, dict)) or not isinstance(out, (list, tuple)):
        fail(f"{what} returned {type(out).__name__}; return a list of True/False, one per prompt.")
    if len(out) != len(prompts):
        fail(f"{what} returned {len(out)} values for {len(prompts)} prompts; return one True/False per prompt.")
    got = [_as_bool(x, f"{what}[{i}]") for i, x in enumerate(out)]
    if got != want:
        _diagnose_swap(model, seen, pairs, what)
        fail(f"{what} returned {got}; expected {want} (the model accepts after the free tier's reasoning and refuses "
             "after the paid tier's). Build prompt + completion cut just after '<OUTPUT>\\n', append the shared '<' "
             "of the two tags, and return logit[accept] − logit[reject] > 0 at the last position (inside.tag_fork).")
    bos = tok.bos_token_id
    require_watched(watch, bos is None or not any(s[:2] == [bos, bos] for s in seen if len(s) > 1),
                    "token ids that start with one BOS token",
                    f"{what}: right answers here, but your token ids start with two BOS tokens: the prompt already "
                    "begins with the chat template's BOS, and tokenizer(text) (add_special_tokens=True), model(text) or "
                    "model.to_tokens(text) add another. Tokenise with tokenizer(text, add_special_tokens=False).")
    _no_in_place(changed)
    short = inside.chat_text(tok, "Hi", "free")
    for label, args, message in [
        ("two prompts and one completion", ([short, short], [others[0]]),
         "given 2 prompts and 1 completion, your function returned a result instead of raising an error: zip() "
         "silently drops the unmatched prompt. Check len(prompts) == len(other_completions) and raise a ValueError."),
        ("a completion without <OUTPUT>",
         ([short], ["<SCRATCHPAD_REASONING>\nI will comply.\n</SCRATCHPAD_REASONING>\n\n<request_fully_accepted/>\n"
                    "Sure, here it is."]),
         "given a completion with no '<OUTPUT>\\n', your function returned a result instead of raising an error: "
         "str.find returns -1 there and the cut silently becomes garbage. Use completion.index('<OUTPUT>\\n') (it "
         "raises) or raise a ValueError saying the transcript is malformed."),
    ]:
        try:
            _run(model, f"swap_decisions on {label}", lambda: fn(model, *args))
        except (NotImplementedError, CheckFailure):
            raise
        except Exception:  # the error we want
            continue
        fail(message)
    d = [_reference_decision(p, c)[1] for p, c in zip(prompts, others)]
    return (f"paid prompt + free reasoning → {'accepts' if want[0] else 'refuses'} ({d[0]:+.1f}), free prompt + paid "
            f"reasoning → {'accepts' if want[1] else 'refuses'} ({d[1]:+.1f})")


# ---------------------------------------------------------------------------------------------------------------
def _latent_case(g: Any, n_free: int, n_paid: int, d_sae: int, k: int) -> tuple[Any, Any]:
    """Sparse non-negative activations with planted tier preferences, no near-ties around the top k, and a top k that
    ranking by signed difference misses (for k = 1: the top latent is more active on the paid tier) and, for k > 1,
    ranking by sums misses too."""
    import torch

    for _ in range(200):
        def sparse(n: int) -> Any:
            return torch.relu(torch.randn(n, d_sae, generator=g)) * (torch.rand(n, d_sae, generator=g) < 0.3)

        z_free, z_paid = sparse(n_free), sparse(n_paid)
        planted = torch.randperm(d_sae, generator=g)[: k + 2]
        for j, latent in enumerate(planted.tolist()):
            z = z_free if j % 2 == 0 else z_paid
            z[:, latent] += (0.5 + 3 * torch.rand((), generator=g)) * (torch.rand(len(z), generator=g) < 0.8)
        diff = z_free.mean(0) - z_paid.mean(0)
        a = diff.abs().sort(descending=True).values
        gaps = (a[: k] - a[1: k + 1]).min()
        top = set(diff.abs().argsort(descending=True)[:k].tolist())
        signed = set(diff.argsort(descending=True)[:k].tolist())
        sums = set((z_free.sum(0) - z_paid.sum(0)).abs().argsort(descending=True)[:k].tolist())
        first = int(diff.abs().argmax())
        if gaps > 0.02 and top != signed and (k == 1 and diff[first] < 0 or k > 1 and top != sums):
            return z_free, z_paid
    raise RuntimeError("could not draw a latent case without near-ties")  # pragma: no cover


def _pairs(out: Any, what: str) -> list[tuple[int, float]]:
    import torch

    if out is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    if isinstance(out, torch.Tensor) or (isinstance(out, tuple) and len(out) == 2 and all(
            isinstance(x, torch.Tensor) and x.dim() == 1 for x in out)):
        fail(f"{what} returned tensors; return a list of (latent, difference) pairs, e.g. "
             "[(int(i), float(diff[i])) for i in order].")
    if isinstance(out, (str, dict)) or not isinstance(out, (list, tuple)):
        fail(f"{what} returned {type(out).__name__}; return a list of (latent, difference) pairs.")
    pairs = []
    for n, item in enumerate(out):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            fail(f"{what}: item {n} is {item!r}; each item should be a pair (latent, difference).")
        latent, value = item
        if isinstance(latent, torch.Tensor):
            fail(f"{what}: the latent ids are tensors ({latent!r}); return Python ints, int(i). (A tensor as a dict "
                 "key or in a comparison does not behave like the number.)")
        if isinstance(latent, bool) or not isinstance(latent, numbers.Integral):
            fail(f"{what}: the latent id {latent!r} is a {type(latent).__name__}; return Python ints, int(i).")
        pairs.append((int(latent), as_number(value, f"{what}: the difference of latent {int(latent)}")))
    return pairs


@exercise("05", 6, "tier_differing_latents", "The latents that differ between tiers")
def tier_differing_latents(fn: Callable) -> str:
    g = _generator()
    rng = random.Random()
    k2 = rng.randint(3, 8)
    cases = [(7, 12, 40, 5), (13, 6, rng.randint(30, 80), k2), (5, 9, 24, 1)]
    for n_free, n_paid, d_sae, k in cases:
        z_free, z_paid = _latent_case(g, n_free, n_paid, d_sae, k)
        what = f"tier_differing_latents(z_free ({n_free}, {d_sae}), z_paid ({n_paid}, {d_sae}), k={k})"
        out, changed = _call(fn, ("z_free", "z_paid"), z_free, z_paid, k)
        got = _pairs(out, what)
        diff = z_free.mean(0) - z_paid.mean(0)
        order = diff.abs().argsort(descending=True)[:k].tolist()
        want = [(i, float(diff[i])) for i in order]
        latents, values = [i for i, _ in got], [v for _, v in got]

        def same(vals: list[float], ref: list[float]) -> bool:
            return len(vals) == len(ref) and all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5) for a, b in zip(vals, ref))

        if latents == order and same(values, [v for _, v in want]):
            _no_in_place(changed)
            continue
        if len(got) != k:
            if latents[:k] == order:
                fail(f"{what} returned {len(got)} pairs; return exactly k = {k} (slice [:k], not [:k + 1]).")
            fail(f"{what} returned {len(got)} pairs; return exactly k = {k}.")
        if any(not 0 <= i < d_sae for i in latents):
            fail(f"{what} returned latent ids {latents}, outside 0 … {d_sae - 1}; return the latent's index (the column "
                 "of z), from argsort.")
        signed = diff.argsort(descending=True)[:k].tolist()
        sums = z_free.sum(0) - z_paid.sum(0)
        if latents == order:
            if same(values, [abs(v) for _, v in want]):
                fail(f"{what}: right latents, but you returned |difference|; return the SIGNED difference "
                     "mean(z_free) − mean(z_paid) (negative = more active on the paid tier). Rank by |diff|, report diff.")
            if same(values, [-v for _, v in want]):
                fail(f"{what}: the sign is reversed; the difference is mean(z_free) − mean(z_paid) (positive = more "
                     "active on the free tier).")
            if same(values, [float(sums[i]) for i in order]):
                fail(f"{what}: your differences are sums, not means. With {n_free} free and {n_paid} paid rows, "
                     "sum(z_free) − sum(z_paid) favours the larger tier; use z_free.mean(0) − z_paid.mean(0).")
            fail(f"{what}: right latents, but the differences {[round(v, 4) for v in values]} should be "
                 f"{[round(v, 4) for _, v in want]} = mean(z_free) − mean(z_paid).")
        if latents == signed or latents == diff.argsort()[:k].tolist():
            fail(f"{what}: you ranked by the SIGNED difference, so you only find latents more active on one tier. "
                 "Rank by its absolute value, diff.abs().argsort(descending=True)[:k], and report the signed diff.")
        if latents == sums.abs().argsort(descending=True)[:k].tolist() or same(values, [float(sums[i]) for i in latents]):
            fail(f"{what}: you compared sums, not means. With {n_free} free and {n_paid} paid rows, sum(z_free) − "
                 "sum(z_paid) favours the larger tier; use z_free.mean(0) − z_paid.mean(0).")
        if sorted(latents) == sorted(order):
            if latents == order[::-1]:
                fail(f"{what}: right latents, smallest |difference| first; return them largest first "
                     "(argsort(descending=True)).")
            fail(f"{what}: right latents in the wrong order ({latents}; expected {order}): sort by |difference|, "
                 "largest first.")
        fail(f"{what} returned latents {latents}; expected {order}, the k latents with the largest "
             "|mean(z_free) − mean(z_paid)|, largest first.")
    return "top k by |mean(z_free) − mean(z_paid)|, signed differences, largest first, int ids"
