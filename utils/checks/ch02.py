"""Checks for chapter 02 — finding features: top-activating examples, context windows, activation
density scanned batch by batch, direct logit effects, latent dashboards, concept search end to end,
testing a latent as a detector, decoder neighbourhoods, a label audit, and feature splitting.

Each check compares the learner's function with the reference in :mod:`utils.features` (or
:mod:`utils.dashboard`, :mod:`utils.named_latents`) on fixed and randomised inputs and, on a mismatch,
tests the catalogued mistakes to say which one it probably is. The scan and the concept search run the
course model; their mistakes are recomputed from the same padded batches the exercise asks for.
"""

from __future__ import annotations

import functools
import math
import numbers
import random
from typing import Any, Callable

from utils.checks import as_number, as_tensor, close, course_model, exercise, fail, keep, learner_copy
from utils.checks import call_checked as _call
from utils.checks import diagnose as _diagnose
from utils.checks import generator as _generator
from utils.checks import no_in_place as _no_in_place

GRADED_REMOTELY = True  # the grader runs these checks in its own process, on answers sent from the kernel as data

# Unique, GPT-2-style byte tokens (Ġ = a leading space), so every window of them is distinguishable.
_TOKENS = ["<|endoftext|>"] + ["Ġ" + w for w in (
    "The old lighthouse keeper climbed spiral stairs every evening to light a great lamp while storms rolled "
    "across grey water and fishing boats hurried home past jagged rocks near harbor walls where gulls circled "
    "above tired sailors singing quiet songs about distant islands"
).split()]
assert len(set(_TOKENS)) == len(_TOKENS)


def _index_tensor(x: Any, what: str) -> Any:
    """Indices as a 1-d-or-more int64 CPU tensor (tensor, list or array accepted)."""
    import torch

    if x is None:
        fail(f"{what} is None: return the indices too.")
    try:
        t = torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    except (TypeError, ValueError, RuntimeError):
        fail(f"{what} should be a tensor of indices, got {type(x).__name__}.")
    if t.is_floating_point() and not torch.equal(t, t.round()):
        fail(f"{what} holds non-integer values: indices must be whole numbers (use `//` for integer division).")
    return t.long()


# ---------------------------------------------------------------------------------------------
def _latent_acts(g: Any, batch: int, pos: int, p: float = 0.3) -> Any:
    """One latent's activations on (batch, pos) tokens: sparse, non-negative, distinct non-zero values."""
    import torch

    values = 0.05 + 5 * torch.rand(batch, pos, generator=g)
    fires = torch.rand(batch, pos, generator=g) < p
    fires.view(-1)[torch.randperm(batch * pos, generator=g)[:4]] = True  # at least 4 examples
    return values * fires


_TOP_HINT = ("latent_acts is (batch, pos); flatten it, take .topk(k) of the flat vector, then turn each flat "
             "index into (batch_idx, pos_idx) = (flat // pos, flat % pos) with pos = latent_acts.shape[1].")


@exercise("02", 1, "top_activating_examples", "Top-activating examples")
def top_activating_examples(fn: Callable) -> str:
    import torch

    from utils import features

    g = _generator()
    batch = int(torch.randint(3, 9, (), generator=g))
    pos = batch + int(torch.randint(3, 30, (), generator=g))
    random_acts = _latent_acts(g, batch, pos)
    cases = [
        (_latent_acts(_generator(11), 5, 12), 6),
        (_latent_acts(_generator(12), 9, 4, p=0.5), 5),  # more rows than positions
        (random_acts, int(torch.randint(2, min(12, int((random_acts > 0).sum())) + 1, (), generator=g))),
    ]
    for acts, k in cases:
        B, P = acts.shape
        out, changed = _call(fn, ("latent_acts", "k"), acts, k, shape_hint=_TOP_HINT)
        what = f"top_activating_examples(latent_acts {tuple(acts.shape)}, k={k})"
        if out is None:
            fail(f"{what} returned None: did you forget the `return` statement?")
        if not isinstance(out, (tuple, list)):
            fail(f"{what} returned {type(out).__name__}; return a tuple (values, batch_idx, pos_idx).")
        want_v, want_b, want_p = features.top_activating_examples(acts, k)
        flat = want_b * P + want_p
        if len(out) == 2:
            second = _index_tensor(out[1], f"{what}[1]")
            if second.shape == flat.shape and torch.equal(second, flat):
                fail("you returned the flat indices into latent_acts.flatten(). Turn each into a (document, "
                     "position) pair and return three tensors: values, flat // pos, flat % pos, with "
                     "pos = latent_acts.shape[1].")
            fail(f"{what} returned 2 items; return three: (values, batch_idx, pos_idx).")
        if len(out) != 3:
            fail(f"{what} returned {len(out)} items; return three: (values, batch_idx, pos_idx).")
        values = as_tensor(out[0], f"{what}[0] (the values)")
        if values.ndim == 2:
            along = "row (dim=-1)" if values.shape == (B, k) else "column (dim=0)" if values.shape == (k, P) else "row"
            fail(f"the values have shape {tuple(values.shape)}: you took the top k of every {along}. The top "
                 f"examples are the k largest entries of the WHOLE matrix: {_TOP_HINT}")
        if values.shape != want_v.shape:
            fail(f"the values have shape {tuple(values.shape)}; expected ({k},), the k largest activations.")
        if not close(values, want_v):
            _diagnose(values, [
                (want_v.flip(0), "right examples, but in ascending order: return them largest first "
                                 "(topk already does; if you sorted, use descending=True)."),
                (acts.flatten().topk(k, largest=False).values,
                 "you took the k SMALLEST activations (largest=False); take the k largest."),
                (acts.flatten().sort().values[-k:], "right examples, but in ascending order (the last k of an "
                                                    "ascending sort): return them largest first."),
            ])
            fail(f"values {values.tolist()} differ from the k = {k} largest entries of latent_acts, "
                 f"largest first: {[round(v, 4) for v in want_v.tolist()]}.")
        b = _index_tensor(out[1], f"{what}[1] (batch_idx)")
        p = _index_tensor(out[2], f"{what}[2] (pos_idx)")
        if b.shape != want_b.shape or p.shape != want_p.shape:
            fail(f"batch_idx has shape {tuple(b.shape)} and pos_idx {tuple(p.shape)}; both should be ({k},), "
                 "one index per example.")
        if torch.equal(b, want_b) and torch.equal(p, want_p):
            _no_in_place(changed)
            continue
        in_range = bool(((b >= 0) & (b < B) & (p >= 0) & (p < P)).all())
        if in_range and torch.equal(acts[b, p], acts[want_b, want_p]):
            _no_in_place(changed)  # ties broken differently: still the largest entries
            continue
        for cand_b, cand_p, message in [
            (flat // B, flat % B,
             f"you unravelled the flat index with the number of documents (batch = {B}): flat // batch. "
             f"Each row holds pos = {P} entries, so batch_idx = flat // pos and pos_idx = flat % pos."),
            (want_p, want_b, "batch_idx and pos_idx are swapped: return (values, batch_idx, pos_idx)."),
            (flat, flat, "you returned the flat index into latent_acts.flatten() for both; "
                         "batch_idx = flat // pos and pos_idx = flat % pos, with pos = latent_acts.shape[1]."),
            (flat % P, flat // P, "batch_idx and pos_idx are swapped: batch_idx = flat // pos, pos_idx = flat % pos."),
        ]:
            if torch.equal(b, cand_b) and torch.equal(p, cand_p):
                fail(message)
        if torch.equal(b, flat) or torch.equal(p, flat):
            fail("one of your index tensors holds the flat index into latent_acts.flatten(): "
                 "batch_idx = flat // pos and pos_idx = flat % pos.")
        fail(f"latent_acts[batch_idx, pos_idx] should equal the values you returned; expected batch_idx "
             f"{want_b.tolist()} and pos_idx {want_p.tolist()}, got {b.tolist()} and {p.tolist()}.")
    return "k largest of a (batch, pos) matrix, largest first, with (batch, pos) indices"


# ---------------------------------------------------------------------------------------------
@exercise("02", 2, "context_window", "Context windows")
def context_window(fn: Callable) -> str:
    from utils import features

    rng = random.Random()
    n = rng.randint(20, len(_TOKENS))
    random_tokens = rng.sample(_TOKENS, n)
    cases = [  # (tokens, pos, before, after); None = leave the default
        (_TOKENS[:30], 15, None, None),
        (_TOKENS[:30], 4, None, None),  # clipped at the start
        (_TOKENS[:25], 23, 5, 3),  # clipped at the end
        (random_tokens, rng.randint(0, 3), rng.randint(5, 12), rng.randint(1, 5)),
        (random_tokens, rng.randint(13, n - 1), rng.randint(1, 12), rng.randint(1, 5)),
    ]
    for tokens, pos, before, after in cases:
        kwargs = {} if before is None else {"before": before, "after": after}
        b, a = (10, 3) if before is None else (before, after)
        args = ", ".join([f"str_tokens (len {len(tokens)})", f"pos={pos}"] + [f"{k}={v}" for k, v in kwargs.items()])
        what = f"context_window({args})"
        out, changed = _call(fn, ("str_tokens",), list(tokens), pos, **kwargs)
        if out is None:
            fail(f"{what} returned None: did you forget the `return` statement?")
        if not isinstance(out, (tuple, list)) or len(out) != 2 or isinstance(out[0], str):
            fail(f"{what} returned {type(out).__name__}; return a pair (window, index): `return window, pos - start`.")
        window, index = out
        if not isinstance(window, (list, tuple)) or not all(isinstance(t, str) for t in window):
            fail(f"{what}: the window should be a list of token strings, got {type(window).__name__}.")
        window = list(window)
        want_window, want_index = features.context_window(tokens, pos, b, a)
        start, end = max(0, pos - b), pos + a + 1
        if window != want_window:
            for cand, message in [
                (tokens[pos - b : end] if pos - b < 0 else None,
                 f"not clipped at the start: pos - before = {pos - b} is negative, and a negative slice start "
                 f"counts from the END of the list. Use start = max(0, pos - before)."),
                (tokens[start : pos + a],
                 f"off by one: the window stops one token early. It runs from pos - before to pos + after "
                 f"INCLUSIVE, so slice str_tokens[start : pos + after + 1]."),
                (tokens[start:pos] if a > 1 else None,
                 "the window stops before the peak token at pos: slice up to pos + after + 1 (inclusive of "
                 "pos and the `after` tokens after it)."),
                (tokens[start : pos + 1],
                 f"the window ends at the peak token: it must include the after = {a} tokens after pos too "
                 "(the latent is computed from the prefix, but the next tokens show what it predicts)."),
                (tokens[max(0, pos - b + 1) : end] if pos - b + 1 > 0 else None,
                 "off by one at the start: you kept before - 1 tokens before pos; start at pos - before."),
                (tokens[max(0, pos - b - 1) : end] if pos - b > 0 else None,
                 "off by one at the start: you kept before + 1 tokens before pos; start at pos - before."),
                (tokens[pos - a : pos + b + 1] if pos - a >= 0 else None,
                 "`before` and `after` are swapped: the window has `before` tokens before pos and `after` after it."),
            ]:
                if cand is not None and window == cand and cand != want_window:
                    fail(message)
            fail(f"window {window} differs from the expected {want_window}: the tokens from pos - before "
                 f"to pos + after inclusive, clipped at the start and end of the sequence.")
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            index = as_number(index, f"{what}[1] (the index)")
            if index != int(index):
                fail(f"the index should be a whole number, got {index}.")
        index = int(index)
        if index != want_index:
            if start == 0 and index == b and b != want_index:
                fail(f"the index is not adjusted for clipping: with pos = {pos} < before = {b} the window starts "
                     f"at token 0, so pos sits at index pos - start = {want_index}, not at `before`.")
            if index == pos:
                fail(f"you returned pos = {pos}, its position in the whole sequence; return its index INSIDE the "
                     f"window, pos - start = {want_index}.")
            if abs(index - want_index) == 1:
                fail(f"the index is off by one: got {index}, expected pos - start = {want_index}.")
            fail(f"index {index} is not the position of pos inside the window (expected {want_index}).")
        _no_in_place(changed)
    return "pos - before .. pos + after inclusive, clipped at both ends"


# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _encoded_batches(texts: tuple[str, ...], batch_size: int, max_len: int) -> tuple[tuple[Any, Any], ...]:
    """``(z (b, pos, d_sae), mask (b, pos))`` of every batch, batched as the exercises say: ``tokenize_texts``,
    then ``padded_batches(rows, batch_size, eos)``. The catalogued mistakes are computed from these."""
    from utils.feature_scan import encode_batch, padded_batches, tokenize_texts

    model, sae, _, _ = _dashboard_inputs()
    rows = tokenize_texts(model.tokenizer, list(texts), max_len)
    return tuple((encode_batch(model, sae, tokens).float().cpu(), mask)
                 for _, tokens, mask in padded_batches(rows, batch_size, model.tokenizer.eos_token_id))


def _with_bos(mask: Any) -> Any:
    out = mask.clone()
    out[:, 0] = True
    return out


def _density_mistakes(batches: tuple[tuple[Any, Any], ...], n_texts: int) -> list[tuple[Any, str]]:
    """Density vectors (d_sae,) of the catalogued scan mistakes, with their messages."""
    import torch

    def density(keep: Callable[[Any], Any]) -> Any:  # keep(mask) -> which positions count
        fires = sum((z[keep(m)] > 0).sum(0) for z, m in batches)
        return fires.float() / sum(int(keep(m).sum()) for _, m in batches)

    real = sum(int(m.sum()) for _, m in batches)
    fires = sum((z[m] > 0).sum(0) for z, m in batches).float()
    per_batch = [(z[m] > 0).float().mean(0) for z, m in batches]
    def everything(m: Any) -> Any:
        return torch.ones_like(m)

    def after_bos(m: Any) -> Any:
        keep = torch.ones_like(m)
        keep[:, 0] = False
        return keep

    n_all = sum(m.numel() for _, m in batches)
    return [
        (density(everything), "you counted every position of the padded batch: BOS and padding too. The padding "
                              "token is a real token id, so the SAE encodes it and some latents fire on it; count "
                              "only the positions where mask is True, z[mask] of shape (real tokens, d_sae)."),
        (density(_with_bos), "you counted the BOS token at position 0 (mask is False there on purpose): its residual "
                             "is the same huge vector in every text and fires the same latents every time. Count "
                             "only the positions where mask is True."),
        (density(after_bos), "you counted the padding positions (mask is False there): the padding token is a real "
                             "token id, so the SAE encodes it and some latents fire on it. Count only the positions "
                             "where mask is True."),
        (fires / n_all, f"the firing counts are right, but you divided by every position of the padded batches "
                        f"({n_all}), padding and BOS included; divide by the number of real tokens, the sum of "
                        f"mask.sum() over the batches ({real})."),
        (torch.stack(per_batch).mean(0),
         "you averaged the batches' densities: the batches hold different numbers of tokens (the last one is "
         "usually smaller), so that weights a token of a small batch more. Keep two running totals, firing counts "
         "and real tokens, and divide once at the end."),
        (per_batch[-1], "your density comes from the last batch only: add each batch's firing counts and token "
                        "count to running totals (+=) instead of overwriting them."),
        (per_batch[0], "your density comes from the first batch only: did you `return` inside the loop? Keep "
                       "running totals over every batch and divide after the loop."),
        (fires, "you returned the number of tokens on which each latent fires; divide by the number of real "
                f"tokens ({real}) to get a fraction."),
        (fires / n_texts, f"you divided the firing counts by the number of texts ({n_texts}); divide by the "
                          f"number of real tokens ({real})."),
        (sum(z[m].sum(0) for z, m in batches) / real,
         "you returned each latent's mean activation; the density is how OFTEN it fires, whatever the size: "
         "count (z > 0)."),
        (100 * fires / real, "you returned a percentage; return a fraction between 0 and 1."),
        (1 - fires / real, "you returned the fraction of tokens on which each latent is zero; the density is the "
                           "fraction on which it fires (z > 0)."),
    ]


_SCAN_HINT = ("Tokenise with tokenize_texts(model.tokenizer, texts, max_len), loop over padded_batches(rows, "
              "batch_size, model.tokenizer.eos_token_id), encode each batch with encode_batch(model, sae, tokens) "
              "-> (b, pos, d_sae), and add (z[mask] > 0).sum(0) and mask.sum() to two running totals.")


def _scan_cases(rng: random.Random) -> list[tuple[tuple[str, ...], int, int]]:
    """(texts, batch_size, max_len): short sentences and long documents cut at max_len, in batches of unequal
    size; the second case is random."""
    from utils.concepts import NEUTRAL, PRAISE

    _, _, _, docs = _dashboard_inputs()
    val = [d["text"] for d in docs if d["split"] == "val"]
    fixed = (NEUTRAL[0], PRAISE[0], val[0], NEUTRAL[2], val[1], "Hi.", PRAISE[3])
    k = rng.randint(4, 8)
    texts = rng.sample(val, k - 1) + [rng.choice(NEUTRAL)]
    return [(fixed, 3, 40), (tuple(texts), rng.randint(2, 3), rng.randint(20, 48))]


@exercise("02", 3, "scan_density", "Activation density, one batch at a time")
def scan_density(fn: Callable) -> str:
    model, sae, _, _ = _dashboard_inputs()
    d_sae = sae.cfg.d_sae
    for texts, batch_size, max_len in _scan_cases(random.Random()):
        what = f"scan_density(model, sae, texts ({len(texts)}), batch_size={batch_size}, max_len={max_len})"
        out, changed = _call(fn, ("model", "sae", "texts"), model, sae, list(texts), batch_size=batch_size,
                             max_len=max_len, shape_hint=_SCAN_HINT)
        got = as_tensor(out, what)
        batches = _encoded_batches(texts, batch_size, max_len)
        real = sum(int(m.sum()) for _, m in batches)
        if got.numel() == 1:
            fail(f"{what} returned a single number; return one density per latent, shape ({d_sae},).")
        if got.shape != (d_sae,):
            if got.ndim == 2 and got.shape[-1] == d_sae:
                fail(f"{what} returned shape {tuple(got.shape)}: one row per token (or per batch). Sum the firing "
                     f"counts over tokens AND batches into one ({d_sae},) vector. {_SCAN_HINT}")
            fail(f"{what} returned shape {tuple(got.shape)}; expected (d_sae,) = ({d_sae},), one density per latent.")
        want = sum((z[m] > 0).sum(0) for z, m in batches).float() / real
        # Up to one token's worth per latent: a different batching may move a near-tie in TopK (rare).
        if close(got, want, atol=1.01 / real, rtol=0):
            _no_in_place(changed)
            continue
        _diagnose(got, _density_mistakes(batches, len(texts)), atol=1e-6)
        fail(f"{what}: your densities differ from the fraction of real tokens on which each latent fires (the "
             f"first latents: expected {[round(v, 4) for v in want[:4].tolist()]}, got "
             f"{[round(v, 4) for v in got[:4].tolist()]}; {real} real tokens). {_SCAN_HINT}")
    return "firing counts and real tokens summed over batches, BOS and padding left out"


# ---------------------------------------------------------------------------------------------
_LOGIT_HINT = ("Shapes: direction (d_model,), ln_final_weight (d_model,), W_U (d_model, d_vocab): scale the "
               "direction element-wise by the weight and put it on the left: (direction * ln_final_weight) @ W_U.")


@exercise("02", 4, "logit_effects", "Direct logit effects")
def logit_effects(fn: Callable) -> str:
    import torch

    from utils import features

    def inputs(g: Any, d_model: int, d_vocab: int) -> tuple[Any, Any, Any]:
        direction = torch.randn(d_model, generator=g)
        gamma = 0.2 + 2.5 * torch.rand(d_model, generator=g)  # far from uniform, so it matters
        return direction, gamma, torch.randn(d_model, d_vocab, generator=g) / d_model**0.5

    g = _generator()
    d_model = int(torch.randint(8, 40, (), generator=g))
    cases = [inputs(_generator(41), 16, 50), inputs(g, d_model, d_model + int(torch.randint(5, 200, (), generator=g)))]
    for direction, gamma, W_U in cases:
        out, changed = _call(fn, ("direction", "ln_final_weight", "W_U"), direction, gamma, W_U, shape_hint=_LOGIT_HINT)
        got = as_tensor(out, "logit_effects(direction, ln_final_weight, W_U)")
        want = features.logit_effects(direction, gamma, W_U)
        if got.shape != want.shape:
            fail(f"returned shape {tuple(got.shape)}; expected (d_vocab,) = {tuple(want.shape)}. {_LOGIT_HINT}")
        if close(got, want, atol=1e-4):
            _no_in_place(changed)
            continue
        scaled = direction * gamma
        rms = direction.pow(2).mean().add(1e-5).sqrt()
        _diagnose(got, [
            (direction @ W_U, "you left out the final norm's weight: the residual stream passes through "
                              "ln_final (x / rms(x) * weight) before W_U. Use (direction * ln_final_weight) @ W_U."),
            ((direction * gamma.mean()) @ W_U,
             "you multiplied by the MEAN of ln_final_weight; it scales each dimension by its own weight: "
             "(direction * ln_final_weight) @ W_U, element-wise."),
            ((direction / gamma) @ W_U, "you divided by ln_final_weight; multiply: (direction * ln_final_weight) @ W_U."),
            ((direction + gamma) @ W_U, "you added ln_final_weight; it multiplies: (direction * ln_final_weight) @ W_U."),
            (want / want.norm(), "you normalised the result; return the raw logit effects (direction * ln_final_weight) @ W_U."),
            ((direction / direction.norm() * gamma) @ W_U,
             "you normalised the direction first; use it as it is: (direction * ln_final_weight) @ W_U."),
            (want / scaled.norm(), "you divided by the norm of direction * ln_final_weight; return the raw "
                                   "logit effects (direction * ln_final_weight) @ W_U."),
            ((direction / rms * gamma) @ W_U,
             "you also divided by the RMS of the direction. RMSNorm's per-token scale is positive and does not "
             "change which tokens are promoted, so we leave it out: (direction * ln_final_weight) @ W_U."),
            (-want, "the sign is flipped: (direction * ln_final_weight) @ W_U."),
        ], atol=1e-4)
        fail(f"values differ from (direction * ln_final_weight) @ W_U (max difference "
             f"{float((got - want).abs().max()):.3g}).")
    return "(direction * ln_final_weight) @ W_U"


# ---------------------------------------------------------------------------------------------
FIXED_LATENT = 3175  # a latent with a clear story in the course SAE; a random live one is checked too


@functools.lru_cache(maxsize=1)
def _dashboard_inputs() -> tuple[Any, Any, Any, list[dict]]:
    """(model, sae, stats, docs), loaded once per process: the course model, SAE, corpus statistics, corpus. Kept by
    the grader for every notebook (:func:`utils.checks.keep`): a learner's function gets copies
    (:func:`utils.checks.learner_copy`; :func:`utils.checks.call_checked` copies its arguments), never these."""
    from utils.corpus import load_corpus
    from utils.feature_scan import FeatureStats
    from utils.sae import load_course_sae

    return (course_model(), *keep("ch02 course SAE, feature stats and corpus",
                                  (load_course_sae(), FeatureStats.load(), load_corpus())))


@functools.lru_cache(maxsize=8)
def _reference_dashboard(latent: int, n_examples: int, n_logits: int, before: int, after: int, title: str) -> Any:
    from utils import dashboard

    model, sae, stats, docs = _dashboard_inputs()
    return dashboard.build_dashboard(latent, model, sae, stats, docs, n_examples=n_examples, n_logits=n_logits,
                                     before=before, after=after, title=title)


@functools.lru_cache(maxsize=32)
def _doc_ids(doc: int) -> tuple[int, ...]:
    from utils.feature_scan import tokenize_texts

    model, _, stats, docs = _dashboard_inputs()
    return tuple(tokenize_texts(model.tokenizer, [docs[doc]["text"]], stats.max_len)[0])


@functools.lru_cache(maxsize=16)
def _doc_latent_acts(doc: int, latent: int) -> tuple[float, ...]:
    """The latent's activation on every token of document ``doc`` (BOS first, as in the scan)."""
    import torch

    from utils.feature_scan import encode_batch

    model, sae, _, _ = _dashboard_inputs()
    return tuple(encode_batch(model, sae, torch.tensor([list(_doc_ids(doc))]))[0, :, latent].float().cpu().tolist())


def _logit_candidates(latent: int) -> list[tuple[Any, str]]:
    """Effect vectors (d_vocab,) of the catalogued logit-effect mistakes, with their messages."""
    import torch

    from utils.features import logit_effects

    model, sae, _, _ = _dashboard_inputs()
    with torch.no_grad():
        W_U = model.W_U.detach().float().cpu()
        gamma = model.ln_final.weight.detach().float().cpu()
        dec = sae.W_dec[latent].detach().float().cpu()
        enc = sae.W_enc[:, latent].detach().float().cpu()
        return [
            (logit_effects(enc, gamma, W_U),
             "your logit effects come from the ENCODER column W_enc[:, latent], which says when the latent "
             "fires (what it reads). The logits it pushes come from what it WRITES into the residual stream: "
             "the decoder row sae.W_dec[latent]."),
            (dec @ W_U, "you left out the final norm's weight: use logit_effects(sae.W_dec[latent], "
                        "model.ln_final.weight, model.W_U), i.e. (W_dec[latent] * ln_final.weight) @ W_U."),
            (enc @ W_U, "your logit effects come from the encoder column W_enc[:, latent] (and leave out "
                        "ln_final.weight). Use the decoder row: (sae.W_dec[latent] * model.ln_final.weight) @ model.W_U."),
            (-logit_effects(dec, gamma, W_U), "the sign is flipped: promoted tokens have the LARGEST effects."),
        ]


def _pairs(x: Any, what: str) -> list[tuple[str, float]]:
    """A list of (token string, effect) pairs, or a readable failure."""
    import torch

    if not isinstance(x, (list, tuple)) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in x):
        fail(f"Dashboard.{what} should be a list of (token, effect) pairs, got {type(x).__name__}.")
    pairs = []
    for token, value in x:
        if isinstance(token, torch.Tensor) and token.numel() == 1:
            token = token.item()
        if isinstance(token, numbers.Integral):
            fail(f"Dashboard.{what} holds token ids ({token}); show the token strings: model.tokenizer.decode([id]).")
        if not isinstance(token, str):
            fail(f"Dashboard.{what}: each token should be a string, got {type(token).__name__}.")
        pairs.append((token, as_number(value, f"the effect of {token!r} in Dashboard.{what}")))
    return pairs


def _same_pairs(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> bool:
    return (len(got) == len(want) and [t for t, _ in got] == [t for t, _ in want]
            and all(close(g, w, atol=2e-3, rtol=1e-3) for (_, g), (_, w) in zip(got, want)))


def _check_logits(board: Any, want: Any, latent: int, n_logits: int) -> None:
    from utils.features import top_and_bottom

    top, bottom = _pairs(board.top_logits, "top_logits"), _pairs(board.bottom_logits, "bottom_logits")
    if len(top) != n_logits or len(bottom) != n_logits:
        fail(f"latent {latent}: {len(top)} top and {len(bottom)} bottom logits; show n_logits = {n_logits} of each.")
    if _same_pairs(top, want.top_logits) and _same_pairs(bottom, want.bottom_logits):
        return
    if _same_pairs(top, want.bottom_logits) and _same_pairs(bottom, want.top_logits):
        fail("top_logits and bottom_logits are swapped: top_logits are the tokens the latent PROMOTES "
             "(largest effects, descending), bottom_logits those it suppresses (smallest, ascending).")
    if _same_pairs(top, want.top_logits) and _same_pairs(bottom, want.bottom_logits[::-1]):
        fail("bottom_logits are in the wrong order: list the most suppressed token first (ascending effects).")
    tok = _dashboard_inputs()[0].tokenizer
    for effects, message in _logit_candidates(latent):
        tv, ti, bv, bi = top_and_bottom(effects, n_logits)
        cand_top = [(tok.decode([i]), v) for i, v in zip(ti.tolist(), tv.tolist())]
        cand_bottom = [(tok.decode([i]), v) for i, v in zip(bi.tolist(), bv.tolist())]
        if _same_pairs(top, cand_top) or _same_pairs(bottom, cand_bottom):
            fail(message)
    which = "top_logits" if not _same_pairs(top, want.top_logits) else "bottom_logits"
    fail(f"latent {latent}: {which} {getattr(board, which)[:3]}... differ from the reference "
         f"{getattr(want, which)[:3]}...: the n_logits largest (and smallest) entries of "
         "logit_effects(sae.W_dec[latent], model.ln_final.weight, model.W_U), as (token string, effect) pairs.")


def _check_examples(board: Any, want: Any, latent: int, n_examples: int, before: int, after: int) -> None:
    import torch

    _, _, stats, _ = _dashboard_inputs()
    examples = board.examples
    if not isinstance(examples, (list, tuple)):
        fail(f"Dashboard.examples should be a list of (tokens, activations) pairs, got {type(examples).__name__}.")
    if len(examples) != len(want.examples):
        fail(f"latent {latent}: {len(examples)} examples; expected {len(want.examples)} (n_examples = "
             f"{n_examples}, one per document of stats.top_docs[latent]).")
    rows = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, (list, tuple)) or len(ex) != 2:
            fail(f"Dashboard.examples[{i}] should be a pair (tokens, activations), got {type(ex).__name__}.")
        tokens, acts = ex
        if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
            fail(f"Dashboard.examples[{i}][0] should be a list of token strings (decode each id with "
                 "model.tokenizer.decode([id])).")
        try:
            acts = [float(a) for a in (acts.tolist() if isinstance(acts, torch.Tensor) else acts)]
        except (TypeError, ValueError):
            fail(f"Dashboard.examples[{i}][1] should be a list of activations (floats).")
        rows.append((list(tokens), acts))
    want_tokens = [t for t, _ in want.examples]
    got_tokens = [t for t, _ in rows]
    if got_tokens != want_tokens:
        if got_tokens == want_tokens[::-1]:
            fail("right examples, wrong order: stats.top_docs[latent] is sorted by activation, largest first; "
                 "keep that order.")
        if sorted(map(tuple, got_tokens)) == sorted(map(tuple, want_tokens)):
            fail("right examples, wrong order: keep the order of stats.top_docs[latent] (largest activation first).")
        docs_i, pos_i = stats.top_docs[latent].tolist(), stats.top_pos[latent].tolist()
        for i, (got, ref) in enumerate(zip(got_tokens, want_tokens)):
            if got == ref:
                continue
            doc, pos = docs_i[i], pos_i[i]
            tok = _dashboard_inputs()[0].tokenizer
            ids = _doc_ids(doc)
            strs = [tok.decode([t]) for t in ids]
            for shift in (1, -1, 2, -2):
                p = pos + shift
                if 0 <= p < len(strs) and got == strs[max(0, p - before) : p + after + 1]:
                    fail(f"example {i}: the window is centred {abs(shift)} token{'s' if abs(shift) > 1 else ''} "
                         f"{'after' if shift > 0 else 'before'} the peak. stats.top_pos counts positions in "
                         "tokenize_texts(tokenizer, [text], stats.max_len)[0], which starts with the BOS token; "
                         "tokenise the same way and take context_window(str_tokens, pos, before, after).")
            if got == strs[1:][max(0, pos - before) : pos + after + 1]:
                fail(f"example {i}: the window is shifted by one: stats.top_pos counts the BOS token at position 0 "
                     "(tokenize_texts puts it in front); tokenise with tokenize_texts so positions line up.")
            joined = "".join(got)
            if joined and joined not in "".join(strs):
                fail(f"example {i} does not come from document stats.top_docs[latent][{i}] = {doc}: the i-th "
                     f"example is the window around stats.top_pos[latent][i] in docs[stats.top_docs[latent][i]].")
            fail(f"example {i}: tokens {got} differ from the window {ref} around position {pos} of document {doc} "
                 f"(context_window(str_tokens, pos, before={before}, after={after})).")
    for i, ((tokens, acts), (_, ref)) in enumerate(zip(rows, want.examples)):
        got, ref_t = torch.tensor(acts), torch.tensor(ref)
        scale = max(1.0, float(ref_t.abs().max()))
        if len(acts) == len(tokens) and close(got, ref_t, atol=2e-3 * scale, rtol=1e-3):
            continue
        doc, pos = int(stats.top_docs[latent][i]), int(stats.top_pos[latent][i])
        full = torch.tensor(_doc_latent_acts(doc, latent))
        start = max(0, pos - before)
        for shift in (1, -1):
            s = start + shift
            if s >= 0 and len(acts) in (len(tokens), len(tokens) - 1) \
                    and close(got, full[s : s + len(acts)], atol=2e-3 * scale, rtol=1e-3):
                fail(f"example {i}: the activations are misaligned with the tokens by one position "
                     f"({'one token later' if shift > 0 else 'one token earlier'}): the activation on "
                     "window[j] is acts[start + j], with the same start = max(0, pos - before) as the window.")
        if len(acts) != len(tokens):
            fail(f"example {i} has {len(tokens)} tokens but {len(acts)} activations: take the activations of "
                 "the same positions as the window, acts[start : start + len(window)].")
        if ref_t.max() > 0 and close(got, ref_t / ref_t.max(), atol=1e-3):
            fail(f"example {i}: you normalised the activations by their maximum; show the raw activations "
                 "(the colour scale is set when rendering).")
        fail(f"example {i}: activations differ from the latent's activations on the window's tokens (expected "
             f"{[round(v, 3) for v in ref[:6]]}..., got {[round(v, 3) for v in acts[:6]]}...). Encode the document "
             "tokenised with BOS (encode_batch) and take [0, start : start + len(window), latent].")


def _check_stats_fields(board: Any, want: Any, latent: int) -> None:
    import torch

    from utils.features import log10_density

    _, _, stats, _ = _dashboard_inputs()
    density = as_number(board.density, "Dashboard.density")
    if not close(density, want.density, atol=1e-9, rtol=1e-4):
        count, n = int(stats.fire_counts[latent]), stats.n_tokens
        for value, message in [
            (count, f"density is {density:g}, the number of tokens on which the latent fires; divide by the number "
                    f"of tokens scanned (stats.n_tokens = {n:,}), or use stats.density[latent]."),
            (100 * want.density, "density is a percentage; give the fraction (stats.density[latent])."),
            (float(log10_density(torch.tensor(want.density))), "density is log10 of the density; give the "
                                                               "fraction itself (stats.density[latent])."),
            (float(stats.act_sums[latent]) / n, "density is the latent's mean activation; give the fraction of "
                                                "tokens on which it fires (stats.density[latent])."),
        ]:
            if close(density, value, atol=1e-9, rtol=1e-4):
                fail(message)
        fail(f"density {density:g} differs from stats.density[latent] = {want.density:g}.")
    try:
        hist = torch.as_tensor(board.hist.detach().cpu() if isinstance(board.hist, torch.Tensor) else board.hist).float()
        edges = torch.as_tensor(board.hist_edges.detach().cpu() if isinstance(board.hist_edges, torch.Tensor)
                                else board.hist_edges).float()
    except (TypeError, ValueError, RuntimeError):
        fail("Dashboard.hist and hist_edges should be lists of numbers: stats.hist[latent].tolist() and "
             "HIST_EDGES.tolist().")
    want_hist = torch.tensor(want.hist, dtype=torch.float)
    if hist.shape != want_hist.shape or not torch.equal(hist, want_hist):
        if hist.shape == want_hist.shape and want_hist.sum() > 0 and close(hist, want_hist / want_hist.sum(), atol=1e-6):
            fail("hist is normalised; give the counts, stats.hist[latent] (the plot scales the bars).")
        fail("hist differs from stats.hist[latent], the counts of the latent's activations in each bin.")
    if not close(edges, torch.tensor(want.hist_edges), atol=1e-6):
        fail("hist_edges differ from utils.feature_scan.HIST_EDGES, the bins stats.hist was counted in.")


@exercise("02", 5, "build_dashboard", "A latent dashboard")
def build_dashboard(fn: Callable) -> str:
    from utils.dashboard import Dashboard

    model, sae, stats, docs = _dashboard_inputs()
    rng = random.Random()
    live = (stats.top_docs[:, 4] >= 0).nonzero().flatten().tolist()  # fired in at least 5 documents
    other = rng.choice([i for i in live if i != FIXED_LATENT])
    cases = [
        (FIXED_LATENT, {}),
        (other, {"n_examples": rng.randint(3, 5), "n_logits": rng.randint(4, 10), "before": rng.randint(4, 12),
                 "after": rng.randint(1, 5), "title": f"latent {other}"}),
    ]
    for latent, kwargs in cases:
        n_examples, n_logits = kwargs.get("n_examples", 6), kwargs.get("n_logits", 8)
        before, after, title = kwargs.get("before", 10), kwargs.get("after", 3), kwargs.get("title", "")
        board = fn(latent, model, learner_copy(sae), learner_copy(stats), learner_copy(docs), **kwargs)
        what = f"build_dashboard({latent}, model, sae, stats, docs" + "".join(f", {k}={v!r}" for k, v in kwargs.items()) + ")"
        if board is None:
            fail(f"{what} returned None: return the Dashboard(...) you built.")
        if not (isinstance(board, Dashboard) or type(board).__name__ == "Dashboard"):
            fail(f"{what} returned {type(board).__name__}; return a utils.dashboard.Dashboard: "
                 "Dashboard(latent=..., examples=..., top_logits=..., bottom_logits=..., hist=..., "
                 "hist_edges=..., density=..., title=...).")
        want = _reference_dashboard(latent, n_examples, n_logits, before, after, title)
        if board.latent != latent:
            fail(f"Dashboard.latent is {board.latent!r}; expected {latent}.")
        _check_examples(board, want, latent, n_examples, before, after)
        _check_logits(board, want, latent, n_logits)
        _check_stats_fields(board, want, latent)
        if (board.title or "") != title:
            fail(f"Dashboard.title is {board.title!r}; pass the `title` argument through (expected {title!r}).")
    return (f"latents {FIXED_LATENT} and {other}: examples, logit effects, histogram and density match "
            f"(top token of {FIXED_LATENT}: {_reference_dashboard(FIXED_LATENT, 6, 8, 10, 3, '').top_logits[0][0]!r})")


# ---------------------------------------------------------------------------------------------
def _pool_mistakes(batches: tuple[tuple[Any, Any], ...]) -> dict[str, Any]:
    """Per-text vectors (texts, d_sae) of one set under each way of pooling over tokens; "right" is the mean
    over real tokens. (Rows come in padded_batches' order; only means over texts are used.)"""
    import torch

    def cat(pool: Callable[[Any, Any], Any]) -> Any:
        return torch.cat([pool(z, m.float().unsqueeze(-1)) for z, m in batches])

    def with_bos(z: Any, m: Any) -> Any:
        m = m.clone()
        m[:, 0] = 1.0
        return (z * m).sum(1) / m.sum(1)

    return {
        "right": cat(lambda z, m: (z * m).sum(1) / m.sum(1).clamp_min(1)),
        "all positions": cat(lambda z, m: z.mean(1)),
        "with bos": cat(with_bos),
        "full length": cat(lambda z, m: (z * m).sum(1) / z.shape[1]),
        "sum": cat(lambda z, m: (z * m).sum(1)),
        "max": cat(lambda z, m: (z * m).amax(1)),
    }


def _score_mistakes(concept: tuple[tuple[Any, Any], ...], neutral: tuple[tuple[Any, Any], ...]) -> list[tuple[Any, str]]:
    """Score vectors (d_sae,) of the catalogued concept-search mistakes, with their messages."""
    pc, pn = _pool_mistakes(concept), _pool_mistakes(neutral)
    c, n = pc["right"], pn["right"]

    def token_mean(batches: tuple[tuple[Any, Any], ...]) -> Any:
        return sum(z[m].sum(0) for z, m in batches) / sum(int(m.sum()) for _, m in batches)

    return [
        (pc["all positions"].mean(0) - pn["all positions"].mean(0),
         "your per-text means include every position of the padded batch: BOS and padding too. Average each text "
         "over its real tokens only: (z * m).sum(1) / m.sum(1) with m = mask[..., None]."),
        (pc["with bos"].mean(0) - pn["with bos"].mean(0),
         "your per-text means include the BOS token (position 0, where mask is False): its huge activations are the "
         "same in every text and swamp short texts. Average over the positions where mask is True."),
        (pc["full length"].mean(0) - pn["full length"].mean(0),
         "you divided each text's sum by the padded length of its batch; divide by ITS number of real tokens, "
         "m.sum(1), so that padding does not shrink short texts."),
        (pc["sum"].mean(0) - pn["sum"].mean(0),
         "you summed each text over its tokens instead of averaging: long texts then score higher whatever they are "
         "about. Divide by the text's number of real tokens."),
        (pc["max"].mean(0) - pn["max"].mean(0),
         "you max-pooled each text (its largest activation); the concept score uses the MEAN over the text's real "
         "tokens."),
        (token_mean(concept) - token_mean(neutral),
         "you averaged over all the tokens of a set at once, so a long text counts more than a short one. Average "
         "each text over its own real tokens first, then average those per-text means (every text counts once)."),
        (c.mean(0), "you returned the concept means alone; subtract the neutral means, or latents that fire on "
                    "everything rank first."),
        (n.mean(0) - c.mean(0), "the sign is reversed: concept minus neutral, so latents that fire MORE on the "
                                "concept score high."),
        (c.sum(0) - n.sum(0), "you summed the per-text means over texts; the two sets have different sizes, so "
                              "average them: concept.mean(0) - neutral.mean(0)."),
        (c.max(0).values - n.max(0).values, "you took the max over texts; a single odd text would dominate it. "
                                            "Average over texts."),
        ((c.mean(0) - n.mean(0)).abs(), "you took the absolute difference; keep the sign (latents that fire LESS "
                                        "on the concept must score low)."),
    ]


_SEARCH_HINT = ("Pool each text to a (d_sae,) vector: its mean over the real tokens (mask True). Average those "
                "vectors over each set, subtract neutral from concept, then `top = scores.topk(n)` and return "
                "(top.indices, top.values).")


def _as_search_result(out: Any, what: str, n: int, d_sae: int) -> tuple[Any, Any]:
    """(latents, scores) from the learner's output, or a failure naming what is wrong with its shape."""
    import torch

    if out is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    if isinstance(out, tuple) and hasattr(out, "indices") and hasattr(out, "values"):
        fail(f"{what} returned scores.topk(n) itself, whose order is (values, indices); return (latents, scores): "
             "`top = scores.topk(n)` then `return top.indices, top.values`.")
    if isinstance(out, torch.Tensor):
        if out.shape == (d_sae,):
            fail(f"{what} returned the scores of all {d_sae} latents; return the n = {n} best and their scores, "
                 "largest first: `top = scores.topk(n)`, then `return top.indices, top.values`.")
        fail(f"{what} returned one tensor of shape {tuple(out.shape)}; return a pair (latents, scores).")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(f"{what} should return a pair (latents, scores), got {type(out).__name__}.")
    first, second = (torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else x) for x in out)
    if first.is_floating_point() and not torch.equal(first, first.round()) and not second.is_floating_point():
        fail("latents and scores are swapped: return (latents, scores), the latent indices first.")
    latents = _index_tensor(out[0], f"{what}[0] (the latents)")
    scores = second.float()
    if latents.shape != (n,) or scores.shape != (n,):
        fail(f"{what} returned latents of shape {tuple(latents.shape)} and scores of shape {tuple(scores.shape)}; "
             f"both should be (n,) = ({n},), the n best latents. {_SEARCH_HINT}")
    if bool(((latents < 0) | (latents >= d_sae)).any()):
        fail(f"{what} returned latent indices outside 0..{d_sae - 1}.")
    return latents, scores


def _search_cases(rng: random.Random) -> list[tuple[tuple[str, ...], tuple[str, ...], int, int]]:
    """(concept texts, neutral texts, n, batch_size): sets of different sizes, texts of different lengths."""
    from utils.concepts import CONCEPTS, NEUTRAL

    concept = rng.choice(["bridge", "praise"])
    n_c = rng.randint(4, 9)
    n_n = rng.choice([k for k in range(5, 13) if k != n_c])
    return [
        (tuple(CONCEPTS["bridge"][:6]), tuple(NEUTRAL[:9]), 5, 4),
        (tuple(rng.sample(CONCEPTS[concept], n_c)), tuple(rng.sample(NEUTRAL, n_n)), rng.randint(3, 10),
         rng.randint(2, 5)),
    ]


@exercise("02", 6, "concept_search", "Concept search, end to end")
def concept_search(fn: Callable) -> str:
    import torch

    model, sae, _, _ = _dashboard_inputs()
    d_sae, max_len = sae.cfg.d_sae, 64
    for concept, neutral, n, batch_size in _search_cases(random.Random()):
        what = (f"concept_search(model, sae, concept_texts ({len(concept)}), neutral_texts ({len(neutral)}), n={n}, "
                f"batch_size={batch_size})")
        out, changed = _call(fn, ("model", "sae", "concept_texts", "neutral_texts"), model, sae, list(concept),
                             list(neutral), n=n, batch_size=batch_size, max_len=max_len, shape_hint=_SEARCH_HINT)
        latents, scores = _as_search_result(out, what, n, d_sae)
        cb, nb = _encoded_batches(concept, batch_size, max_len), _encoded_batches(neutral, batch_size, max_len)
        right = _pool_mistakes(cb)["right"].mean(0) - _pool_mistakes(nb)["right"].mean(0)
        want = right.topk(n)
        same_scores = close(scores, want.values, atol=1e-4)
        if same_scores and close(right[latents], scores, atol=1e-4) and len(set(latents.tolist())) == n:
            _no_in_place(changed)
            continue
        got_set, want_set = set(latents.tolist()), set(want.indices.tolist())
        if got_set == want_set and close(right[latents], scores, atol=1e-4):
            if torch.equal(latents, want.indices.flip(0)):
                fail("the right latents in ascending order: list the best latent first (topk already does).")
            fail("the right latents, but not sorted: largest score first (scores.topk(n) gives that order).")
        if torch.equal(latents, right.topk(n, largest=False).indices) and close(right[latents], scores, atol=1e-4):
            fail("you took the n LOWEST scores (largest=False, or an ascending sort); take the highest.")
        mistakes = _score_mistakes(cb, nb)
        for vector, message in mistakes:
            top = vector.topk(n)
            if torch.equal(latents, top.indices) and (got_set != want_set or close(scores, top.values, atol=1e-4)):
                fail(message)
        if got_set == want_set:
            for vector, message in mistakes:
                if close(scores, vector[latents], atol=1e-4):
                    fail(message)
            fail(f"the right latents, but the scores {[round(v, 4) for v in scores.tolist()]} differ from "
                 f"{[round(v, 4) for v in want.values.tolist()]}: return each latent's concept score itself.")
        fail(f"{what} returned latents {latents.tolist()}; expected {want.indices.tolist()} (scores "
             f"{[round(v, 3) for v in want.values.tolist()]}). {_SEARCH_HINT}")
    return "the n best latents by mean(concept) - mean(neutral) of per-text means over real tokens"


# ---------------------------------------------------------------------------------------------
def _precision_recall(out: Any, what: str) -> tuple[Any, Any]:
    if out is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    if hasattr(out, "precision") and hasattr(out, "recall"):
        return out.precision, out.recall
    if isinstance(out, dict) and "precision" in out and "recall" in out:
        return out["precision"], out["recall"]
    if isinstance(out, (tuple, list)) and len(out) == 2:
        return out[0], out[1]
    fail(f"{what} returned {type(out).__name__}; return a DetectorReport(threshold=..., precision=..., recall=..., "
         "true_positives=..., ...) (or at least a pair (precision, recall)).")


def _counts(scores: Any, labels: Any, rule: Callable) -> tuple[int, int, int, int]:
    pred, truth = rule(scores), labels.bool()
    return (int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum()),
            int((~pred & ~truth).sum()))


@exercise("02", 7, "detector_report", "Precision and recall of a detector")
def detector_report(fn: Callable) -> str:
    import torch

    from utils import features

    g = _generator()
    n = int(torch.randint(40, 200, (), generator=g))
    labels = torch.rand(n, generator=g) < 0.3 + 0.4 * torch.rand((), generator=g)
    scores = torch.relu(torch.randn(n, generator=g) + 1.5 * labels).round(decimals=1)  # rounding makes ties
    threshold = float(scores[int(torch.randint(0, n, (), generator=g))])
    fixed_scores = torch.tensor([0.9, 0.1, 0.5, 0.7, 0.3, 0.5, 0.0, 1.2, 0.5, 0.2, 0.8, 0.6])
    fixed_labels = torch.tensor([1, 0, 1, 1, 0, 1, 0, 1, 0, 1, 0, 0], dtype=torch.bool)
    cases = [
        (fixed_scores, fixed_labels, 0.5),  # three scores exactly at the threshold; precision 0.6, recall 0.5
        (fixed_scores, fixed_labels, 0.25),
        (scores, labels, threshold),
        (fixed_scores, fixed_labels, 1.2),  # nothing scores above the threshold: precision is defined as 1.0
    ]
    for scores, labels, threshold in cases:
        want = features.detector_report(scores, labels, threshold)
        tp, fp, fn_, tn = want.true_positives, want.false_positives, want.false_negatives, want.true_negatives
        nothing_predicted = tp + fp == 0
        what = f"detector_report(scores, labels, threshold={threshold:g})"
        none_msg = (f"when no score is above the threshold ({what}) nothing is predicted positive, so TP + FP = 0. "
                    "Precision is then defined as 1.0 (no false alarms): `precision = tp / (tp + fp) if tp + fp "
                    "else 1.0`.")
        try:
            out, changed = _call(fn, ("scores", "labels"), scores, labels, threshold)
        except ZeroDivisionError:
            if nothing_predicted:
                fail(none_msg)
            raise
        p_raw, r_raw = _precision_recall(out, what)
        if nothing_predicted:
            p_num = p_raw.detach().float().item() if isinstance(p_raw, torch.Tensor) and p_raw.numel() == 1 else p_raw
            if isinstance(p_num, numbers.Real) and (math.isnan(p_num) or p_num == 0):
                fail(none_msg + f" You returned {p_num}.")
        precision = as_number(p_raw, f"{what}.precision")
        recall = as_number(r_raw, f"{what}.recall")
        if close(precision, want.precision) and close(recall, want.recall):
            _no_in_place(changed)
            continue
        if close(precision, want.recall) and close(recall, want.precision):
            fail("precision and recall are swapped: precision = TP / (TP + FP), the fraction of flagged texts "
                 "that really are concept texts; recall = TP / (TP + FN), the fraction of concept texts flagged.")
        gtp, gfp, gfn, _ = _counts(scores, labels, lambda s: s >= threshold)
        if (gtp, gfp) != (tp, fp) and close(precision, gtp / (gtp + gfp) if gtp + gfp else 1.0) \
                and close(recall, gtp / (gtp + gfn) if gtp + gfn else 0.0):
            fail(f"you flagged scores >= threshold; the rule is score > threshold (strictly): here "
                 f"{int((scores == threshold).sum())} score(s) equal the threshold {threshold:g} and must not count.")
        ltp, lfp, lfn, _ = _counts(scores, labels, lambda s: s < threshold)
        if close(precision, ltp / (ltp + lfp) if ltp + lfp else 1.0) and close(recall, ltp / (ltp + lfn) if ltp + lfn else 0.0) \
                and not close(precision, want.precision):
            fail("you flagged the texts BELOW the threshold; the detector fires when score > threshold.")
        total = tp + fp + fn_ + tn
        if not close(precision, want.precision):
            _diagnose(precision, [
                ((tp + tn) / total, "your precision is the accuracy (TP + TN) / n: it counts the true negatives "
                                    "too. Precision = TP / (TP + FP), over the texts the detector flags."),
                (tp / total, f"your precision divides by all {total} texts; divide by the flagged ones: TP / (TP + FP)."),
                (tp / (tp + fp + tn) if tp + fp + tn else None,
                 "your precision counts the true negatives in the denominator; precision = TP / (TP + FP)."),
                (fp / (tp + fp) if tp + fp else None, "you returned the false-discovery rate FP / (TP + FP); "
                                                      "precision is TP / (TP + FP)."),
                (float(tp), "your precision is the count TP; divide by the number of flagged texts: TP / (TP + FP)."),
            ])
            fail(f"precision is {precision:.4g}, expected TP / (TP + FP) = {tp} / {tp + fp} = {want.precision:.4g}.")
        _diagnose(recall, [
            ((tp + tn) / total, "your recall is the accuracy (TP + TN) / n: it counts the true negatives too. "
                                "Recall = TP / (TP + FN), over the concept texts."),
            (tp / total, f"your recall divides by all {total} texts; divide by the concept texts: TP / (TP + FN)."),
            (tp / (tp + fn_ + tn) if tp + fn_ + tn else None,
             "your recall counts the true negatives in the denominator; recall = TP / (TP + FN)."),
            (float(tp), "your recall is the count TP; divide by the number of concept texts: TP / (TP + FN)."),
        ])
        fail(f"recall is {recall:.4g}, expected TP / (TP + FN) = {tp} / {tp + fn_} = {want.recall:.4g}.")
    return "precision and recall of score > threshold, precision 1.0 when nothing is flagged"


# ---------------------------------------------------------------------------------------------
def _decoder(g: Any, d_sae: int, d_in: int) -> Any:
    """Decoder rows of unequal norms with a few near-duplicates and one row pointing the other way,
    so that the catalogued mistakes (dot products, |cos|, columns, self included) all give other answers."""
    import torch

    W = torch.randn(d_sae, d_in, generator=g) * (0.2 + 3 * torch.rand(d_sae, 1, generator=g))
    W[1] = 0.3 * W[0] + 0.05 * torch.randn(d_in, generator=g)  # a short near-duplicate of latent 0
    W[2] = -2.0 * W[0] + 0.3 * torch.randn(d_in, generator=g)  # a long anti-parallel row
    W[3] = 4.0 * W[0] + 2.5 * torch.randn(d_in, generator=g)  # a long, less aligned row
    return W


_NEIGH_HINT = ("W_dec is (d_sae, d_in), one row per latent. Normalise every row to unit length, take the dot "
               "product of every row with row `latent` (a (d_sae,) vector of cosines), rule out the latent "
               "itself, then .topk(n).")


@exercise("02", 8, "decoder_neighbours", "Decoder neighbourhoods")
def decoder_neighbours(fn: Callable) -> str:
    import torch
    from torch.nn.functional import normalize

    from utils import features

    g = _generator()
    d_sae, d_in = int(torch.randint(12, 60, (), generator=g)), int(torch.randint(4, 20, (), generator=g))
    cases = [(_decoder(_generator(91), 16, 6), 0, 4), (_decoder(g, d_sae, d_in), 0, 5),
             (_decoder(g, d_sae, d_in), int(torch.randint(4, d_sae, (), generator=g)), 3)]
    for W, latent, n in cases:
        out, changed = _call(fn, ("W_dec", "latent", "n"), W, latent, n, shape_hint=_NEIGH_HINT)
        what = f"decoder_neighbours(W_dec {tuple(W.shape)}, latent={latent}, n={n})"
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fail(f"{what} should return a pair (indices, cosines), got {type(out).__name__}.")
        idx = _index_tensor(out[0], f"{what}[0] (indices)")
        cos = as_tensor(out[1], f"{what}[1] (cosines)")
        want_idx, want_cos = features.decoder_neighbours(W, latent, n)
        if idx.shape != (n,) or cos.shape != (n,):
            fail(f"{what} returned indices of shape {tuple(idx.shape)} and cosines {tuple(cos.shape)}; both should "
                 f"be ({n},). {_NEIGH_HINT}")
        if torch.equal(idx, want_idx) and close(cos, want_cos, atol=1e-4):
            _no_in_place(changed)
            continue
        if latent in idx.tolist():
            fail(f"latent {latent} is in its own neighbourhood (cosine 1 with itself): rule it out before taking "
                 "the top n, e.g. set its cosine to -inf.")
        if torch.equal(idx, want_idx.flip(0)):
            fail("the neighbours are not in descending order of cosine: the most similar latent comes first.")
        rows = normalize(W, dim=-1)
        dots = W @ W[latent]
        dots[latent] = -float("inf")
        if torch.equal(idx, dots.topk(n).indices):
            fail("you ranked by raw dot products W_dec @ W_dec[latent]: long decoder rows win whatever their "
                 "direction. Normalise the rows first (cosine similarity).")
        abs_cos = (rows @ rows[latent]).abs()
        abs_cos[latent] = -float("inf")
        if torch.equal(idx, abs_cos.topk(n).indices):
            fail("you ranked by |cosine|: a latent that writes the OPPOSITE direction (cosine near -1) is not a "
                 "neighbour. Rank by the signed cosine.")
        cols = normalize(W, dim=0)
        col_cos = cols @ cols[latent]
        col_cos[latent] = -float("inf")
        if torch.equal(idx, col_cos.topk(n).indices):
            fail("you normalised the columns of W_dec (dim=0); each latent's direction is a ROW: normalise along "
                 "dim=-1.")
        if torch.equal(idx, want_idx):
            fail(f"the right neighbours, but the cosines {[round(v, 4) for v in cos.tolist()]} differ from "
                 f"{[round(v, 4) for v in want_cos.tolist()]}: return the cosine similarities themselves.")
        if set(idx.tolist()) == set(want_idx.tolist()):
            fail("the neighbours are not in descending order of cosine: the most similar latent comes first.")
        fail(f"{what} returned neighbours {idx.tolist()}; expected {want_idx.tolist()} (cosines "
             f"{[round(v, 3) for v in want_cos.tolist()]}). {_NEIGH_HINT}")
    return "top-n decoder cosines, the latent itself excluded"


# ---------------------------------------------------------------------------------------------
def _as_counts(out: Any, what: str) -> dict[str, int]:
    """A Counter/dict of token -> count, or a list of (token, count) pairs, as a plain dict."""
    if out is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    if isinstance(out, dict):
        items = list(out.items())
    elif isinstance(out, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in out):
        items = [tuple(p) for p in out]
    else:
        fail(f"{what} should return a Counter of token strings (collections.Counter), got {type(out).__name__}.")
    counts: dict[str, int] = {}
    for token, count in items:
        if isinstance(token, numbers.Integral):
            fail(f"{what} counts token ids ({token}); count the token strings: tokenizer.decode([id]).")
        if not isinstance(token, str):
            fail(f"{what}: keys should be token strings, got {type(token).__name__}.")
        counts[token] = counts.get(token, 0) + int(as_number(count, f"the count of {token!r}"))
    return counts


@functools.lru_cache(maxsize=1)
def _audit_latents() -> tuple[int, ...]:
    """Latents to audit: the two whose first labels were contradicted, and one with fewer than 20 top
    documents (so that the -1 padding in stats.top_docs matters)."""
    _, _, stats, _ = _dashboard_inputs()
    few = ((stats.top_docs < 0).any(1) & (stats.top_docs[:, 0] >= 0)).nonzero()[:, 0]
    return (2801, 631, int(few[0]) if len(few) else 3175)


@exercise("02", 9, "peak_token_counts", "Spot the polysemantic latent")
def peak_token_counts(fn: Callable) -> str:
    from utils.feature_scan import tokenize_texts
    from utils.named_latents import peak_token_counts as reference

    model, _, stats, docs = _dashboard_inputs()
    tok = model.tokenizer
    for latent, n in zip(_audit_latents(), (20, 12, 20)):
        what = f"peak_token_counts(tokenizer, stats, docs, latent={latent}, n={n})"
        got = _as_counts(fn(tok, learner_copy(stats), learner_copy(docs), latent, n), what)
        want = dict(reference(tok, stats, docs, latent, n))
        if got == want:
            continue
        pairs = [(d, p) for d, p in zip(stats.top_docs[latent, :n].tolist(), stats.top_pos[latent, :n].tolist())]
        live = [(d, p) for d, p in pairs if d >= 0]
        if sum(got.values()) == sum(want.values()) + len(pairs) - len(live) and len(pairs) != len(live):
            fail(f"latent {latent} fired in only {len(live)} documents: stats.top_docs holds -1 for the empty slots, "
                 "and docs[-1] is the LAST document of the corpus, not 'no document'. Skip entries with doc < 0.")
        if sum(got.values()) > n:
            fail(f"you counted {sum(got.values())} peaks; use only the latent's n = {n} top documents "
                 "(stats.top_docs[latent, :n]).")
        no_bos, by_rank = {}, {}
        for rank, (d, p) in enumerate(live):
            ids = tokenize_texts(tok, [docs[d]["text"]], stats.max_len)[0]
            t = tok.decode([ids[1:][min(p, len(ids) - 2)]])
            no_bos[t] = no_bos.get(t, 0) + 1
            ids_r = tokenize_texts(tok, [docs[rank]["text"]], stats.max_len)[0]
            t = tok.decode([ids_r[min(p, len(ids_r) - 1)]])
            by_rank[t] = by_rank.get(t, 0) + 1
        if got == no_bos:
            fail("your tokens are one place off: stats.top_pos counts positions in the SCANNED sequence, which starts "
                 "with BOS. Tokenise with utils.feature_scan.tokenize_texts(tokenizer, [text], stats.max_len)[0] "
                 "(BOS first) and index that list.")
        if got == by_rank:
            fail("you used the rank j as the document index (docs[j]); the document is docs[stats.top_docs[latent, j]].")
        if all(len(t) == 1 for t in got) and not all(len(t) == 1 for t in want):
            fail("your keys are single characters: top_pos is a TOKEN position, not a character offset into the "
                 "text. Tokenise the document and decode the token at that position.")
        fail(f"latent {latent}: your counts {sorted(got.items(), key=lambda kv: -kv[1])[:4]}... differ from "
             f"{sorted(want.items(), key=lambda kv: -kv[1])[:4]}...: for each of the n top documents, decode the "
             "token at its peak position.")
    return "the tokens each latent peaks on in its top documents"


# ---------------------------------------------------------------------------------------------
def _split_inputs(g: Any, n: int, k: int, d_wide: int, new_from: int) -> tuple[Any, Any, Any]:
    """A parent firing on ~40 % of n tokens; the wide SAE's top-k (indices, values) per token, mixing old
    latents (< new_from, often the largest) with new ones, and some parent tokens with no new latent."""
    import torch

    parent = torch.relu(torch.randn(n, generator=g)) * (torch.rand(n, generator=g) < 0.5)
    parent[:3] = torch.tensor([1.0, 2.0, 0.5])  # at least three parent tokens
    idx = torch.stack([torch.randperm(d_wide, generator=g)[:k] for _ in range(n)])  # (n, k) distinct per row
    val = torch.rand(n, k, generator=g) + 0.1
    val[idx < new_from] += 1.0  # old latents tend to be the largest: ignoring them matters
    val[torch.rand(n, k, generator=g) < 0.25] = 0.0  # TopK values can be 0 after the ReLU
    no_new = (torch.rand(n, generator=g) < 0.2) | (torch.arange(n) == 1)
    val[no_new.unsqueeze(1) & (idx >= new_from)] = 0.0  # on these tokens no new latent fires
    return parent, idx, val


def _as_shares(out: Any, what: str) -> dict[int, float]:
    import torch

    if out is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    if not isinstance(out, dict):
        fail(f"{what} should return a dict {{latent: share}}, got {type(out).__name__}.")
    shares = {}
    for key, value in out.items():
        if isinstance(key, torch.Tensor) and key.numel() == 1:
            key = key.item()
        if not isinstance(key, numbers.Integral):
            fail(f"{what}: keys should be latent indices (ints), got {type(key).__name__}.")
        shares[int(key)] = as_number(value, f"the share of latent {key}")
    return shares


def _same_shares(a: dict[int, float], b: dict[int, float]) -> bool:
    return set(a) == set(b) and all(close(a[i], b[i]) for i in a)


@exercise("02", 10, "split_shares", "Who takes over? Following a latent across widths")
def split_shares(fn: Callable) -> str:
    import torch

    from utils import features

    g = _generator()
    cases = [_split_inputs(_generator(111), 40, 4, 24, 8) + (8,),
             _split_inputs(g, int(torch.randint(60, 200, (), generator=g)), 6, 64, 16) + (16,)]
    for parent, idx, val, new_from in cases:
        what = f"split_shares(parent_acts ({len(parent)},), wide_idx {tuple(idx.shape)}, wide_val, new_from={new_from})"
        out, changed = _call(fn, ("parent_acts", "wide_idx", "wide_val", "new_from"), parent, idx, val, new_from)
        got = _as_shares(out, what)
        want = features.split_shares(parent, idx, val, new_from)
        if _same_shares(got, want):
            values = list(got.values())
            if any(b > a + 1e-9 for a, b in zip(values, values[1:])):  # ties may come in any order
                fail("the right shares, but not sorted: return the dict largest share first "
                     "(dict(sorted(shares.items(), key=lambda kv: -kv[1]))).")
            _no_in_place(changed)
            continue
        n_parent = int((parent > 0).sum())
        fires = parent > 0
        masked = val[fires].masked_fill(idx[fires] < new_from, 0.0)
        argmax_all = idx[fires].gather(-1, masked.argmax(-1, keepdim=True))[:, 0]
        zero_winners = {int(i): int((argmax_all == i).sum()) / n_parent for i in argmax_all.unique()}
        if _same_shares(got, zero_winners):
            fail("some tokens where NO new latent fires were credited to a latent (argmax of an all-zero row still "
                 "returns an index): only count a winner whose activation is > 0.")
        if any(i < new_from for i in got):
            fail(f"latents below new_from = {new_from} ({sorted(i for i in got if i < new_from)[:3]}...) exist in the "
                 "narrow SAE already, so they cannot be what the parent splits INTO: consider only wide_idx >= new_from.")
        everywhere = features.split_shares(torch.ones_like(parent), idx, val, new_from)
        if _same_shares(got, everywhere):
            fail("you counted every token; count only the tokens where the parent fires (parent_acts > 0), and "
                 "divide by their number.")
        if _same_shares(got, {i: s * n_parent for i, s in want.items()}):
            fail(f"you returned counts; divide by the number of tokens where the parent fires ({n_parent}) to get shares.")
        total = sum(want.values())
        if total and _same_shares(got, {i: s / total for i, s in want.items()}):
            fail("your shares sum to 1 over the tokens where some new latent fires; divide by ALL the parent's "
                 "tokens, so that tokens with no new latent show up as the missing remainder.")
        if sum(got.values()) > sum(want.values()) + 1e-6:
            fail("some tokens where NO new latent fires were credited to a latent (argmax of an all-zero row still "
                 "returns an index): only count a winner whose activation is > 0.")
        fail(f"{what}: got {dict(list(got.items())[:4])}...; expected {dict(list(want.items())[:4])}... On each "
             "token where the parent fires, the winner is the new latent (index >= new_from) with the largest value.")
    return "shares of the parent's tokens won by each new latent"
