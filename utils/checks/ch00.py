"""Checks for chapter 00 — setup and a tour of the model's internals.

Each check compares the learner's function with the reference in :mod:`utils.tour` on fixed and
randomised inputs and, on a mismatch, tests the catalogued mistakes to say which one it probably is.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from utils import tour
from utils.checks import as_number, as_tensor, close, course_model, exercise, fail

_WORDS = "river cloud lantern violin garden winter copper harbor meadow puzzle rocket velvet".split()








def _random_sentence(rng: random.Random) -> str:
    return "The " + " ".join(rng.sample(_WORDS, 3)) + " is"


# ---------------------------------------------------------------------------------------------
@exercise("00", 1, "next_token_probs", "Next-token probabilities")
def next_token_probs(fn: Callable) -> str:
    model = course_model()
    rng = random.Random()
    prompts = ["The capital of France is", "1, 2, 3, 4,", _random_sentence(rng)]
    d_vocab = model.cfg.d_vocab
    for prompt in prompts:
        got = as_tensor(fn(model, prompt), "next_token_probs(model, prompt)")
        want = tour.next_token_probs(model, prompt)
        if got.ndim == 2 and got.shape[-1] == d_vocab:
            fail(
                f"returned shape {tuple(got.shape)}; expected ({d_vocab},). The model predicts the next "
                "token from the LAST position: index logits[0, -1] (batch 0, position -1)."
            )
        if got.shape != (d_vocab,):
            fail(f"returned shape {tuple(got.shape)}; expected ({d_vocab},), one probability per vocabulary entry.")
        total = float(got.sum())
        if abs(total - 1) > 1e-3:
            if got.min() < 0 or total > 2:
                fail("these look like raw logits (they do not sum to 1): apply .softmax(dim=-1).")
            fail(f"the probabilities sum to {total:.4f}, not 1: take the softmax over the vocabulary (dim=-1).")
        if not close(got, want, atol=1e-5):
            tokens = tour.to_tokens(model, prompt)
            first = model(tokens)[0, 0].softmax(-1).detach()
            if close(got, first, atol=1e-5):
                fail("you used the first position; the next token is predicted at the last one (index -1).")
            fail(f"probabilities differ from the reference for prompt {prompt!r}. Did you tokenise the prompt "
                 "with tour.to_tokens / model.to_tokens and use the logits at position -1?")
    top = model.tokenizer.decode(int(want.argmax()))
    return f"top next token after {prompts[-1]!r} is {top!r} (p = {float(want.max()):.2f})"


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
@exercise("00", 3, "residual_norms", "How big is the residual stream?")
def residual_norms(fn: Callable) -> str:
    import torch

    model = course_model()
    n = model.cfg.n_layers
    prompt = _random_sentence(random.Random()) + " a place where"
    got = as_tensor(fn(model, prompt), "residual_norms(model, prompt)")
    want = tour.residual_norms(model, prompt)
    if got.shape == (n,):
        fail(f"returned {n} values; expected {n + 1}: entry 0 is the embedding (blocks.0.hook_resid_pre), "
             "then one entry per block's hook_resid_post.")
    if got.shape != (n + 1,):
        fail(f"returned shape {tuple(got.shape)}; expected ({n + 1},). Take the norm over d_model "
             "(dim=-1), then average over positions.")
    if close(got, want, atol=1e-3):
        return f"norm grows from {float(want[0]):.1f} (embedding) to {float(want[-1]):.1f} (last block)"
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(n)]
    _, cache = model.run_with_cache(tour.to_tokens(model, prompt), names_filter=lambda x: x in names)
    stack = torch.stack([cache[x][0] for x in names]).detach()  # (n+1, pos, d_model)
    if close(got, stack[:, -1].norm(dim=-1), atol=1e-3):
        fail("you used only the last position; average the norm over all positions.")
    if close(got, (stack**2).sum(-1).mean(-1), atol=1e-4, rtol=1e-3):
        fail("you returned the squared norm; use the L2 norm (.norm(dim=-1)).")
    if close(got, stack.norm(dim=1).mean(-1), atol=1e-3):
        fail("you took the norm over positions; take it over d_model (dim=-1), then average over positions.")
    if close(got, stack.mean(1).norm(dim=-1), atol=1e-3):
        fail("you took the norm of the mean vector; take each position's norm first, then average.")
    fail("the norms differ from the reference. Use ||x||_2 over d_model at each position, averaged over positions.")


# ---------------------------------------------------------------------------------------------
@exercise("00", 4, "resid_at_layer", "Hooks and stop_at_layer")
def resid_at_layer(fn: Callable) -> str:
    import torch

    model = course_model()
    rng = random.Random()
    layer = rng.randint(3, model.cfg.n_layers - 3)
    tokens = torch.randint(100, 20000, (2, 7), generator=torch.Generator().manual_seed(rng.randint(0, 10**6)))
    tokens = tokens.to(model.cfg.device)  # the learner's tokens live where the model does
    calls = {"later": 0}
    handle = model.blocks[layer + 1].register_forward_hook(lambda *_: calls.__setitem__("later", calls["later"] + 1))
    try:
        got = as_tensor(fn(model, tokens, layer), f"resid_at_layer(model, tokens, {layer})")
    except KeyError as error:
        if "hook_resid_post" in str(error) or "hook_resid_pre" in str(error):
            fail(f"your code looked up {error} in the cache, which is not there. `stop_at_layer=L` stops BEFORE block L "
                 f"runs, so with stop_at_layer={layer} block {layer} never runs and blocks.{layer}.hook_resid_post is "
                 f"never recorded. Use stop_at_layer={layer} + 1 (layer + 1).")
        raise
    finally:
        handle.remove()
    want = tour.resid_at_layer(model, tokens, layer)
    if got.shape != want.shape:
        fail(f"returned shape {tuple(got.shape)}; expected (batch, pos, d_model) = {tuple(want.shape)}.")
    if not close(got, want, atol=1e-4):
        if layer > 0 and close(got, tour.resid_at_layer(model, tokens, layer - 1), atol=1e-4):
            fail(f"off by one: you returned the residual stream BEFORE block {layer} (hook_resid_pre, = block "
                 f"{layer - 1}'s output). Capture blocks.{layer}.hook_resid_post with stop_at_layer={layer} + 1.")
        if close(got, tour.resid_at_layer(model, tokens, layer + 1), atol=1e-4):
            fail(f"off by one: you returned block {layer + 1}'s output; capture blocks.{layer}.hook_resid_post.")
        fail(f"values differ from blocks.{layer}.hook_resid_post (layer={layer}).")
    if calls["later"]:
        fail(f"correct values, but block {layer + 1} ran too: pass stop_at_layer={layer} + 1 so the forward "
             "pass stops after the block you need (it is what makes SAE data collection cheap).")
    return f"layer {layer} captured without computing later blocks"


# ---------------------------------------------------------------------------------------------
@exercise("00", 5, "logit_lens", "The logit lens")
def logit_lens(fn: Callable) -> str:
    import torch

    model = course_model()
    tokens = tour.to_tokens(model, "The Golden Gate Bridge is in the city of")
    n = model.cfg.n_layers
    last = tour.resid_at_layer(model, tokens, n - 1)
    got = as_tensor(fn(model, last), "logit_lens(model, resid)")
    with torch.no_grad():
        logits = model(tokens)
    if got.shape != logits.shape:
        fail(f"returned shape {tuple(got.shape)} for a resid of shape {tuple(last.shape)}; expected (..., d_vocab) "
             f"= {tuple(logits.shape)}.")
    if not close(got, logits, atol=1e-3, rtol=1e-3):
        with torch.no_grad():
            raw = model.unembed(last)
            rms = last * torch.rsqrt(last.pow(2).mean(-1, keepdim=True) + 1e-5)
            no_gain = model.unembed(rms)
        if close(got, raw, atol=1e-3, rtol=1e-3):
            fail("you skipped the final norm: apply model.ln_final(resid) before model.unembed.")
        if close(got, no_gain, atol=1e-3, rtol=1e-3):
            fail("you normalised by hand without the learned gain; use model.ln_final, which includes it.")
        fail("on the last layer's residual the logit lens must reproduce the model's own logits exactly.")
    mid = tour.resid_at_layer(model, tokens, n // 2)
    got_mid = as_tensor(fn(model, mid), "logit_lens(model, resid)")
    if not close(got_mid, tour.logit_lens(model, mid), atol=1e-3, rtol=1e-3):
        fail("matches on the last layer but not on a middle one: do not read the model's logits, transform `resid`.")
    return "reproduces the model's logits on the final residual stream"


# ---------------------------------------------------------------------------------------------
@exercise("00", 6, "mean_difference_direction", "A first direction: mean difference")
def mean_difference_direction(fn: Callable) -> str:
    import torch

    model = course_model()
    rng = random.Random()
    positive = ["I love this, it is wonderful!", "What a delightful, happy day.", "This is the best gift ever, thank you so much"]
    negative = ["I hate this.", "What a miserable, awful day it has been today.", "This is the worst"]
    rng.shuffle(positive)
    rng.shuffle(negative)
    layer = rng.choice([6, 10, 14])
    got = as_tensor(fn(model, positive, negative, layer), "mean_difference_direction(...)")
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
