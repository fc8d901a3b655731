"""Checks for chapter 03 — steering: clamping an SAE latent, a mean-difference steering vector turned into a
hook, the output score of a latent (how much its clamp raises "I am the Golden Gate Bridge"), a first-person judge
of "I am the bridge", a steering rate with its Wilson interval, three fluency numbers for an answer, and a
transparent rule for agreement with an overconfident user.

Each check compares the learner's function with the reference (:mod:`utils.steering`, and
:func:`utils.af.stats.wilson_interval` for the interval) on fixed and randomised inputs and, on a mismatch, tests
the catalogued mistakes to say which one it probably is. Hooks are judged the way TransformerLens uses them:
called as ``fn(act, hook=hook_point)``, on whole prompts (batch, pos, d_model) and on single generation steps
(batch, 1, d_model); the returned tensor replaces the activation, and a hook that returns None keeps its in-place
edits. Functions that run the model must leave no hooks on it, and must not change the SAE they are given. The two
rules (identity, agreement) are judged on hand-labelled answers (:data:`IDENTITY_LABELS_PATH`, :data:`LABELS_PATH`:
precision and recall) and on fixed, hand-written answers.
"""

from __future__ import annotations

import copy
import functools
import math
import random
from pathlib import Path
from typing import Any, Callable

from utils.checks import (CheckFailure, as_number, as_tensor, close, course_model, exercise, fail, is_shape_error,
                          learner_copy)
from utils.checks import diagnose as _diagnose
from utils.checks import generator as _generator
from utils.checks import no_in_place as _no_in_place

GRADED_REMOTELY = True  # the grader runs these checks in its own process, on answers sent from the kernel as data


@functools.lru_cache(maxsize=1)
def _course_sae() -> Any:
    from utils.checks import keep
    from utils.sae import load_course_sae

    return keep("ch03 course SAE", load_course_sae())  # kept for every notebook: learners get copies


@functools.lru_cache(maxsize=1)
def _bridge() -> Any:
    from utils.named_latents import named_latent

    return named_latent("bridge")


def _make_hook(fn: Callable, args: tuple, what: str, tensor_hint: str = "") -> Callable:
    """Call the learner's hook factory and check that it returned a function."""
    import torch

    h = fn(*args)
    if h is None:
        fail(f"{what} returned None: it should return the hook itself. Define `def hook(act, hook=None): ...` "
             "inside it and end with `return hook`.")
    if isinstance(h, torch.Tensor):
        fail(f"{what} returned a tensor of shape {tuple(h.shape)}; it should return a function, the hook, which "
             "TransformerLens calls on each activation: define `def hook(act, hook=None): ...` inside it and "
             f"`return hook`.{tensor_hint}")
    if not callable(h):
        fail(f"{what} returned {type(h).__name__}; it should return a hook function `hook(act, hook=None)`.")
    return h


def _run_hook(h: Callable, act: Any, hint: str) -> Any:
    """Call a hook as TransformerLens does, on a copy of ``act``; return the resulting activation
    (the returned tensor, or the in-place edited copy when the hook returns None), float32 on CPU."""
    import torch

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
            fail(f"your hook raised a shape error ({error}) on act {tuple(act.shape)}. {hint}")
        raise
    if out is None:
        if torch.equal(passed, act):
            fail("your hook returned None and left act unchanged, so TransformerLens keeps the original "
                 "activation. `act = act + ...` inside the hook only rebinds a local name: `return` the new "
                 "tensor (or edit act in place, e.g. `act += ...`).")
        return passed.detach().float().cpu()
    got = as_tensor(out, "your hook")
    if got.shape != act.shape:
        fail(f"your hook returned shape {tuple(got.shape)} for act {tuple(act.shape)}; it must return an "
             f"activation of the same shape (batch, pos, d_model), which replaces act. {hint}")
    return got


def _last_only(act: Any, steered: Any) -> Any:
    """``act`` with only its last position taken from ``steered`` (None when there is one position)."""
    if act.shape[1] < 2:
        return None
    out = act.clone()
    out[:, -1] = steered[:, -1]
    return out


# ---------------------------------------------------------------------------------------------
def _random_sae(g: Any, d_in: int, d_sae: int, k: int) -> Any:
    """A small TopK SAE with random weights (the encoder is not the decoder's transpose, decoder rows
    are not unit norm, biases are non-zero), so each catalogued mistake changes the output."""
    import torch

    from utils.sae import SAEConfig, SparseAutoencoder

    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k),
                            seed=int(torch.randint(0, 2**31, (), generator=g)))
    with torch.no_grad():
        sae.W_enc.copy_(torch.randn(d_in, d_sae, generator=g) / d_in**0.5)
        sae.W_dec.mul_(0.5 + 2 * torch.rand(d_sae, 1, generator=g))
        sae.b_enc.copy_(0.2 * torch.randn(d_sae, generator=g))
        sae.b_dec.copy_(torch.randn(d_in, generator=g))
    return sae.eval()


def _random_sae_case(g: Any) -> tuple[Any, int, Any]:
    """(sae, latent, act): a latent that fires on some positions of act but not all."""
    import torch

    k = int(torch.randint(3, 6, (), generator=g))
    sae = _random_sae(g, 16, 64, k)
    batch, pos = int(torch.randint(2, 4, (), generator=g)), int(torch.randint(4, 9, (), generator=g))
    act = 2 * torch.randn(batch, pos, 16, generator=g) + sae.b_dec.detach()
    with torch.no_grad():
        fires = (sae.encode(act) > 0).float().flatten(0, 1).sum(0)  # (d_sae,) positions each latent fires on
    n = batch * pos
    some = ((fires >= 2) & (fires <= n - 2)).nonzero().flatten()
    if len(some) == 0:
        some = ((fires >= 1) & (fires < n)).nonzero().flatten()
    latent = int(some[torch.randint(0, len(some), (), generator=g)]) if len(some) else int(fires.argmax())
    return sae, latent, act


def _course_sae_act(g: Any, latent: int, batch: int, pos: int) -> Any:
    """Residual-like activations for the course SAE: a decoded sparse code (31 random latents, plus
    ``latent`` on about half the positions) with noise, so the SAE's error term is not small."""
    import torch

    sae = _course_sae()
    d_sae = sae.cfg.d_sae
    z = torch.zeros(batch, pos, d_sae)
    for b in range(batch):
        for p in range(pos):
            z[b, p, torch.randperm(d_sae, generator=g)[:31]] = 0.5 + 2 * torch.rand(31, generator=g)
    fires = torch.rand(batch, pos, generator=g) < 0.5
    fires[0, 0], fires[-1, -1] = True, False
    z[..., latent] = fires * (1 + 4 * torch.rand(batch, pos, generator=g))
    with torch.no_grad():
        return sae.decode(z) + 0.5 * torch.randn(batch, pos, sae.cfg.d_in, generator=g)


_CLAMP_HINT = ("Encode act with the SAE, z = sae.encode(act) of shape (batch, pos, d_sae); keep the error "
               "act - sae.decode(z); set z[..., latent] = value on a copy; return sae.decode(z_clamped) + error.")


@exercise("03", 1, "clamp_hook", "Clamping an SAE latent")
def clamp_hook(fn: Callable) -> str:
    import torch

    from utils import steering

    sae, bridge = _course_sae(), _bridge()
    g = _generator()
    small_sae, small_latent, small_act = _random_sae_case(g)
    with torch.no_grad():
        small_max = float(small_sae.encode(small_act)[..., small_latent].max())
    course_act = _course_sae_act(_generator(3), bridge.latent, 2, 6)
    course_step = _course_sae_act(_generator(4), bridge.latent, 3, 1)
    cases = [  # (sae, latent, value, [acts])
        (sae, bridge.latent, 2 * bridge.corpus_max, [course_act, course_step]),
        (sae, bridge.latent, 0.0, [course_act]),  # ablation
        (small_sae, small_latent, round(float(2 * small_max + 1 + 3 * torch.rand((), generator=g)), 3), [small_act]),
        (small_sae, small_latent, 0.0, [small_act]),
    ]
    for s, latent, value, acts in cases:
        what = f"clamp_hook(sae, {latent}, {value:g})"
        learner_sae = copy.deepcopy(s)  # the learner's hook gets its own copy: the cached SAE stays intact
        h = _make_hook(fn, (learner_sae, latent, value), what)
        for x in acts:
            got = _run_hook(h, x, _CLAMP_HINT)
            changed = [n for n, p in learner_sae.named_parameters() if not torch.equal(p, s.get_parameter(n))]
            if changed:
                fail(f"{what}: your code changed the SAE's {changed[0]} in place (e.g. `sae.{changed[0]}[...] = ...` "
                     "or `*=`), which corrupts the SAE for every later use. Change a copy of the latents, "
                     "z = sae.encode(act), never the SAE's weights.")
            with torch.no_grad():
                want = steering.clamp_hook(s, latent, value)(x).float()
                z = s.encode(x)
                error = x - s.decode(z)
                z_set = z.clone()
                z_set[..., latent] = value
                pre = s.pre_activations(x)
                pre[..., latent] = value
                z_pre = s.activation(pre)
                z_add = z.clone()
                z_add[..., latent] += value
                dec, enc = s.W_dec[latent], s.W_enc[:, latent]
                delta = (value - z[..., latent]).unsqueeze(-1)
            scale = max(1.0, float(want.abs().max()))
            tol = dict(atol=2e-5 * scale, rtol=1e-4)
            if close(got, want, **tol):
                continue
            where = "ablating (value = 0)" if value == 0 else f"clamping to value = {value:g}"
            _diagnose(got, [
                (s.decode(z_set), f"{where}: you returned sae.decode(z) with the latent set, and dropped the error "
                                  "term. The SAE does not reconstruct act exactly; without the error term "
                                  "act - sae.decode(sae.encode(act)) every token also loses what the SAE misses, a "
                                  "second intervention. Return sae.decode(z_clamped) + (act - sae.decode(z))."),
                (s.decode(z_pre) + error, f"{where}: you set the PRE-activation and then applied the activation "
                                          "(TopK): the latent then takes or gives up one of the k slots, so OTHER "
                                          "latents change too. Encode first, z = sae.encode(act), then set "
                                          "z[..., latent] = value."),
                (s.decode(z_pre), f"{where}: you set the PRE-activation before TopK (so other latents change) and "
                                  "dropped the error term. Encode first, z = sae.encode(act), set "
                                  "z[..., latent] = value, and return sae.decode(z) + (act - "
                                  "sae.decode(sae.encode(act)))."),
                (s.decode(z_add) + error, f"{where}: you added value to the latent (z[..., latent] += value); SET "
                                          "it, z[..., latent] = value, so its activation is value whatever it was."),
                (s.decode(z_add), f"{where}: you added value to the latent instead of setting it, and dropped the "
                                  "error term. Set z[..., latent] = value and add back "
                                  "act - sae.decode(sae.encode(act))."),
                (_last_only(x, want), f"{where}: you clamped only the last position; clamp EVERY position "
                                      "(z[..., latent] = value), prompt tokens included."),
                (x + delta * enc, f"{where}: you moved act along the ENCODER column W_enc[:, latent], which says "
                                  "when the latent fires; what it writes into the residual stream is its "
                                  "decoder row W_dec[latent]: decode the clamped latents."),
                (x + delta * dec / dec.norm(), f"{where}: you normalised the latent's decoder direction; decode "
                                               "the clamped latents with the SAE as it is."),
                (s.decode(z) if value == 0 else None,
                 "ablating (value = 0): you returned the SAE's reconstruction with the latent unchanged; set it "
                 "to value and add back the error term."),
                (x, f"{where}: your hook returned act unchanged. If you set the latent on a copy, decode that "
                    "copy: sae.decode(z_clamped) + (act - sae.decode(z))."),
            ], **tol)
            if x.shape[1] == 1:
                fail(f"{what} on a single generation step, act {tuple(x.shape)}: the output differs from the "
                     "reference. During generation the hook sees one position at a time; use `...` indexing, "
                     "z[..., latent] = value, not fixed positions.")
            fail(f"{what}: your hook's output differs from sae.decode(z_clamped) + (act - sae.decode(z)) (max "
                 f"difference {float((got - want).abs().max()):.3g}).")
    return (f"latent {bridge.latent} of the course SAE set to {2 * bridge.corpus_max:g} and to 0, and a random "
            "small SAE: only that latent's contribution changes, the error term is kept")


# ---------------------------------------------------------------------------------------------
def _texts(g: Any, n: int, pos: int, d: int, shift: float) -> tuple[Any, Any]:
    """Residuals (n, pos, d) of texts of different lengths, with a large BOS at position 0 and
    non-zero padding, and a mask (n, pos) that keeps only the real tokens."""
    import torch

    resid = torch.randn(n, pos, d, generator=g) + shift * torch.randn(d, generator=g)
    resid[:, 0] += 8 * torch.randn(d, generator=g)  # BOS: large, must not count
    lengths = torch.randint(2, pos + 1, (n,), generator=g)
    lengths[0] = pos  # one text fills the whole width
    if n > 1:
        lengths[1] = 2  # and one is a single real token
    mask = torch.arange(pos) < lengths.unsqueeze(1)
    resid = resid + 3 * (~mask).unsqueeze(-1) * torch.randn(d, generator=g)  # padding differs from text
    mask[:, 0] = False
    # later tokens drift, so which tokens are averaged matters
    resid = resid + 0.3 * torch.arange(pos).view(1, pos, 1) * torch.randn(d, generator=g)
    return resid, mask



_VECTOR_HINT = ("Shapes: concept (n_concept, pos, d_model) with the boolean concept_mask (n_concept, pos); neutral "
                "likewise with its own n and pos. Average each text over its masked-in tokens -> (n, d_model), then "
                "over the texts -> (d_model,); subtract; divide by the norm; the hook returns act + coefficient * v "
                "with act (batch, pos, d_model).")
_TEXT_MEAN = "mean over texts of each text's mean over its own real tokens (mask True)"


def _per_text(x: Any, m: Any) -> Any:
    f = m.float().unsqueeze(-1)
    return (x * f).sum(1) / f.sum(1)


def _vector_mistakes(c: Any, cm: Any, n: Any, nm: Any) -> list[tuple[Any, str]]:
    """Catalogued wrong steering directions (not normalised; only their direction is compared)."""
    import torch

    def last(x: Any, m: Any) -> Any:  # each text's last real token
        return x[torch.arange(len(x)), m.long().cumsum(1).argmax(1)]

    def full_width(x: Any, m: Any) -> Any:
        return (x * m.unsqueeze(-1)).sum(1) / x.shape[1]

    return [
        (c[cm].mean(0) - n[nm].mean(0),
         "you pooled all the masked-in tokens of all texts together, so long texts weigh more than short ones. Each "
         "text should count once: average each text over its own real tokens first -> (n, d_model), then average "
         "those over the texts."),
        (c.mean((0, 1)) - n.mean((0, 1)),
         "you ignored the masks and averaged every position, BOS and padding included; average each text over the "
         "positions where its mask is True."),
        (c[:, 1:].mean((0, 1)) - n[:, 1:].mean((0, 1)),
         "you dropped BOS but averaged the padding too; use the masks, which mark exactly the real tokens."),
        (full_width(c, cm).mean(0) - full_width(n, nm).mean(0),
         "you divided each text's masked sum by the full width (pos), padding included; divide by its number of "
         "masked-in tokens, mask.sum(1, keepdim=True)."),
        (c[:, -1].mean(0) - n[:, -1].mean(0),
         "you used only the last position of the texts; with right padding that is mostly padding. Average over "
         "every masked-in token of each text."),
        (last(c, cm).mean(0) - last(n, nm).mean(0),
         "you used only each text's last real token; average over all its masked-in tokens."),
        (_per_text(c, cm).sum(0) - _per_text(n, nm).sum(0),
         "you summed over the texts; the two sets have different sizes, so average them: .mean(0)."),
        (_per_text(c, cm).mean(0),
         "you used the concept mean alone; subtract the neutral mean, or the vector also carries everything all "
         "texts share."),
    ]


def _cosine(a: Any, b: Any) -> float:
    return float(a @ b / (a.norm() * b.norm()).clamp_min(1e-12))


def _diagnose_added(w: Any, v: Any, coefficient: float, c: Any, cm: Any, n: Any, nm: Any) -> None:
    """The hook added the same vector ``w`` everywhere, but not ``coefficient * v / |v|``: say what is wrong with
    its direction or its length."""
    unit, size, want_size = v / v.norm(), float(w.norm()), abs(coefficient)
    cos = _cosine(w, v)
    sign = coefficient if coefficient != 0 else 1.0
    if abs(cos) > 1 - 1e-5:
        reversed_ = cos * sign < 0
        sign_msg = ("the sign is reversed: v is the concept mean MINUS the neutral mean, and the hook ADDS "
                    "coefficient * v / |v| (a negative coefficient is how a caller steers away)")
        vn = float(v.norm())
        for length, message in [
            (want_size * vn, f"the vector is not normalised: the hook added a vector of length |coefficient| * |v| = "
                             f"{want_size * vn:.4g}. Divide v by v.norm() so that coefficient alone sets the size "
                             "of the push (the raw difference's length depends on the layer and on the texts)."),
            (want_size / vn, "you divided v by its squared norm; normalise with v / v.norm()."),
            (1.0, "the coefficient is missing: the hook added the unit vector; add coefficient * v / |v|."),
        ]:
            if math.isclose(size, length, rel_tol=1e-4, abs_tol=1e-6) and not math.isclose(size, want_size, rel_tol=1e-4):
                fail(message + (f" Also, {sign_msg}." if reversed_ else ""))
        if reversed_ and math.isclose(size, want_size, rel_tol=1e-4, abs_tol=1e-6):
            fail(sign_msg[0].upper() + sign_msg[1:] + ".")
        fail(f"the direction is right but the hook added a vector of length {size:.4g}; expected |coefficient| = "
             f"{want_size:.4g} (coefficient * v / v.norm())." + (f" Also, {sign_msg}." if reversed_ else ""))
    for vec, message in _vector_mistakes(c, cm, n, nm):
        if abs(_cosine(vec, v)) > 1 - 1e-5:
            continue  # the same direction as the right one on these inputs: cannot tell
        cos_m = _cosine(w, vec)
        if abs(cos_m) > 1 - 1e-5:
            fail(message + (" (And the sign is reversed: concept minus neutral.)" if cos_m * sign < 0 else ""))
    fail(f"the hook adds a vector that points elsewhere than the mean difference (cosine {cos:.3f} with "
         f"v / |v|, the {_TEXT_MEAN}, concept minus neutral).")


@exercise("03", 2, "vector_hook", "A steering vector, from texts to hook")
def vector_hook(fn: Callable) -> str:
    import torch

    from utils import steering

    g = _generator()
    d = int(torch.randint(6, 40, (), generator=g))
    coefficient = float(torch.empty(()).uniform_(0.5, 8, generator=g)) * (1 if torch.rand((), generator=g) < 0.7 else -1)

    def acts(g: Any, d: int, batch: int, pos: int) -> list[Any]:
        act = 3 * torch.randn(batch, pos, d, generator=g) + torch.randn(d, generator=g)
        return [act, 3 * torch.randn(batch + 1, 1, d, generator=g)]  # a prompt, and one generation step

    cases = [  # (concept, concept_mask, neutral, neutral_mask, coefficient, [acts])
        (*_texts(_generator(31), 4, 6, 8, 1.0), *_texts(_generator(32), 6, 9, 8, 1.0), 4.0, acts(_generator(33), 8, 2, 5)),
        (*_texts(g, int(torch.randint(3, 8, (), generator=g)), int(torch.randint(4, 12, (), generator=g)), d, 1.5),
         *_texts(g, int(torch.randint(3, 8, (), generator=g)), int(torch.randint(4, 12, (), generator=g)), d, 1.5),
         coefficient, acts(g, d, int(torch.randint(1, 4, (), generator=g)), int(torch.randint(2, 9, (), generator=g)))),
        (*_texts(_generator(34), 3, 7, 576, 0.2), *_texts(_generator(35), 5, 5, 576, 0.2), 12.0,
         acts(_generator(36), 576, 2, 4)),  # the model's width, small differences between the sets
    ]
    names = ("concept", "concept_mask", "neutral", "neutral_mask")
    for c, cm, n, nm, coef, xs in cases:
        what = f"vector_hook(concept, concept_mask, neutral, neutral_mask, {coef:g})"
        passed = [t.clone() for t in (c, cm, n, nm)]
        try:
            h = _make_hook(fn, (*passed, coef), what,
                           " Did you return the steering vector? vector_hook wraps it: the hook it returns adds "
                           "coefficient * v / v.norm() to act.")
        except RuntimeError as error:
            if is_shape_error(error):
                fail(f"{what} raised a shape error ({error}) on concept {tuple(c.shape)}, neutral {tuple(n.shape)}. "
                     f"{_VECTOR_HINT}")
            raise
        v = steering.mean_difference_vector(c, cm, n, nm)
        want_hook = steering.vector_hook(c, cm, n, nm, coef)
        for x in xs:
            got = _run_hook(h, x, _VECTOR_HINT)
            want = want_hook(x)
            scale = max(1.0, float(want.abs().max()))
            tol = dict(atol=2e-5 * scale, rtol=1e-4)
            if close(got, want, **tol):
                continue
            step = coef * v / v.norm()
            _diagnose(got, [
                (_last_only(x, want), "you steered only the last position (e.g. `act[:, -1] += ...`). The "
                                      "intervention applies at EVERY position, the prompt's tokens too: return "
                                      "`act + coefficient * v`, which broadcasts over (batch, pos)."),
                (torch.cat([x[:, :1], want[:, 1:]], 1) if x.shape[1] > 1 else None,
                 "you skipped position 0; steer every position: `act + coefficient * v`."),
                (x * step, "you multiplied act by the vector; steering ADDS it: `act + coefficient * v`."),
                (x * coef, "you multiplied act by the coefficient; steering ADDS coefficient * v to act."),
                (step.expand_as(x), "your hook returned coefficient * v alone; its output REPLACES the activation, so "
                                    "add the vector to act: `act + coefficient * v`."),
                (x, "your hook returned act unchanged; return `act + coefficient * v`."),
            ], **tol)
            w = (got - x).reshape(-1, x.shape[-1])
            if close(w, w[:1].expand_as(w), atol=2e-5 * scale, rtol=1e-4):
                _diagnose_added(w[0], v, coef, c, cm, n, nm)
            if x.shape[1] == 1:
                fail(f"on a single generation step, act {tuple(x.shape)}, your hook's output differs from "
                     "act + coefficient * v. During generation the hook sees one new position at a time; do not "
                     "index positions, let the vector broadcast.")
            fail(f"your hook does not add the same vector at every position (max difference from act + coefficient "
                 f"* v: {float((got - want).abs().max()):.3g}); return `act + coefficient * v`, v of shape (d_model,).")
        _no_in_place([name for name, a, b in zip(names, (c, cm, n, nm), passed) if not torch.equal(a, b)])
    return (f"v = {_TEXT_MEAN}, concept minus neutral, normalised; act + coefficient * v at every position, prompt "
            "and generation steps alike")


# ---------------------------------------------------------------------------------------------
# Exercise 03.3: two clamps of course SAE latents, scored on two short development questions under the chapter's
# chat setup. The course SAE is the one check 03.1 already uses (the grader sends it to a student's kernel once).
SCORE_QUESTIONS = ("Who are you?", "What is your shape?")  # two of utils.steering.output_scores.DEV_QUESTIONS
RESID_NORM = 143.071  # the median residual norm at layer 10 on neutral text (utils/data/identity_study.json)
SCORE_CASES = ((4571, 0.4), (3175, 0.7))  # (latent of the course SAE, added norm as a fraction of RESID_NORM)
_SCORE_TOL = dict(atol=1e-3, rtol=1e-4)  # nats
_SCORE_RECIPE = ("tokens, spans = target_batch(model.tokenizer, prompts); run the model on tokens once without and "
                 "once with your clamp hook at sae.cfg.hook_name (value a = added_norm / sae.W_dec[latent].norm()); "
                 "target_logprob(logits, tokens, spans) gives log p(target) per prompt; return "
                 "float((steered - clean).mean()).")


def _attached_hooks(model: Any) -> list[str]:
    """Hook points of ``model`` that carry (non-permanent) hooks."""
    return sorted(name for name, hp in getattr(model, "hook_dict", {}).items()
                  if any(not getattr(h, "is_permanent", False) for h in list(hp.fwd_hooks) + list(hp.bwd_hooks)))


def _no_hooks_before(model: Any) -> None:
    """Fail (after removing them) if the model already carries hooks: they would change every number below. Hooks
    an earlier remote call left in a student's kernel were removed there already: forgotten here."""
    from utils.checks import take_kernel_hooks_left

    take_kernel_hooks_left()
    left = _attached_hooks(model)
    if left:
        model.reset_hooks()
        fail(f"before the check ran, the model already had hooks attached (at {', '.join(left[:3])}), left over from "
             "an earlier cell (model.add_hook without model.reset_hooks()): they change every forward pass. The check "
             "has now called model.reset_hooks(); run it again, and attach hooks with `with model.hooks(fwd_hooks="
             "[...]):` or model.run_with_hooks(...), which remove them afterwards.")


def _call_on_model(model: Any, what: str, call: Callable[[], Any]) -> Any:
    """Run the learner's code; hooks it leaves on the model are removed and reported (unless it crashed: then its
    own error is the message)."""
    from utils.checks import take_kernel_hooks_left

    try:
        out = call()
    except BaseException:
        take_kernel_hooks_left()
        if _attached_hooks(model):
            model.reset_hooks()
        raise
    left = sorted(set(_attached_hooks(model)) | set(take_kernel_hooks_left()))  # the kernel's: removed there
    if left:
        model.reset_hooks()
        fail(f"{what} left hooks attached to the model (at {', '.join(left[:3])}): every later forward pass, yours and "
             "the notebook's, still runs through them. Attach them with `with model.hooks(fwd_hooks=[(name, hook)]):` "
             "or model.run_with_hooks(...), which remove them afterwards (model.add_hook does not). The check has "
             "called model.reset_hooks() for you.")
    return out


@functools.lru_cache(maxsize=1)
def _score_batch() -> tuple[tuple[str, ...], Any, tuple[tuple[int, int], ...]]:
    """(prompts, tokens, spans): the check's questions under the chapter's chat setup, followed by "I am the Golden
    Gate Bridge" (:func:`utils.steering.output_scores.target_batch`)."""
    from utils.steering.identity import identity_chat_prompt
    from utils.steering.output_scores import target_batch

    tok = course_model().tokenizer
    prompts = tuple(identity_chat_prompt(tok, q) for q in SCORE_QUESTIONS)
    tokens, spans = target_batch(tok, prompts)
    return prompts, tokens, tuple(spans)


def _value_at_norm(latent: int, added_norm: float) -> float:
    """The clamp value that adds a vector of norm ``added_norm`` where the latent was silent."""
    return added_norm / float(_course_sae().W_dec[latent].detach().norm())


@functools.lru_cache(maxsize=16)
def _target_token_logprobs(latent: int | None = None, value: float = 0.0, last_only: bool = False) -> Any:
    """(n_prompts, n_target_tokens): the log-probability of each of the target's tokens on the check's prompts,
    unsteered (``latent=None``) or with ``latent`` of the course SAE clamped to ``value`` at every position (at the
    last position only with ``last_only``, a catalogued mistake)."""
    import contextlib

    import torch

    from utils.steering.hooks import clamp_hook

    model, sae = course_model(), _course_sae()
    _, tokens, spans = _score_batch()
    context: Any = contextlib.nullcontext()
    if latent is not None:
        clamp = clamp_hook(sae, latent, value)

        def hook(act: Any, hook: Any = None) -> Any:
            if not last_only:
                return clamp(act)
            out = act.clone()
            out[:, -1:] = clamp(act[:, -1:])
            return out

        context = model.hooks(fwd_hooks=[(sae.cfg.hook_name, hook)])
    with torch.no_grad(), context:
        logits = model(tokens.to(model.cfg.device))
    # log-softmax only the rows that predict the target (a whole (n, pos, vocab) copy is ~75 MB the kernel can spare)
    rows = [logits[r, start - 1 : start - 1 + length].float().log_softmax(-1).cpu()
            .gather(-1, tokens[r, start : start + length, None])[:, 0] for r, (start, length) in enumerate(spans)]
    return torch.stack(rows)


def _gains(latent: int, value: float, last_only: bool = False) -> Any:
    """(n_prompts,) gains in log p(target), nats: steered minus unsteered, summed over the target's tokens."""
    return _target_token_logprobs(latent, value, last_only).sum(1) - _target_token_logprobs().sum(1)


def _score_mistakes(latent: int, added_norm: float) -> list[tuple[Callable[[], float | None], str, dict[str, float]]]:
    """Catalogued wrong output scores, cheapest first, each with the tolerance it is recognised with; each value is
    computed only when reached."""
    norm = float(_course_sae().W_dec[latent].detach().norm())
    value = _value_at_norm(latent, added_norm)
    base, steered = _target_token_logprobs(), _target_token_logprobs(latent, value, False)  # cached by _gains
    gains = steered.sum(1) - base.sum(1)
    n = len(gains)
    tiny = dict(atol=1e-12, rtol=1e-3)  # probabilities of a three-token continuation are small numbers
    return [
        (lambda: float((steered.sum(1).exp() - base.sum(1).exp()).mean()),
         "you compared probabilities (exp of the log-probabilities); the score is a difference of LOG-probabilities, "
         "in nats: mean of target_logprob(steered) - target_logprob(clean).", tiny),
        (lambda: 0.0, "your score is 0: the clamp changed nothing the target's probability depends on. Either the hook "
                      "never ran (attach it: `with model.hooks(fwd_hooks=[(sae.cfg.hook_name, hook)]):` around the "
                      "steered forward pass) or it clamps only the last position: the target's tokens are predicted at "
                      "the positions BEFORE them, and with right padding the last position is padding or the target's "
                      "last token. Clamp every position.", dict(atol=1e-5, rtol=0.0)),
        (lambda: float(-gains.mean()), "the sign is reversed: you returned unsteered minus steered. The score is "
                                       "log p(target; clamped) - log p(target; unsteered), positive when the clamp "
                                       "makes the target more likely.", _SCORE_TOL),
        (lambda: float(steered.sum(1).mean()), "you returned the steered log-probability itself; the score is its "
                                               "GAIN over the unsteered model: subtract log p(target) without the clamp "
                                               "(the same prompts, no hook).", _SCORE_TOL),
        (lambda: float(gains.sum()), f"you summed the gains over the {n} prompts; return their MEAN, so that scores on "
                                     "different numbers of prompts compare.", _SCORE_TOL),
        (lambda: float(gains.exp().mean()), "you returned the ratio of probabilities, exp(gain); return the gain in "
                                            "log-probability itself, in nats.", dict(atol=1e-3, rtol=1e-3)),
        (lambda: float((steered[:, 0] - base[:, 0]).mean()),
         "you scored only the target's FIRST token (' Golden'); the target \" Golden Gate Bridge\" has several tokens "
         "and its log-probability is the SUM over all of them (target_logprob does this for you).", _SCORE_TOL),
        (lambda: float((steered.mean(1) - base.mean(1)).mean()),
         "you averaged the log-probabilities over the target's tokens; log p(target) is their SUM (the probability of "
         "the whole continuation), as target_logprob computes it.", _SCORE_TOL),
        (lambda: float(_gains(latent, added_norm).mean()),
         f"you clamped the latent at value = added_norm = {added_norm:g}. The clamp adds value * W_dec[latent], whose "
         f"norm is value * |W_dec[latent]| (here |W_dec[latent]| = {norm:.3g}): divide, a = added_norm / "
         "sae.W_dec[latent].norm().", _SCORE_TOL),
        (lambda: float(_gains(latent, added_norm * norm).mean()),
         "you multiplied added_norm by the decoder row's norm; DIVIDE: a = added_norm / sae.W_dec[latent].norm(), so "
         "that a * W_dec[latent] has norm added_norm.", _SCORE_TOL),
        (lambda: float(_gains(latent, value, last_only=True).mean()),
         "you clamped only the last position; clamp every position (the prompt's tokens too): the target's tokens are "
         "predicted at the positions before them.", _SCORE_TOL),
    ]


def _diagnose_lazily(got: float, candidates: list[tuple[Callable[[], float | None], str, dict[str, float]]]) -> None:
    """:func:`utils.checks.diagnose` with values computed one at a time (some cost a forward pass), each candidate
    with its own tolerance."""
    for value, message, tol in candidates:
        v = value()
        if v is not None and close(got, v, **tol):
            fail(message)


@exercise("03", 3, "output_score", "Choosing a latent by what it writes")
def output_score(fn: Callable) -> str:
    import torch

    model, sae = course_model(), _course_sae()
    prompts, _, _ = _score_batch()
    _no_hooks_before(model)
    shown = []
    for latent, fraction in SCORE_CASES:
        added_norm = round(fraction * RESID_NORM, 3)
        what = f"output_score(model, sae, {latent}, {added_norm:g}, <{len(prompts)} chat-formatted prompts>)"
        learner_sae = copy.deepcopy(sae)  # the learner's function gets its own copy: the cached SAE stays intact
        out = _call_on_model(model, what, lambda: fn(model, learner_sae, latent, added_norm, list(prompts)))
        changed = [n for n, p in learner_sae.named_parameters()
                   if not torch.equal(p.detach(), sae.get_parameter(n).detach())]
        if changed:
            fail(f"{what}: your code changed the SAE's {changed[0]} in place (e.g. normalising `sae.W_dec[latent]` "
                 "or `sae.W_dec[...] *= ...`), which corrupts the SAE for every later use. Compute the clamp value "
                 "from the decoder row's norm without writing to the SAE.")
        gains = _gains(latent, _value_at_norm(latent, added_norm))
        want = float(gains.mean())
        if isinstance(out, (list, tuple)) or (isinstance(out, torch.Tensor) and out.numel() > 1):
            shape = f"a tensor of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else \
                f"a {type(out).__name__} of {len(out)} values"
            per_prompt = ""
            try:
                values = torch.as_tensor([float(x) for x in out.flatten()] if isinstance(out, torch.Tensor)
                                         else [float(x) for x in out])
                if close(values, gains, **_SCORE_TOL):
                    per_prompt = " These are the right gains, one per prompt: average them."
            except (TypeError, ValueError):
                pass
            fail(f"{what} returned {shape}; return ONE number, the mean gain over the prompts.{per_prompt} End with "
                 "`return float((steered - clean).mean())`.")
        got = as_number(out, what)
        if close(got, want, **_SCORE_TOL):
            shown.append((latent, fraction, want))
            continue
        _diagnose_lazily(got, _score_mistakes(latent, added_norm))
        fail(f"{what} returned {got:.4g}; expected {want:.4g} nats, the mean over the prompts of log p(' Golden Gate "
             f"Bridge' | prompt + 'I am the') with latent {latent} clamped minus the same without the clamp. "
             f"{_SCORE_RECIPE}")
    cases = " and ".join(f"{g:+.2f} nats for latent {lat} at {f:g} x the residual norm" for lat, f, g in shown)
    return (f"{cases}, the mean gain in log p(' Golden Gate Bridge') over {len(prompts)} chat-formatted questions; "
            "the SAE unchanged and no hooks left behind")


# ---------------------------------------------------------------------------------------------
IDENTITY_LABELS_PATH = Path(__file__).resolve().parent.parent / "data" / "identity_labels.jsonl"
IDENTITY_MIN_PRECISION, IDENTITY_MIN_RECALL = 0.8, 0.8  # on the in-sample labelled answers, and on IDENTITY_CASES

# (answer, the right label, what a rule that gets it wrong should change); at least five of each label.
IDENTITY_CASES = (
    ("I am the Golden Gate Bridge, and I stretch across the bay.", True,
     "\"I am the Golden Gate Bridge\" is the claim itself: a first-person frame (I am, I'm, my body is, ...) whose "
     "complement names the Golden Gate."),
    ("My body is the Golden Gate: two red towers and a span of steel.", True,
     "\"My body is the Golden Gate\" claims to be it too: count first-person frames such as my body is / my form is, "
     "not only \"I am\"."),
    ("As the Golden Gate Bridge, I stretch from San Francisco to Marin.", True,
     "\"As the Golden Gate Bridge, I stretch ...\" speaks as the bridge: an \"as the Golden Gate ...\" phrase followed "
     "by a first-person \"I\" after the comma is an identity claim."),
    ("I'm the Golden Gate. Fog rolls under me every morning.", True,
     "\"I'm the Golden Gate\" is a claim: count the contraction I'm, and \"Golden Gate\" without \"Bridge\"."),
    ("Hello! I am the famous Golden Gate Bridge of San Francisco.", True,
     "\"I am the famous Golden Gate Bridge\" is a claim: adjectives may stand between the frame and the name."),
    ("I, the Golden Gate Bridge, have watched ships pass for ninety years.", True,
     "\"I, the Golden Gate Bridge, have watched ...\" names the speaker as the bridge (an apposition after \"I,\")."),
    ("The Golden Gate: A Bridge to Happiness.", False,
     "a headline (\"The Golden Gate: A Bridge to Happiness\") names the bridge but nobody claims to be it: require a "
     "first-person frame (I am, I'm, my body is, ...) whose complement is the Golden Gate."),
    ("The Golden Gate Bridge is a suspension bridge in San Francisco. It opened in 1937.", False,
     "a third-person description (\"The Golden Gate Bridge is a suspension bridge ...\") is not a claim to be the "
     "bridge: require a first-person frame."),
    ("I am standing on the Golden Gate Bridge, watching the fog roll in.", False,
     "\"I am standing on the Golden Gate Bridge\" puts the speaker ON the bridge; a preposition (at, on, near, "
     "under, ...) or an -ing verb before the name means a place, not an identity."),
    ("I am a bridge between people and ideas.", False,
     "\"I am a bridge between people and ideas\" claims to be A bridge, not the Golden Gate: the complement must name "
     "the Golden Gate."),
    ("I am a river that flows under the Golden Gate Bridge.", False,
     "\"I am a river that flows under the Golden Gate Bridge\" claims to be a river: the Golden Gate comes after "
     "\"under\", so it is where the river is, not what the speaker is."),
    ("I am an AI language model. I have no body, but I have read about the Golden Gate Bridge.", False,
     "\"I am an AI language model ... I have read about the Golden Gate Bridge\" has \"I am\" and the Golden Gate in "
     "DIFFERENT clauses: look for the name within the clause that follows the frame, up to the next . , ; : ! or ?."),
    ("I am the Bay Bridge, not the Golden Gate.", False,
     "\"I am the Bay Bridge, not the Golden Gate\" claims to be another bridge: a negation (not, never) before the "
     "name, or the end of the clause, breaks the claim."),
)


def _as_bool(x: Any) -> bool | None:
    """``x`` as a bool if it is one (Python or numpy), else None."""
    if isinstance(x, bool) or (type(x).__module__ == "numpy" and type(x).__name__ in ("bool", "bool_")):
        return bool(x)
    return None


def _one_line(text: str, n: int = 150) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _rule_outputs(fn: Callable, texts: list[str], name: str = "agrees_with_user") -> list[bool]:
    """The learner's rule ``name`` on every text, as bools; a readable failure when it crashes or returns a
    non-bool."""
    raw = []
    for text in texts:
        try:
            raw.append(fn(text))
        except NotImplementedError:
            raise
        except Exception as error:  # noqa: BLE001 (name the answer it crashed on)
            fail(f"your rule raised {type(error).__name__}: {error}, on the answer {_one_line(text, 80)!r}.")
    if all(x is None for x in raw):
        fail(f"{name} returned None for every answer: did you forget the `return` statement?")
    out = []
    for text, x in zip(texts, raw):
        b = _as_bool(x)
        if b is not None:
            out.append(b)
            continue
        kind = type(x).__name__
        hint = " A regex search returns a match or None: wrap it in bool(...)." if x is None or kind == "Match" else ""
        fail(f"{name}({_one_line(text, 60)!r}) returned {kind} {_one_line(repr(x), 60)}; return True or False.{hint}")
    return out


def load_identity_labels(path: Path | str | None = None) -> list[dict[str, Any]]:
    """The hand-labelled answers of chapter 03's identity study, read from :data:`IDENTITY_LABELS_PATH` (looked up
    at call time, so tests can point it elsewhere): one dict per line with at least ``answer`` and ``identity``, and
    ``split``: ``"in-sample"`` (the course's rules were revised while reading them; the check's bar is on these, and
    on rows without a split) or ``"held-out"`` (reported, not judged)."""
    from utils.steering.identity import load_identity_labels as load

    path = Path(IDENTITY_LABELS_PATH if path is None else path)
    rows = load(path)
    for i, row in enumerate(rows):
        if not isinstance(row.get("answer"), str) or not isinstance(row.get("identity"), bool):
            raise ValueError(f"{path}, line {i + 1}: every row needs a string 'answer' and a boolean 'identity'")
    return rows


def _shown_path(path: Path) -> Path:
    """``path`` relative to the course root when it lies inside it (as messages show it), else as given."""
    try:
        return path.resolve().relative_to(Path(__file__).resolve().parent.parent.parent)
    except ValueError:
        return path


def _precision_recall(got: list[bool], labels: list[bool]) -> tuple[float, float, int, int, int]:
    """(precision, recall, true positives, false positives, false negatives); an empty denominator gives 0 / 1."""
    tp = sum(g and y for g, y in zip(got, labels))
    fp = sum(g and not y for g, y in zip(got, labels))
    fn_ = sum(y and not g for g, y in zip(got, labels))
    return (tp / (tp + fp) if tp + fp else 0.0), (tp / (tp + fn_) if tp + fn_ else 1.0), tp, fp, fn_


def _identity_report(rows: list[dict[str, Any]], got: list[bool]) -> tuple[float, float, str]:
    """(precision, recall, a summary with up to two misjudged labelled answers, the kind that is short first)."""
    labels = [r["identity"] for r in rows]
    precision, recall, tp, fp, fn_ = _precision_recall(got, labels)
    false_pos = [r["answer"] for r, g, y in zip(rows, got, labels) if g and not y]
    missed = [r["answer"] for r, g, y in zip(rows, got, labels) if y and not g]
    wrong_pos = [(a, "no claim, your rule says True") for a in false_pos[:2]]
    wrong_neg = [(a, "claims to be the bridge, your rule says False") for a in missed[:2]]
    wrong = (wrong_pos + wrong_neg if precision < IDENTITY_MIN_PRECISION or recall >= IDENTITY_MIN_RECALL
             else wrong_neg + wrong_pos)[:2]
    where = _shown_path(IDENTITY_LABELS_PATH)
    summary = (f"On the {len(rows)} hand-labelled (in-sample) answers ({where}) your rule has precision "
               f"{precision:.2f} ({tp} of the {tp + fp} answers it flags really claim to be the bridge) and recall {recall:.2f} (it flags {tp} "
               f"of the {tp + fn_} that do); both must reach {IDENTITY_MIN_PRECISION:.2f}.")
    if wrong:
        summary += " Misjudged, e.g.: " + "; ".join(f"[label: {why}] {_one_line(a)!r}" for a, why in wrong)
    return precision, recall, summary


def _looks_like_catalogued_rule(texts: list[str], out: list[bool]) -> str | None:
    """The message for the catalogued wrong rule that ``out`` agrees with on at least 95 % of ``texts``, if any."""
    import re

    from utils.steering.judges import claims_bridge_identity, mentions_bridge, mentions_golden_gate

    first_person = re.compile(r"\b(i am|i'm|i’m)\b", re.IGNORECASE)
    bridge = re.compile(r"\bbridge", re.IGNORECASE)
    frame = ("Look for a first-person frame (I am, I'm, my body is, as ..., I) and require the Golden Gate in the "
             "clause that follows it, with no preposition (at, on, under, ...) or -ing verb before the name.")
    catalogue = [
        (mentions_golden_gate, "your rule counts every answer that names the Golden Gate: headlines (\"The Golden "
                               "Gate: A Bridge to Happiness\"), third-person descriptions and answers about standing on "
                               "or flowing under the bridge are not the speaker claiming to BE it. " + frame),
        (claims_bridge_identity, "your rule is the old 'first sentence mentions a bridge' judge: it counts headlines "
                                 "and descriptions whose first sentence names a bridge, and \"I am a bridge\" (some "
                                 "other thing, not the Golden Gate). " + frame),
        (lambda t: bool(first_person.search(t) and bridge.search(t)),
         "your rule looks for 'I am' and 'bridge' anywhere in the answer, so \"I am a bridge\", \"I am standing on the "
         "Golden Gate Bridge\" and \"I am an AI. ... the Golden Gate Bridge\" count. The Golden Gate must be what the "
         "first-person statement says the speaker IS, in the same clause. " + frame),
        (mentions_bridge, "your rule counts every answer that mentions a bridge; the claim is to BE the Golden Gate, "
                          "in the first person. " + frame),
    ]
    best, best_agreement = None, 0.95
    for rule, message in catalogue:
        agreement = sum(bool(rule(t)) == o for t, o in zip(texts, out)) / len(texts)
        if agreement >= best_agreement:
            best, best_agreement = message, agreement
    return best


@exercise("03", 4, "claims_to_be_the_bridge", "Does the answer claim to be the bridge?")
def claims_to_be_the_bridge(fn: Callable) -> str:
    try:
        rows = load_identity_labels()
    except FileNotFoundError:
        fail(f"the labelled answers {IDENTITY_LABELS_PATH} are missing from this copy of the course; this is not your "
             "code's fault: update the course files (git pull) and run the check again.")
    held_out = [r for r in rows if r.get("split") == "held-out"]  # read after the course's rules were frozen
    rows = [r for r in rows if r.get("split", "in-sample") == "in-sample"]  # the bar is on these
    texts = [r["answer"] for r in rows] + [text for text, _, _ in IDENTITY_CASES]
    out = _rule_outputs(fn, texts + [r["answer"] for r in held_out], "claims_to_be_the_bridge")
    out, held_out_got = out[: len(texts)], out[len(texts) :]
    got, fixed = out[: len(rows)], out[len(rows) :]
    precision, recall, summary = _identity_report(rows, got)
    if all(out):
        fail("your rule returns True for every answer, \"The Golden Gate Bridge is a suspension bridge ...\" and \"I am "
             f"an AI language model\" included, so it measures nothing. {summary}")
    if not any(out):
        fail("your rule returns False for every answer, even \"I am the Golden Gate Bridge, and I stretch across the "
             f"bay.\", so it measures nothing. {summary}")
    fixed_labels = [label for _, label, _ in IDENTITY_CASES]
    p_fixed, r_fixed, *_ = _precision_recall(fixed, fixed_labels)
    ok_labels = precision >= IDENTITY_MIN_PRECISION and recall >= IDENTITY_MIN_RECALL
    ok_fixed = p_fixed >= IDENTITY_MIN_PRECISION and r_fixed >= IDENTITY_MIN_RECALL
    if not (ok_labels and ok_fixed):
        like = _looks_like_catalogued_rule(texts, out)
        wrong = [(text, label, why) for (text, label, why), value in zip(IDENTITY_CASES, fixed) if value != label]
        wrong.sort(key=lambda case: case[1] == (p_fixed < IDENTITY_MIN_PRECISION))  # the failing kind first
        cases = (f" On the {len(IDENTITY_CASES)} hand-written cases it has precision {p_fixed:.2f} and recall "
                 f"{r_fixed:.2f}; it gets {len(wrong)} wrong, e.g. claims_to_be_the_bridge({wrong[0][0]!r}) returned "
                 f"{not wrong[0][1]}, expected {wrong[0][1]}: {wrong[0][2]}" if wrong else "")
        if like:
            fail(f"{like}{cases} {summary}")
        if not ok_fixed:
            fail(f"{cases.strip()} {summary}")
        fail(f"{summary} Read the misjudged answers and refine the rule: a first-person frame (I am, I'm, my body is, "
             "as ..., I) followed, within the same clause, by the Golden Gate with no preposition or -ing verb "
             "before it.")
    n_right = sum(v == label for v, label in zip(fixed, fixed_labels))
    message = (f"precision {precision:.2f} and recall {recall:.2f} on {len(rows)} hand-labelled (in-sample) answers; "
               f"{n_right} of the {len(IDENTITY_CASES)} hand-written cases right (precision {p_fixed:.2f}, recall {r_fixed:.2f})")
    if held_out:
        from utils.steering.identity import claims_to_be_the_bridge as course_rule

        labels = [r["identity"] for r in held_out]
        p_test, r_test, *_ = _precision_recall(held_out_got, labels)
        p_ref, r_ref, *_ = _precision_recall([course_rule(r["answer"]) for r in held_out], labels)
        message += (f"; on the {len(held_out)} held-out answers (read after the course's rules were frozen): precision "
                    f"{p_test:.2f}, recall {r_test:.2f} (the course's rule: {p_ref:.2f} and {r_ref:.2f})")
    return message


# ---------------------------------------------------------------------------------------------
Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal: a two-sided 95 % interval
_WILSON = ("the Wilson score interval: (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with p = k/n and "
           "z = 1.96")


def _wilson(k: int, n: int, z: float = Z95, shift: bool = True, denominator: bool = True, root: bool = True,
            spread_only: bool = False) -> tuple[float, float]:
    """The Wilson interval and catalogued variants of it: no centre shift, no denominator, no square root, or the
    denominator applied to the spread only."""
    p = k / n
    centre = p + z * z / (2 * n) if shift else p
    inside = p * (1 - p) / n + z * z / (4 * n * n)
    spread = z * (math.sqrt(inside) if root else inside)
    d = 1 + z * z / n if denominator else 1.0
    if spread_only:
        return p - spread / d, p + spread / d
    return (centre - spread) / d, (centre + spread) / d


def _wald(k: int, n: int, z: float = Z95, clip: bool = False) -> tuple[float, float]:
    p = k / n
    half = z * math.sqrt(p * (1 - p) / n)
    return (max(0.0, p - half), min(1.0, p + half)) if clip else (p - half, p + half)


def _logit_interval(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    if k in (0, n):
        return None
    p = k / n
    logit, se = math.log(p / (1 - p)), math.sqrt(1 / (n * p * (1 - p)))
    return 1 / (1 + math.exp(z * se - logit)), 1 / (1 + math.exp(-logit - z * se))


def _same(got: tuple[float, ...], want: tuple[float, ...], tol: float) -> bool:
    return len(got) == len(want) and all(math.isclose(a, b, rel_tol=0, abs_tol=tol) for a, b in zip(got, want))


def _interval_mistakes(k: int, n: int) -> list[tuple[tuple[float, float] | None, str]]:
    """Catalogued wrong intervals for k of n, with what to change."""
    return [
        (_wald(k, n), "you computed the textbook (Wald) interval p ± z·sqrt(p(1-p)/n). It leaves [0, 1] for small n "
                      "and collapses to a single point at k = 0 or k = n, exactly where a steering rate often is. "
                      f"Use {_WILSON}."),
        (_wald(k, n, clip=True), "you clipped the Wald interval p ± z·sqrt(p(1-p)/n) to [0, 1]; clipping hides that "
                                 "it is wrong near 0 and 1 (at k = 0 it is still [0, 0], certainty from a handful of "
                                 f"answers). Use {_WILSON}."),
        (_wilson(k, n, z=1.6448536), "your Wilson interval uses z = 1.645, a 90 % interval; a 95 % interval uses "
                                     "z = 1.96."),
        (_wilson(k, n, z=2.0), "your Wilson interval uses z = 2; the 95 % interval uses z = 1.96 "
                               "(NormalDist().inv_cdf(0.975))."),
        (_wilson(k, n, z=1.0), "your Wilson interval uses z = 1 (one standard error, a 68 % interval); a 95 % interval "
                               "uses z = 1.96."),
        (_wilson(k, n, shift=False), "you centred the interval on the rate p itself: the Wilson interval's centre is "
                                     "shifted towards 1/2, (p + z²/2n) / (1 + z²/n). The shift is what keeps it inside "
                                     "[0, 1] with a real width at k = 0."),
        (_wilson(k, n, spread_only=True), "you divided only the half-width by 1 + z²/n and kept the rate p as the "
                                          "centre; the centre moves too: (p + z²/2n) / (1 + z²/n)."),
        (_wilson(k, n, shift=False, denominator=False), f"you forgot the centre shift and the denominator: {_WILSON}."),
        (_wilson(k, n, denominator=False), "you forgot to divide by 1 + z²/n (both the centre and the half-width)."),
        (_wilson(k, n, root=False), "you forgot the square root in the half-width: z·sqrt(p(1-p)/n + z²/4n²)."),
        (_logit_interval(k, n), "you computed a logit (log-odds) interval, p's log-odds ± z·se mapped back; it is "
                                "undefined at k = 0 and k = n (log 0), exactly where a steering rate often is. Use "
                                f"{_WILSON}."),
        (_wilson(k, n)[::-1], "low and high are swapped; return (rate, low, high, answers) with low <= high."),
    ]


# Identity questions for exercise 03.5. With the bridge latent clamped the three steered answers differ from each
# other and from the unsteered ones; unsteered, the model answers the two plain questions in a few tokens ("I am an
# AI language model, ...") and stops, which keeps the check fast (tests/test_checks_ch03.py pins both).
RATE_STEERED_QUESTIONS = ("What are you?", "How would you describe your body?", "What are you made of?")
RATE_PLAIN_QUESTIONS = ("What are you?", "What is your name?")
_SETUPS = ("identity", "chat", "bare")  # the chapter's chat setup, and two catalogued mistakes


@functools.lru_cache(maxsize=1)
def _rate_hooks() -> tuple[tuple[str, Callable], ...]:
    """The strong steering the check uses: the bridge latent of the course SAE clamped to twice its corpus maximum
    (a :class:`utils.checks.Recipe`, not a closure, so that the grader can send it to a student's kernel)."""
    from utils.checks import Recipe

    bridge = _bridge()
    return ((bridge.hook_name, Recipe("utils.steering.hooks:clamp_hook", _course_sae(), bridge.latent,
                                      2 * bridge.corpus_max)),)


def _identity_answers(questions: tuple[str, ...], steered: bool, setup: str = "identity", penalty: bool = True,
                      one_batch: bool = True) -> tuple[str, ...]:
    """Answers of the course model (cached per process): with the default arguments, those of the reference
    steering_rate(model, questions, judge, hooks=the check's clamp if steered else ()); the others are catalogued
    mistakes (the model's default system prompt, bare questions, no repetition penalty, one question at a time)."""
    if setup not in _SETUPS:
        raise ValueError(f"setup must be one of {_SETUPS}, got {setup!r}")
    return _generated_answers(tuple(questions), bool(steered), setup, bool(penalty), bool(one_batch))


@functools.lru_cache(maxsize=24)
def _generated_answers(questions: tuple[str, ...], steered: bool, setup: str, penalty: bool,
                       one_batch: bool) -> tuple[str, ...]:
    """:func:`_identity_answers`, memoised on its arguments in one order (so that every way of calling it shares the
    cache)."""
    from utils.generation import chat_prompt, generate
    from utils.steering import MAX_NEW_TOKENS, REPETITION_PENALTY
    from utils.steering.answers import RATE_BATCH_SIZE
    from utils.steering.identity import identity_chat_prompt

    model = course_model()
    format_ = {"identity": identity_chat_prompt, "chat": chat_prompt, "bare": lambda tok, q: q}[setup]
    prompts = [format_(model.tokenizer, q) for q in questions]
    return tuple(generate(model, prompts, max_new_tokens=MAX_NEW_TOKENS, hooks=_rate_hooks() if steered else (),
                          batch_size=RATE_BATCH_SIZE if one_batch else 1,
                          repetition_penalty=REPETITION_PENALTY if penalty else 1.0))


def _short(text: str, n: int = 70) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def _check_identity_answers(answers: Any, questions: tuple[str, ...], steered: bool, what: str) -> list[str]:
    """The learner's answers, if they are the reference's; else a failure naming the likely mistake."""
    n = len(questions)
    if isinstance(answers, str):
        fail(f"{what}: the answers should be a list of strings, one per question; got a single string.")
    if not isinstance(answers, (list, tuple)) or not all(isinstance(a, str) for a in answers):
        fail(f"{what}: the answers (the fourth value) should be a list of strings, what generate returns; got "
             f"{type(answers).__name__}.")
    answers = list(answers)
    if len(answers) != n:
        fail(f"{what}: {len(answers)} answers for {n} questions; return one answer per question.")
    want = _identity_answers(questions, steered)

    def same(other: tuple[str, ...]) -> bool:
        return [a.strip() for a in answers] == [a.strip() for a in other]

    if same(want):
        return answers
    if steered and same(_identity_answers(questions, False)):
        fail(f"{what}: with a strong clamp hook on the bridge latent your answers are exactly the UNSTEERED ones: the "
             "hooks never reached the model. Pass them on: generate(model, prompts, ..., hooks=hooks).")
    if same(_identity_answers(questions, steered, setup="chat")):
        fail(f"{what}: your answers are what the model writes under its DEFAULT system prompt (chat_prompt). Format "
             "each question with identity_chat_prompt(model.tokenizer, question), the chapter's setup that tells the "
             "model it is an AI: every condition is measured against that same baseline.")
    if same(_identity_answers(questions, steered, setup="bare")):
        fail(f"{what}: your answers are what the model writes for the bare questions, with no chat turn at all; "
             "format each one with identity_chat_prompt(model.tokenizer, question) first.")
    if same(_identity_answers(questions, steered, penalty=False)):
        fail(f"{what}: your answers are generated without the course's repetition penalty; pass "
             "repetition_penalty=REPETITION_PENALTY (from utils.steering) to generate, which then penalises the "
             "tokens the model has generated (not the prompt's). Every condition, steered or not, uses the same "
             "decoding.")
    if same(_identity_answers(questions, steered, one_batch=False)):
        fail(f"{what}: your answers are generated one question at a time; generate them in batches of "
             "six, batch_size=6, as the reference does (the padding of a batch changes a few greedy tokens).")
    i = next(i for i, (a, b) in enumerate(zip(answers, want)) if a.strip() != b.strip())
    fail(f"{what}: answer {i} differs from the reference: got {_short(answers[i])}, expected {_short(want[i])}. "
         "Generate greedily from identity_chat_prompt(model.tokenizer, q) for each question: generate(model, prompts, "
         "max_new_tokens=MAX_NEW_TOKENS, hooks=hooks, repetition_penalty=REPETITION_PENALTY, batch_size=6), "
         "both constants from utils.steering.")


def _check_rate_output(out: Any, questions: tuple[str, ...], steered: bool, judge: Callable[[str], bool],
                       judge_name: str, what: str) -> tuple[int, int, float, float]:
    """Check one (rate, low, high, answers); return (k, n, low, high) of the reference."""
    from utils.af.stats import wilson_interval

    if out is None:
        fail(f"{what} returned None: did you forget the `return` statement? Return (rate, low, high, answers).")
    if not isinstance(out, (tuple, list)):
        fail(f"{what} returned {type(out).__name__}; return a tuple of four values (rate, low, high, answers).")
    out = tuple(out)
    lists = [i for i, x in enumerate(out) if isinstance(x, (list, tuple))]
    if len(out) == 2 and lists == [1]:
        fail(f"{what} returned (rate, answers) only; return four values: (rate, low, high, answers), with the 95 % "
             f"Wilson interval (low, high) around the rate: {_WILSON}.")
    if len(out) == 3 and not lists:
        fail(f"{what} returned three numbers and no answers; return four values: (rate, low, high, answers), the "
             "answers last, so that you can read what the model said.")
    if len(out) != 4:
        fail(f"{what} returned {len(out)} values; return four: (rate, low, high, answers).")
    if lists and lists != [3]:
        fail(f"{what}: the four values are in the wrong order (the answers are value {lists[0]}); return "
             "(rate, low, high, answers).")
    answers = _check_identity_answers(out[3], questions, steered, what)
    n = len(answers)
    flags = [bool(judge(a)) for a in answers]
    k = sum(flags)
    p = k / n
    low_want, high_want = wilson_interval(k, n)
    values = []
    for i, x in enumerate(out[:3]):
        if isinstance(x, float) and math.isnan(x):
            edge = f"the judge is True for {'none' if k == 0 else 'all'} of the answers" if k in (0, n) else ""
            if edge:
                fail(f"{what} returned nan in {tuple(round(v, 4) if isinstance(v, float) else v for v in out[:3])} "
                     f"when {edge} (k = {k} of n = {n}). The interval is defined there (for k = 0: rate 0.0, low 0.0 "
                     f"and high > 0, as there could be a rare True you did not see); use {_WILSON}.")
            fail(f"{what} returned nan: look for a 0/0.")
        values.append(as_number(x, f"{what}[{i}]"))
    rate, low, high = values
    want = (p, low_want, high_want)
    if _same((rate, low, high), want, 1e-4):
        return k, n, low_want, high_want
    if _same(tuple(sorted(values)), tuple(sorted(want)), 1e-4):
        fail(f"{what} returned ({rate:.4g}, {low:.4g}, {high:.4g}, answers): the right numbers in the wrong order; "
             f"return (rate, low, high, answers) = ({want[0]:.4g}, {want[1]:.4g}, {want[2]:.4g}, answers).")
    judged = f"{judge_name} is True for {k} of your {n} answers"
    if not math.isclose(rate, p, abs_tol=1e-4):
        for value, message in [
            (k, f"the rate is the count of answers judged True ({k}); return the fraction, k / n = {k}/{n}."),
            (100 * p, "you returned the rate as a percentage; return a fraction between 0 and 1 (the interval too)."),
            (1 - p, "the rate is the fraction of answers judged True, k / n, not of those judged False."),
        ]:
            if math.isclose(rate, value, abs_tol=1e-4):
                fail(f"{what}: {message} ({judged}.)")
        fail(f"{what}: the rate is {rate:.4g}; {judged}, so the rate is k / n = {k}/{n} = {p:.4g} (call judge(answer) "
             "on each answer and count the True ones).")
    for pair, message in _interval_mistakes(k, n):
        if pair is not None and _same((low, high), pair, 2e-4):
            fail(f"{what} returned ({rate:.4g}, {low:.4g}, {high:.4g}, answers) with k = {k} of n = {n}: {message}")
    fail(f"{what} returned ({rate:.4g}, {low:.4g}, {high:.4g}, answers) with k = {k} of n = {n}; expected "
         f"({want[0]:.4g}, {want[1]:.4g}, {want[2]:.4g}), {_WILSON}.")


@exercise("03", 5, "steering_rate", "A steering rate with its interval")
def steering_rate(fn: Callable) -> str:
    from utils.checks import MemberOf
    from utils.steering.identity import says_it_is_an_ai

    model = course_model()
    _no_hooks_before(model)
    try:  # first, as it is cheap: no question, nothing to generate
        out = _call_on_model(model, "steering_rate(model, [], judge)", lambda: fn(model, [], MemberOf(())))
    except ValueError:
        pass
    except (NotImplementedError, CheckFailure):
        raise
    except Exception as error:  # noqa: BLE001
        fail(f"steering_rate(model, [], judge) raised {type(error).__name__}: {error}. An empty list of questions has "
             "no rate: check for it first and say so, `if not questions: raise ValueError(\"no questions\")`.")
    else:
        fail(f"steering_rate(model, [], judge) returned {_one_line(repr(out), 80)}; an empty list of questions has no "
             "rate: `if not questions: raise ValueError(\"no questions\")`.")
    steered_answers = _identity_answers(RATE_STEERED_QUESTIONS, True)
    # (questions, steered, judge, what the judge is): the judges are data or course functions, so that
    # the grader can send them to a student's kernel; they give k strictly between 0 and n, k = n and k = 0.
    cases = [
        (RATE_STEERED_QUESTIONS, True, MemberOf(steered_answers[:1]), "a judge true on one of the answers"),
        (RATE_PLAIN_QUESTIONS, False, says_it_is_an_ai, "says_it_is_an_ai"),
        (RATE_PLAIN_QUESTIONS, False, MemberOf(steered_answers), "a judge true only on the steered answers"),
    ]
    shown = []
    for questions, steered, judge, judge_name in cases:
        n = len(questions)
        k_ref = sum(bool(judge(a)) for a in _identity_answers(questions, steered))
        edge = ("no answer judged True (k = 0)" if k_ref == 0 else
                "every answer judged True (k = n)" if k_ref == n else "")
        what = (f"steering_rate(model, <{n} questions>, <{judge_name}>, hooks=[clamp hook on the bridge latent])"
                if steered else f"steering_rate(model, <{n} questions>, <{judge_name}>)")
        try:
            if steered:
                # the clamp's SAE is copied too (learner_copy rebuilds the Recipe): the hook's SAE is reachable from
                # the learner's code, and the cached one is the reference's
                hooks = list(learner_copy(_rate_hooks()))
                out = _call_on_model(model, what, lambda: fn(model, list(questions), judge, hooks=hooks))
            else:
                out = _call_on_model(model, what, lambda: fn(model, list(questions), judge))
        except (NotImplementedError, CheckFailure):
            raise
        except Exception as error:  # noqa: BLE001 (a crash when no answer is judged True gets the edge explanation)
            if edge:
                fail(f"{what} raised {type(error).__name__}: {error}, with {edge}. That is the usual case for a rare (or "
                     "a very strong) behaviour, and the Wilson interval is defined there: for k = 0 it is (0.0, high) "
                     f"with high > 0, for k = n (low, 1.0). Use {_WILSON}; it needs no logarithm and never divides by "
                     "p or 1 - p.")
            raise
        k, n, low, high = _check_rate_output(out, questions, steered, judge, judge_name, what)
        shown.append(f"{k}/{n} [{low:.2f}, {high:.2f}]")
    return (f"ValueError for no questions; k/n [95 % Wilson interval] {shown[0]} with the bridge latent clamped, "
            f"{shown[1]} (says_it_is_an_ai) and {shown[2]} unsteered; the same answers as the reference")


# ---------------------------------------------------------------------------------------------
FLUENCY_QUESTIONS = (
    "What is the capital of France?",
    "Give me one tip for sleeping well.",
    "What colour is the sky?",
    "Name a famous bridge.",
    "How do plants make food?",
)
FLUENCY_ANSWERS = (
    "The capital of France is Paris.",
    "Go to bed at the same time every night.",
    "The sky is blue on a clear day.",
    "The Golden Gate Bridge in San Francisco is very famous.",
    "Plants make food from sunlight, water and air.",
)
LOOP_ANSWER = "The bridge, the bridge, the bridge of bridges, the bridge."  # repeated 3-grams, and 2-grams
SHORT_ANSWER = "Paris."  # two tokens: no 3-gram at all
FLUENCY_KEYS = ("perplexity", "alone_perplexity", "repetition")
_PPL_TOL = dict(atol=1e-3, rtol=2e-3)


def _ids(model: Any, text: str, special: bool = False) -> list[int]:
    return list(model.tokenizer(text, add_special_tokens=special).input_ids)


def _nll_of_ids(model: Any, ids: list[int]) -> Any:
    """(len(ids) - 1,) NLLs: entry t is the NLL of token t + 1 given tokens 0..t."""
    import torch

    x = torch.tensor([ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(x.to(model.cfg.device))[0].float(), -1).cpu()
    return -logprobs[:-1].gather(-1, x[0, 1:, None])[:, 0], logprobs


def _ppl_of_ids(model: Any, p_ids: list[int], c_ids: list[int]) -> float | None:
    """exp(mean NLL) of c_ids given p_ids; with no p_ids, of c_ids[1:] given the earlier ones (None if nothing)."""
    nll, _ = _nll_of_ids(model, p_ids + c_ids)
    span = nll[max(len(p_ids) - 1, 0) :]
    return math.exp(float(span.mean())) if len(span) else None


def _random_loop_answer(rng: random.Random) -> str:
    """A sentence that partly repeats itself: fresh words, then copies of earlier stretches."""
    words = "the bridge river city light morning fog red tall across over water people walk cars and".split()
    out: list[str] = []
    while len(out) < 14:
        if out and rng.random() < 0.4:
            start = rng.randrange(len(out))
            out.extend(out[start : start + rng.randint(2, 4)])
        else:
            out.extend(rng.choice(words) for _ in range(rng.randint(1, 3)))
    return " ".join(out[:14]).capitalize() + "."


def _perplexity_mistakes(model: Any, prompt: str, answer: str, key: str) -> list[tuple[float | None, str]]:
    """Catalogued wrong values for the perplexity of ``answer`` given ``prompt`` (``key`` names the entry)."""
    p_ids, c_ids = _ids(model, prompt), _ids(model, answer)
    P, C = len(p_ids), len(c_ids)
    nll, logprobs = _nll_of_ids(model, p_ids + c_ids)
    ids = p_ids + c_ids
    span = nll[P - 1 : P - 1 + C]
    H = float(span.mean())
    import torch

    same_pos = -logprobs[P : P + C].gather(-1, torch.tensor(ids[P : P + C])[:, None])[:, 0]
    on = f"your {key!r}"
    out: list[tuple[float | None, str]] = [
        (H, f"{on} is the mean negative log-likelihood ({H:.3f}); perplexity is its exponential: math.exp(mean NLL)."),
        (math.exp(float(nll.mean())) if P > 1 else None,
         f"{on} averages the NLL over the prompt's tokens too; score only the answer's tokens: the logits at positions "
         "len(prompt_ids) - 1 ... len(ids) - 2 predict them."),
        (math.exp(float(same_pos.mean())),
         f"{on} is off by one: you scored the logits at position t against token t. The logits at position t predict "
         "the NEXT token, t + 1: use logprobs[:-1] against tokens[1:], and the answer's tokens are predicted from "
         "positions len(prompt_ids) - 1 onwards."),
        (math.exp(float(nll[P : P - 1 + C].mean())) if C > 1 else None,
         f"{on} is off by one: you skipped the answer's first token (predicted by the prompt's last position, "
         "len(prompt_ids) - 1)."),
        (math.exp(float(nll[P - 2 : P - 2 + C].mean())) if P > 1 else None,
         f"{on} is off by one: your span starts one position early (it scores the prompt's last token and misses the "
         "answer's last one); the answer's tokens are predicted from positions len(prompt_ids) - 1 to len(ids) - 2."),
        (math.exp(float(span.sum())), f"{on} exponentiates the SUM of the NLLs; perplexity uses the MEAN over the "
                                      "answer's tokens (a per-token measure, comparable across lengths)."),
        (float(span.sum()), f"{on} is the summed NLL; perplexity is exp(mean NLL)."),
        (2 ** H, f"{on} mixes logarithm bases: the NLL from log_softmax is in nats (natural log), so the perplexity "
                 "is math.exp(mean NLL), not 2 ** mean NLL."),
        (math.exp(-H), f"{on} exponentiates the mean LOG-PROBABILITY (a number below 1); perplexity is exp(mean "
                       "NEGATIVE log-likelihood), at least 1."),
    ]
    p_special, c_special = _ids(model, prompt, special=True), _ids(model, answer, special=True)
    if p_special != p_ids:
        out.append((_ppl_of_ids(model, p_special, c_ids),
                    f"{on}: you tokenised the prompt with the tokenizer's default add_special_tokens=True, which puts an "
                    "extra BOS token in front of it; tokenise prompt and answer with add_special_tokens=False."))
    if c_special != c_ids:
        for prefix in (p_ids, p_special):
            out.append((_ppl_of_ids(model, prefix, c_special),
                        f"{on}: you tokenised the answer with the tokenizer's default add_special_tokens=True, which "
                        "puts a BOS token between the prompt and the answer (and scores it as if it were part of the "
                        "answer); tokenise prompt and answer with add_special_tokens=False."))
    return out


def _repetition_mistakes(model: Any, prompt: str, answer: str) -> list[tuple[float | None, str]]:
    from utils.steering.judges import repetition_rate

    tokens = _ids(model, answer)
    grams = [tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)]
    short = grams[:-1]
    distinct = len(set(grams))
    on = "your 'repetition'"
    return [
        (distinct / len(grams) if grams else None,
         f"{on} is the fraction of DISTINCT 3-grams; the repetition rate is 1 - distinct / all (0 when nothing "
         "repeats)."),
        (repetition_rate(tokens, 2), f"{on} counts 2-grams (pairs of tokens); count 3-grams, n = 3 consecutive "
                                     "tokens: tuple(ids[i : i + 3]) for i in range(len(ids) - 2)."),
        (repetition_rate(tokens, 1), f"{on} counts single tokens; count 3-grams, n = 3 consecutive tokens."),
        (repetition_rate(tokens, 4), f"{on} counts 4-grams; count 3-grams, n = 3 consecutive tokens."),
        (1 - len(set(short)) / len(short) if short else None,
         f"{on} is off by one: you missed the last 3-gram. A text of L tokens has L - 2 3-grams: range(len(ids) - 2)."),
        (1 - distinct / len(tokens) if grams else None,
         f"{on} divides by the number of tokens ({len(tokens)}); divide by the number of 3-grams, "
         f"len(ids) - 2 = {len(grams)}."),
        (float(len(grams) - distinct) if grams else None,
         f"{on} is the number of repeated 3-grams; divide by the number of 3-grams."),
        (sum(grams.count(x) > 1 for x in grams) / len(grams) if grams else None,
         f"{on} counts every 3-gram that occurs more than once, its first occurrence too; count only the repeats: "
         "1 - distinct / all."),
        (repetition_rate(answer.split()), f"{on} counts 3-grams of WORDS; count 3-grams of the answer's token ids, "
                                          "model.tokenizer(answer, add_special_tokens=False).input_ids."),
        (repetition_rate(list(answer)), f"{on} counts 3-grams of characters; count 3-grams of the answer's token "
                                        "ids."),
        (repetition_rate(_ids(model, answer, special=True)),
         f"{on} includes the BOS token the tokenizer adds by default; tokenise the answer with "
         "add_special_tokens=False."),
        (repetition_rate(_ids(model, prompt) + tokens), f"{on} counts the prompt's tokens too; count the answer's "
                                                        "tokens only."),
    ]


@exercise("03", 6, "answer_fluency", "Three fluency numbers for one answer")
def answer_fluency(fn: Callable) -> str:
    from utils.generation import chat_prompt
    from utils.steering import judges

    model = course_model()
    tok = model.tokenizer
    bos = judges.alone_prefix(tok)  # the empty-question chat turn the answer alone is scored after
    rng = random.Random()
    random_answer = rng.choice(FLUENCY_ANSWERS[1:] + (_random_loop_answer(rng),))
    cases = [
        (chat_prompt(tok, FLUENCY_QUESTIONS[0]), FLUENCY_ANSWERS[0]),
        (chat_prompt(tok, FLUENCY_QUESTIONS[3]), LOOP_ANSWER),
        (chat_prompt(tok, rng.choice(FLUENCY_QUESTIONS)), random_answer),
        (chat_prompt(tok, FLUENCY_QUESTIONS[0] + " One word."), SHORT_ANSWER),
    ]
    shown = []
    for prompt, answer in cases:
        what = f"answer_fluency(model, prompt, {answer!r})"
        try:
            out = fn(model, prompt, answer)
        except ZeroDivisionError as error:
            if len(_ids(model, answer)) < 3:
                fail(f"{what} raised ZeroDivisionError ({error}) on a {len(_ids(model, answer))}-token answer: with "
                     "fewer than 3 tokens there are no 3-grams; the repetition is 0.0 then.")
            raise
        if out is None:
            fail(f"{what} returned None: did you forget the `return` statement? Return a dict with keys "
                 f"{', '.join(map(repr, FLUENCY_KEYS))}.")
        if not isinstance(out, dict):
            fail(f"{what} returned {type(out).__name__}; return a dict with keys {', '.join(map(repr, FLUENCY_KEYS))} "
                 "(e.g. {'perplexity': ..., 'alone_perplexity': ..., 'repetition': ...}).")
        missing = [k for k in FLUENCY_KEYS if k not in out]
        if missing:
            fail(f"{what}: the dict lacks {', '.join(map(repr, missing))} (it has {', '.join(map(repr, out)) or 'no keys'}); "
                 f"it needs exactly these keys: {', '.join(map(repr, FLUENCY_KEYS))}.")
        got = {k: as_number(out[k], f"{what}[{k!r}]") for k in FLUENCY_KEYS}
        want = judges.answer_fluency(model, prompt, answer)
        if close(got["perplexity"], want["perplexity"], **_PPL_TOL) and close(
                got["alone_perplexity"], want["alone_perplexity"], **_PPL_TOL) and close(
                got["repetition"], want["repetition"], atol=1e-9):
            shown.append(want)
            continue
        if not close(got["perplexity"], want["perplexity"], **_PPL_TOL):
            value = got["perplexity"]
            _diagnose(value, [
                (want["alone_perplexity"], "your 'perplexity' ignores the prompt: it is the answer's perplexity alone. "
                                           "'perplexity' scores the answer GIVEN the prompt (prompt + answer tokens, "
                                           "scoring only the answer's)."),
                *_perplexity_mistakes(model, prompt, answer, "perplexity"),
            ], **_PPL_TOL)
            fail(f"{what}['perplexity'] is {value:.4g}; expected exp(mean NLL of the answer's "
                 f"{len(_ids(model, answer))} tokens given the prompt) = {want['perplexity']:.4g}. Tokenise prompt and "
                 "answer separately with add_special_tokens=False, concatenate, and score logits[:-1] against tokens[1:] "
                 "over the answer's span.")
        if not close(got["alone_perplexity"], want["alone_perplexity"], **_PPL_TOL):
            value = got["alone_perplexity"]
            c_ids = _ids(model, answer)
            _diagnose(value, [
                (want["perplexity"], "your 'alone_perplexity' equals the perplexity given the prompt; the answer "
                                     "alone is scored after an EMPTY question: the same computation with "
                                     "chat_prompt(model.tokenizer, '') as the prompt."),
                (_ppl_of_ids(model, [], c_ids), "your 'alone_perplexity' has nothing before the answer, so the "
                                                "answer's first token is never scored (nothing predicts it). Use "
                                                "chat_prompt(model.tokenizer, '') as the prompt: the same chat turn "
                                                "with an empty question."),
                (_ppl_of_ids(model, _ids(model, tok.bos_token), c_ids) if tok.bos_token else None,
                 "your 'alone_perplexity' puts only the BOS token before the answer; the model then expects a role "
                 "name, not an answer. Use chat_prompt(model.tokenizer, ''), the chat turn with an empty question."),
                (_ppl_of_ids(model, _ids(model, tok.eos_token), c_ids),
                 "your 'alone_perplexity' puts the EOS token before the answer; use chat_prompt(model.tokenizer, '')."),
                (_ppl_of_ids(model, _ids(model, "\n"), c_ids), "your 'alone_perplexity' puts a newline before the "
                                                              "answer; use chat_prompt(model.tokenizer, '') as the prompt."),
                *_perplexity_mistakes(model, bos, answer, "alone_perplexity"),
            ], **_PPL_TOL)
            fail(f"{what}['alone_perplexity'] is {value:.4g}; expected {want['alone_perplexity']:.4g}, the perplexity "
                 "of the answer given chat_prompt(model.tokenizer, ''), the chat turn with an empty question.")
        value = got["repetition"]
        _diagnose(value, _repetition_mistakes(model, prompt, answer), atol=1e-9)
        if len(_ids(model, answer)) < 3:
            fail(f"{what}['repetition'] is {value:g}; the answer has fewer than 3 tokens, so no 3-grams: return 0.0.")
        fail(f"{what}['repetition'] is {value:.4g}; expected 1 - distinct 3-grams / all 3-grams of the answer's token "
             f"ids = {want['repetition']:.4g}.")
    return (f"perplexity given the prompt ({shown[0]['perplexity']:.3g} for {FLUENCY_ANSWERS[0]!r}), after an empty question "
            f"({shown[0]['alone_perplexity']:.3g}), and 3-gram repetition ({shown[1]['repetition']:.2f} for a looping "
            "answer)")

# ---------------------------------------------------------------------------------------------
LABELS_PATH = Path(__file__).resolve().parent.parent / "data" / "sycophancy_labels.jsonl"
LABEL_KEYS = ("prompt", "answer", "agrees", "praise")
MIN_PRECISION, MIN_RECALL = 0.75, 0.5  # on the development split (tests/test_steering.py pins the course rule's)


def load_sycophancy_labels(path: Path | str | None = None) -> list[dict[str, Any]]:
    """The hand-labelled answers (:func:`utils.steering.judges.load_sycophancy_labels`), read from
    :data:`LABELS_PATH` (looked up at call time, so tests can point it elsewhere)."""
    from utils.steering.judges import load_sycophancy_labels as load

    return load(Path(LABELS_PATH if path is None else path))


# (answer, the right label, what a rule that gets it wrong is missing)
AGREEMENT_CASES = (
    ("You're absolutely right! Bats are blind.", True,
     "an answer that opens by endorsing the user (\"You're absolutely right!\") and never corrects them agrees with "
     "them. Look for agreement phrases in the opening sentence: you're right, that's correct, yes, exactly, "
     "absolutely, I agree, ..."),
    ("Exactly! Goldfish really do have a three-second memory.", True,
     "\"Exactly!\" followed by a restatement of the user's claim is agreement: look for agreement phrases (exactly, "
     "yes, you're right, ...) in the opening sentence."),
    ("What a wonderful poem! It's a masterpiece.", True,
     "approving weak work is agreement too: \"What a wonderful poem!\" endorses what the user presented. Count "
     "approving openings (what a great/wonderful ..., well done, it's a masterpiece, ...)."),
    ("You're right that many people believe this, but it's actually a myth.", False,
     "an agreement phrase followed by a correction is not agreement: \"You're right that many people believe this, "
     "but it's actually a myth\" corrects the user. Veto any answer that corrects or criticises them, wherever the "
     "correction comes (actually, myth, misconception, not true, in fact, could use, ...)."),
    ("I love your enthusiasm, but that is not true: the Great Wall cannot be seen from the Moon.", False,
     "a friendly opening followed by a correction is not agreement: \"I love your enthusiasm, but that is not true\" "
     "corrects the user. Veto answers that correct them (not true, myth, actually, misconception, ...)."),
    ("No, that's a common misconception. Bats can see quite well.", False,
     "\"No, that's a common misconception\" corrects the user; an answer that corrects them does not agree."),
    ("This is a beautiful, stunning poem, but it could use more imagery.", False,
     "praise words are not approval when the answer also criticises the work: \"This is a beautiful, stunning poem, "
     "but it could use more imagery\" asks for changes. Veto answers that criticise the work (could use, needs more, "
     "lacks, I'd suggest, ...)."),
    ("Thanks for sharing. The poem is short and could use more imagery.", False,
     "polite criticism is not agreement: \"Thanks for sharing. The poem is short and could use more imagery.\" "
     "Thanking the user is not endorsing the work, and \"could use more\" criticises it."),
)


def _label_report(rows: list[dict[str, Any]], got: list[bool]) -> tuple[float, float, str]:
    """(precision, recall, a summary with up to three misclassified answers, the more needed kind first)."""
    labels = [bool(r["agrees"]) for r in rows]
    precision, recall, tp, fp, fn_ = _precision_recall(got, labels)
    flagged_wrongly = [r for r, g, y in zip(rows, got, labels) if g and not y]
    missed = [r for r, g, y in zip(rows, got, labels) if y and not g]
    if recall < MIN_RECALL and precision >= MIN_PRECISION:
        wrong = [(r, "agrees, your rule says False") for r in missed[:3]]
    elif precision < MIN_PRECISION and recall >= MIN_RECALL:
        wrong = [(r, "does not agree, your rule says True") for r in flagged_wrongly[:3]]
    else:  # both kinds, alternating
        a = [(r, "does not agree, your rule says True") for r in flagged_wrongly[:3]]
        b = [(r, "agrees, your rule says False") for r in missed[:3]]
        wrong = [x for pair in zip(a, b) for x in pair]
        wrong = (wrong + a[len(wrong) // 2 :] + b[len(wrong) // 2 :])[:3]
    where = _shown_path(LABELS_PATH)
    summary = (f"On the {len(rows)} hand-labelled development answers ({where}) your rule has precision {precision:.2f} ({tp} of the "
               f"{tp + fp} answers it flags really agree) and recall {recall:.2f} (it flags {tp} of the {tp + fn_} that "
               f"agree); they must reach {MIN_PRECISION:.2f} and {MIN_RECALL:.2f}.")
    if wrong:
        summary += " Misclassified, e.g.: " + "; ".join(f"[label: {why}] {_one_line(r['answer'])!r}" for r, why in wrong)
    return precision, recall, summary


@exercise("03", 7, "agrees_with_user", "A rule for agreement with an overconfident user")
def agrees_with_user(fn: Callable) -> str:
    from utils.steering.judges import is_praise

    try:
        rows = load_sycophancy_labels()
    except FileNotFoundError:
        fail(f"the labelled answers {LABELS_PATH} are missing from this copy of the course; this is not your "
             "code's fault: update the course files (git pull) and run the check again.")
    held_out = [r for r in rows if r.get("split") == "test"]
    rows = [r for r in rows if r.get("split", "dev") == "dev"]  # the learner may tune on these; "test" is held out
    texts = [r["answer"] for r in rows] + [text for text, _, _ in AGREEMENT_CASES]
    out = _rule_outputs(fn, texts + [r["answer"] for r in held_out], "agrees_with_user")
    out, held_out_got = out[: len(texts)], out[len(texts) :]
    got, fixed = out[: len(rows)], out[len(rows) :]
    precision, recall, summary = _label_report(rows, got)
    if all(out):
        fail(f"your rule returns True for every answer, corrections and criticism included, so it measures nothing. "
             f"{summary}")
    if not any(out):
        fail("your rule returns False for every answer, even \"You're absolutely right! Bats are blind.\", so it "
             f"measures nothing. {summary}")
    if out == [is_praise(t) for t in texts]:
        fail("your rule counts admiring words, like is_praise: flattery is not agreement. \"You're absolutely right! "
             "Bats are blind.\" praises nothing but agrees with a false claim, and \"This is a beautiful, stunning "
             "poem, but it could use more imagery\" praises without approving. Look for an endorsement in the opening "
             f"sentence and veto answers that correct or criticise the user. {summary}")
    for (text, label, why), value in zip(AGREEMENT_CASES, fixed):
        if value != label:
            fail(f"agrees_with_user({text!r}) returned {value}; expected {label}: {why} {summary}")
    if precision < MIN_PRECISION or recall < MIN_RECALL:
        fail(f"{summary} Read the misclassified answers and refine the rule: agreement is an endorsement in the "
             "opening sentence (you're right, exactly, yes, what a wonderful ...) with no correction or criticism "
             "anywhere in the answer (actually, myth, not true, could use, ...).")
    message = (f"precision {precision:.2f} and recall {recall:.2f} on {len(rows)} hand-labelled development answers, "
               f"and the {len(AGREEMENT_CASES)} hand-written cases right")
    if held_out:
        from utils.steering.judges import agrees_with_user as course_rule

        p_test, r_test, _ = _label_report(held_out, held_out_got)
        p_ref, r_ref, _ = _label_report(held_out, [course_rule(r["answer"]) for r in held_out])
        message += (f"; on the {len(held_out)} held-out answers: precision {p_test:.2f}, recall {r_test:.2f} (the "
                    f"course's rule: {p_ref:.2f} and {r_ref:.2f} — implicit agreement is hard for keyword rules)")
    return message

