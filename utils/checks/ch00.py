"""Checks for chapter 00 — setup and a tour of the model's internals.

Each check compares the learner's function with the reference in :mod:`utils.tour` on fixed and
randomised inputs and, on a mismatch, tests the catalogued mistakes to say which one it probably is.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from utils import tour

GRADED_REMOTELY = True  # the grader runs these checks in its own process, on answers sent from the kernel as data
from utils.checks import (as_number, as_tensor, close, counting_block_calls, course_model, dict_result, exercise,
                          fail, require_watched)

_WORDS = "river cloud lantern violin garden winter copper harbor meadow puzzle rocket velvet".split()


def _random_sentence(rng: random.Random) -> str:
    return "The " + " ".join(rng.sample(_WORDS, 3)) + " is"


# ---------------------------------------------------------------------------------------------
def _as_pair(out: Any, what: str) -> tuple[Any, Any]:
    if out is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        fail(f"{what} returned {type(out).__name__}; return a pair (new_tokens, probs).")
    return out[0], out[1]


@exercise("00", 1, "greedy_decode", "Greedy decoding, by hand")
def greedy_decode(fn: Callable) -> str:
    import torch

    model = course_model()
    rng = random.Random()
    d_vocab = model.cfg.d_vocab
    cases = [("The capital of France is", 3), ("1, 2, 3, 4,", 4), (_random_sentence(rng), rng.randint(2, 4))]
    for prompt, n_new in cases:
        what = f"greedy_decode(model, {prompt!r}, {n_new})"
        raw_ids, raw_probs = _as_pair(fn(model, prompt, n_new), what)
        ids = as_tensor(raw_ids if isinstance(raw_ids, torch.Tensor) else torch.tensor(raw_ids), f"{what}[0]")
        probs = as_tensor(raw_probs, f"{what}[1]")
        want_ids, want_probs = (t.cpu() for t in tour.greedy_decode(model, prompt, n_new))
        prompt_len = tour.to_tokens(model, prompt).shape[1]
        ids = ids.flatten() if ids.ndim == 2 and ids.shape[0] == 1 else ids
        if ids.shape == (prompt_len + n_new,):
            fail(f"{what} returned {prompt_len + n_new} token ids: the prompt's {prompt_len} and the {n_new} new ones. "
                 f"Return only the {n_new} new tokens (tokens[0, -n_new:]).")
        if ids.shape != (n_new,):
            fail(f"{what}: new_tokens has shape {tuple(ids.shape)}; expected ({n_new},), one id per new token.")
        if probs.shape == (n_new,):
            fail(f"{what}: probs has shape ({n_new},), one number per step; return each step's WHOLE next-token "
                 f"distribution, shape ({n_new}, {d_vocab}) (stack the softmax rows).")
        if probs.ndim == 3 and probs.shape[-1] == d_vocab:
            fail(f"{what}: probs has shape {tuple(probs.shape)}; expected ({n_new}, {d_vocab}). The next token is "
                 "predicted at the LAST position: keep logits[0, -1] of each step only.")
        if probs.shape != (n_new, d_vocab):
            fail(f"{what}: probs has shape {tuple(probs.shape)}; expected ({n_new}, {d_vocab}), one distribution over "
                 "the vocabulary per step.")
        if torch.all(probs == 1):
            fail("every probability is 1.0: you took the softmax over a dimension of size 1 (the batch, or a single "
                 "position). Take it over the vocabulary: logits[0, -1].softmax(dim=-1).")
        totals = probs.sum(-1)
        if not torch.allclose(totals, torch.ones_like(totals), atol=1e-3):
            if probs.min() < 0 or totals.max() > 2:
                fail("these look like raw logits (the rows do not sum to 1): apply .softmax(dim=-1) to turn scores "
                     "into probabilities.")
            fail(f"the rows of probs sum to {totals.tolist()}, not 1: take the softmax over the vocabulary (dim=-1).")
        if not close(probs[0], want_probs[0], atol=1e-5):
            with torch.no_grad():
                first = model(tour.to_tokens(model, prompt))[0, 0].softmax(-1).cpu()
            if close(probs[0], first, atol=1e-5):
                fail("the first step used the logits at the FIRST position; the next token is predicted at the last "
                     "one (index -1).")
            fail(f"the first step's distribution differs from the model's for {prompt!r}. Tokenise the prompt with "
                 "tour.to_tokens(model, prompt) and use the logits at position -1.")
        chosen = probs.argmax(-1)
        if not torch.equal(ids.long(), chosen):
            step = int((ids.long() != chosen).nonzero()[0])
            fail(f"step {step} chose token {int(ids[step])} (p = {float(probs[step, int(ids[step])]):.3f}), but the most "
                 f"likely token there is {int(chosen[step])} (p = {float(probs[step].max()):.3f}). Greedy decoding "
                 "takes the argmax of each step's distribution.")
        if not torch.equal(ids.long(), want_ids.long()) or not close(probs, want_probs, atol=1e-4):
            if n_new > 1 and all(close(row, probs[0], atol=1e-6) for row in probs[1:]):
                fail(f"every step predicts from the same {prompt_len} prompt tokens, so every step chose "
                     f"{model.tokenizer.decode(int(ids[0]))!r}: append each chosen token to the sequence "
                     "(torch.cat along the position dimension) before the next forward pass.")
            got, want = model.tokenizer.decode(ids.long()), model.tokenizer.decode(want_ids)
            fail(f"the continuation of {prompt!r} is {got!r}; greedy decoding gives {want!r}. Each step must run the "
                 "prompt plus every token chosen so far.")
    text = model.tokenizer.decode(want_ids)
    return f"{prompt!r} continues greedily as {text!r}"


# ---------------------------------------------------------------------------------------------
@exercise("00", 2, "format_chat", "The chat template")
def format_chat(fn: Callable) -> str:
    tokenizer = course_model().tokenizer
    rng = random.Random()
    cases = [
        ("What is your physical form?", None),
        (f"Write a haiku about a {rng.choice(_WORDS)}.", "You are a terse poet."),
    ]
    for question, system in cases:
        got = fn(tokenizer, question, system=system)
        want = tour.format_chat(tokenizer, question, system=system)
        if not isinstance(got, str):
            fail(f"returned {type(got).__name__}; return the prompt as a string: apply_chat_template(..., tokenize=False).")
        if got == want:
            continue
        if want.startswith(got) and want[len(got):].strip() in ("<|im_start|>assistant", ""):
            fail("the prompt does not end with the assistant header '<|im_start|>assistant': pass "
                 "add_generation_prompt=True, or the model will continue the user's turn instead of answering.")
        if system is not None and system not in got:
            fail("the system message is missing: put {'role': 'system', 'content': system} first in messages.")
        if system is not None and f"user\n{system}" in got:
            fail("the system message was sent with role 'user'; its role must be 'system'.")
        if question not in got:
            fail("the question does not appear in the prompt: it goes in {'role': 'user', 'content': question}.")
        fail(f"the prompt differs from the chat template's output.\n  expected: {want!r}\n  got:      {got!r}")
    return "prompts match the model's chat template"


# ---------------------------------------------------------------------------------------------
_SWEEP_CASES = [("The capital of France is", " Paris"), ("The Eiffel Tower is in the city of", " Paris"),
                ("The Golden Gate Bridge is in the city of", " San"), ("The opposite of hot is", " cold")]
_SWEEP_KEYS = ("norm", "p_answer", "rank")


def _sweep_output(out: Any, what: str, n: int) -> dict[str, Any]:
    dict_result(out, what, _SWEEP_KEYS)
    got = {}
    for key in _SWEEP_KEYS:
        value = as_tensor(out[key], f"{what}[{key!r}]").flatten()
        if value.shape == (n,):
            fail(f"{what}[{key!r}] has {n} entries; expected {n + 1}: entry 0 is the embedding "
                 "(blocks.0.hook_resid_pre), then one entry per block's hook_resid_post.")
        if value.shape != (n + 1,):
            fail(f"{what}[{key!r}] has shape {tuple(value.shape)}; expected ({n + 1},), one entry per point of the "
                 "residual stream.")
        got[key] = value
    return got


def _diagnose_norms(got: Any, want: Any, stack: Any) -> None:
    if close(got, want, atol=1e-3):
        return
    if close(got, stack[:, -1].norm(dim=-1), atol=1e-3):
        fail("'norm' uses only the last position; average the norm over all positions.")
    if close(got, (stack**2).sum(-1).mean(-1), atol=1e-4, rtol=1e-3):
        fail("'norm' is the squared norm; use the L2 norm (.norm(dim=-1)).")
    if close(got, stack.norm(dim=1).mean(-1), atol=1e-3):
        fail("'norm': you took the norm over positions; take it over d_model (dim=-1), then average over positions.")
    if close(got, stack.mean(1).norm(dim=-1), atol=1e-3):
        fail("'norm': you took the norm of the mean vector; take each position's norm first, then average.")
    fail("'norm' differs from the reference. Use ||x||_2 over d_model at each position, averaged over positions.")


def _diagnose_lens(got: dict[str, Any], want: dict[str, Any], model: Any, stack: Any, answer: str) -> None:
    import torch

    p = got["p_answer"]
    if p.min() < -1e-6 or p.max() > 1 + 1e-6:
        fail("'p_answer' holds values outside [0, 1]: these are logits. Apply .softmax(dim=-1) over the vocabulary, "
             "then read the answer's entry.")
    answer_id = model.to_single_token(answer)
    bos = model.tokenizer.bos_token_id
    with torch.no_grad():
        def lens_p(resid: Any, token: int) -> Any:
            return model.unembed(resid).softmax(-1)[:, token].cpu()

        last = stack[:, -1]
        rms = last * torch.rsqrt(last.pow(2).mean(-1, keepdim=True) + 1e-5)
        candidates = [
            (lens_p(last, answer_id), "'p_answer' skips the final norm: apply model.ln_final(resid) before "
                                      "model.unembed, as the model itself does."),
            (lens_p(rms, answer_id), "'p_answer': you normalised by hand without the learned gain; use "
                                     "model.ln_final, which includes it."),
            (lens_p(model.ln_final(stack[:, 0]), answer_id), "'p_answer' reads the FIRST position; the next token "
                                                             "is predicted at the last one (index -1)."),
            (lens_p(model.ln_final(last), bos), f"'p_answer' is the probability of token {bos}, the BOS token "
                                                f"{model.tokenizer.bos_token!r}: tokenizer.encode and to_tokens put it in "
                                                "front of the text. Use model.to_single_token(answer)."),
        ]
    tol = dict(atol=1e-7, rtol=1e-3)  # relative: most layers give the answer a tiny probability
    if not close(p, want["p_answer"], **tol):
        for value, message in candidates:
            if close(p, value, **tol):
                fail(message)
        if close(p[-1:], want["p_answer"][-1:], **tol):
            fail("'p_answer' matches the model's own output on the last entry but not before it: apply the same "
                 "map (model.ln_final, then model.unembed) to every layer's stream.")
        fail(f"'p_answer' differs from the reference; its last entry must equal the model's own probability of "
             f"{answer!r} ({float(want['p_answer'][-1]):.4f}), got {float(p[-1]):.4f}.")
    rank, want_rank = got["rank"], want["rank"]
    top = want_rank == 0  # exact there; elsewhere a tie broken by float rounding may move a rank a little
    slack = 2 + 1e-3 * want_rank
    if torch.equal(rank[top], want_rank[top] + 1):
        fail("'rank' is 1 where the answer is the top prediction: you counted the answer itself (>=). Count the "
             "tokens scored strictly ABOVE it (>), so that 0 means 'top prediction'.")
    wrong = ((rank - want_rank).abs() > slack) | (top & (rank != want_rank))
    if wrong.any():
        bad = int(wrong.nonzero()[0])
        fail(f"'rank' differs from the reference at entry {bad}: {float(rank[bad]):.0f} instead of "
             f"{float(want_rank[bad]):.0f}. The rank is the number of vocabulary entries whose lens logit is "
             "strictly greater than the answer's.")


@exercise("00", 3, "residual_sweep", "The residual stream, layer by layer")
def residual_sweep(fn: Callable) -> str:
    import torch

    model = course_model()
    n = model.cfg.n_layers
    cases = [_SWEEP_CASES[0], random.Random().choice(_SWEEP_CASES[1:])]
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(n)]
    for prompt, answer in cases:
        what = f"residual_sweep(model, {prompt!r}, {answer!r})"
        watch = counting_block_calls(model)
        with watch as calls:
            out = fn(model, prompt, answer)
        got = _sweep_output(out, what, n)
        want = {k: v.float().cpu() for k, v in tour.residual_sweep(model, prompt, answer).items()}
        with torch.no_grad():
            _, cache = model.run_with_cache(tour.to_tokens(model, prompt), names_filter=lambda x: x in names)
            stack = torch.stack([cache[x][0] for x in names])  # (n+1, pos, d_model)
        _diagnose_norms(got["norm"], want["norm"], stack.cpu())
        _diagnose_lens(got, want, model, stack, answer)
        require_watched(watch, calls[0] <= 1, "one forward pass per prompt",
                        f"right values, but your code ran the model {calls[0]} times for one prompt (once per layer?). "
                        f"One run_with_cache whose names_filter admits all {n + 1} hook names records every layer "
                        "in a single forward pass.")
    first = int((want["rank"] == 0).nonzero()[0])  # the cases' answers are the model's top token: rank 0 at the end
    return (f"{answer!r} after {prompt!r} is the lens's top token from block {first - 1} on; "
            f"the norm grows from {float(want['norm'][0]):.1f} to {float(want['norm'][-1]):.1f}")


# ---------------------------------------------------------------------------------------------
@exercise("00", 4, "resid_at_layer", "Hooks and stop_at_layer")
def resid_at_layer(fn: Callable) -> str:
    import torch

    model = course_model()
    rng = random.Random()
    layer = rng.randint(3, model.cfg.n_layers - 3)
    tokens = torch.randint(100, 20000, (2, 7), generator=torch.Generator().manual_seed(rng.randint(0, 10**6)))
    tokens = tokens.to(model.cfg.device)  # the learner's tokens live where the model does
    try:
        watch = counting_block_calls(model)
        with watch as calls:
            got = as_tensor(fn(model, tokens.clone(), layer), f"resid_at_layer(model, tokens, {layer})")
    except KeyError as error:
        if "hook_resid_post" in str(error) or "hook_resid_pre" in str(error):
            fail(f"your code looked up {error} in the cache, which is not there. `stop_at_layer=L` stops BEFORE block L "
                 f"runs, so with stop_at_layer={layer} block {layer} never runs and blocks.{layer}.hook_resid_post is "
                 f"never recorded. Use stop_at_layer={layer} + 1 (layer + 1).")
        raise
    want = tour.resid_at_layer(model, tokens, layer)
    if got.shape != want.shape:
        fail(f"returned shape {tuple(got.shape)}; expected (batch, pos, d_model) = {tuple(want.shape)}.")
    # The residual stream holds a few massive activations (~2e4 in late layers); the same forward pass in a kernel
    # with another thread count differs there by ~1e-2, so the tolerance scales with the tensor's largest entry.
    atol = 1e-4 + 1e-5 * float(want.abs().max())
    if not close(got, want, atol=atol):
        if layer > 0 and close(got, tour.resid_at_layer(model, tokens, layer - 1), atol=atol):
            fail(f"off by one: you returned the residual stream BEFORE block {layer} (hook_resid_pre, = block "
                 f"{layer - 1}'s output). Capture blocks.{layer}.hook_resid_post with stop_at_layer={layer} + 1.")
        if close(got, tour.resid_at_layer(model, tokens, layer + 1), atol=atol):
            fail(f"off by one: you returned block {layer + 1}'s output; capture blocks.{layer}.hook_resid_post.")
        fail(f"values differ from blocks.{layer}.hook_resid_post (layer={layer}).")
    require_watched(watch, not calls[layer + 1], "no block after the one you need ran",
                    f"correct values, but block {layer + 1} ran too: pass stop_at_layer={layer} + 1 so the forward "
                    "pass stops after the block you need (it is what makes SAE data collection cheap).")
    return f"layer {layer} captured" + ("" if watch.remote else " without computing later blocks")


# ---------------------------------------------------------------------------------------------
@exercise("00", 5, "mean_difference_direction", "A first direction: mean difference")
def mean_difference_direction(fn: Callable) -> str:
    import torch

    model = course_model()
    rng = random.Random()
    positive = ["I love this, it is wonderful!", "What a delightful, happy day.", "This is the best gift ever, thank you so much"]
    negative = ["I hate this.", "What a miserable, awful day it has been today.", "This is the worst"]
    rng.shuffle(positive)
    rng.shuffle(negative)
    layer = rng.choice([6, 10, 14])
    # copies: the lists are the reference's inputs below (and a remote call copies changes back into what it sent)
    got = as_tensor(fn(model, list(positive), list(negative), layer), "mean_difference_direction(...)")
    want = tour.mean_difference_direction(model, positive, negative, layer).float().cpu()
    if got.shape != want.shape:
        fail(f"returned shape {tuple(got.shape)}; expected ({model.cfg.d_model},), one direction in the residual stream.")
    cos = float(torch.nn.functional.cosine_similarity(got, want, dim=0))
    norm = float(got.norm())
    if cos < -0.999:
        fail("the direction points the wrong way: use mean(positive) - mean(negative).")
    if cos > 0.999 and abs(norm - 1) > 1e-3:
        fail(f"right direction but norm {norm:.3f}: divide by its norm so it is a unit vector.")
    if cos > 0.999:
        return f"layer {layer}: unit direction from negative to positive"
    # Catalogued mistakes: averaging over positions, or reading [-1] of a right-padded batch.
    def mean_all_positions(prompts: list[str]) -> Any:
        return torch.stack([tour.resid_at_layer(model, tour.to_tokens(model, p), layer)[0].mean(0) for p in prompts]).mean(0).cpu()

    d = mean_all_positions(positive) - mean_all_positions(negative)
    if float(torch.nn.functional.cosine_similarity(got, d, dim=0)) > 0.99:
        fail("you averaged over all positions; use each prompt's LAST token, where the model has read the whole prompt.")
    padded = lambda ps: tour.resid_at_layer(model, tour.to_tokens(model, ps), layer)[:, -1].mean(0).cpu()  # noqa: E731
    d = padded(positive) - padded(negative)
    if float(torch.nn.functional.cosine_similarity(got, d, dim=0)) > 0.99:
        fail("you read position -1 of a padded batch: shorter prompts end in padding there. Run the prompts "
             "one at a time (or index each prompt's true last token).")
    fail(f"cosine similarity with the reference direction is {cos:.3f} (layer {layer}); expected 1.")
