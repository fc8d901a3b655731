"""Every chapter-00 check passes on the reference, fails on the stub, and fails on each catalogued
mistake (mutant) with the diagnostic message a learner needs."""

from __future__ import annotations

import pytest
import torch

from utils import tour
from check_contract import contract_tests
from utils.checks import CheckFailure, exercises
from utils.checks import ch00 as check


# --- mutants: realistic wrong implementations -------------------------------------------------
def probs_logits(model, prompt):
    return model(tour.to_tokens(model, prompt))[0, -1]


def probs_first_position(model, prompt):
    return model(tour.to_tokens(model, prompt))[0, 0].softmax(-1)


def probs_all_positions(model, prompt):
    return model(tour.to_tokens(model, prompt))[0].softmax(-1)


def probs_wrong_dim(model, prompt):
    return model(tour.to_tokens(model, prompt))[:, -1].softmax(0)[0]


def chat_no_generation_prompt(tokenizer, question, system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, tokenize=False)


def chat_tokenized(tokenizer, question, system=None):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True)


def chat_system_as_user(tokenizer, question, system=None):
    messages = ([{"role": "user", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def chat_ignores_system(tokenizer, question, system=None):
    return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)


def _stack(model, prompt, include_embed=True):
    n = model.cfg.n_layers
    names = (["blocks.0.hook_resid_pre"] if include_embed else []) + [f"blocks.{i}.hook_resid_post" for i in range(n)]
    _, cache = model.run_with_cache(tour.to_tokens(model, prompt), names_filter=lambda x: x in names)
    return torch.stack([cache[x][0] for x in names])  # (layers, pos, d_model)


def norms_no_embedding(model, prompt):
    return _stack(model, prompt, include_embed=False).norm(dim=-1).mean(-1)


def norms_last_position(model, prompt):
    return _stack(model, prompt)[:, -1].norm(dim=-1)


def norms_squared(model, prompt):
    return (_stack(model, prompt) ** 2).sum(-1).mean(-1)


def norms_of_mean(model, prompt):
    return _stack(model, prompt).mean(1).norm(dim=-1)


def norms_wrong_axis(model, prompt):
    return _stack(model, prompt).norm(dim=1).mean(-1)


def resid_off_by_one(model, tokens, layer):
    name = f"blocks.{layer}.hook_resid_pre"
    _, cache = model.run_with_cache(tokens, names_filter=name, stop_at_layer=layer + 1)
    return cache[name]


def resid_stop_at_layer(model, tokens, layer):  # the classic: stop_at_layer=layer never runs block `layer`
    name = f"blocks.{layer}.hook_resid_post"
    _, cache = model.run_with_cache(tokens, names_filter=name, stop_at_layer=layer)
    return cache[name]


def resid_stop_too_early(model, tokens, layer):
    return tour.resid_at_layer(model, tokens, layer - 1)


def resid_full_forward(model, tokens, layer):
    name = f"blocks.{layer}.hook_resid_post"
    _, cache = model.run_with_cache(tokens, names_filter=name)
    return cache[name]


def resid_next_layer(model, tokens, layer):
    return tour.resid_at_layer(model, tokens, layer + 1)


def lens_no_norm(model, resid):
    return model.unembed(resid)


def lens_norm_without_gain(model, resid):
    return model.unembed(resid * torch.rsqrt(resid.pow(2).mean(-1, keepdim=True) + 1e-5))


def lens_returns_probs(model, resid):
    return model.unembed(model.ln_final(resid)).softmax(-1)


def direction_flipped(model, positive, negative, layer):
    return -tour.mean_difference_direction(model, positive, negative, layer)


def direction_unnormalised(model, positive, negative, layer):
    return tour.last_token_resid(model, positive, layer).mean(0) - tour.last_token_resid(model, negative, layer).mean(0)


def direction_all_positions(model, positive, negative, layer):
    def mean(ps):
        return torch.stack([tour.resid_at_layer(model, tour.to_tokens(model, p), layer)[0].mean(0) for p in ps]).mean(0)
    d = mean(positive) - mean(negative)
    return d / d.norm()


def direction_padded_batch(model, positive, negative, layer):
    def mean(ps):
        return tour.resid_at_layer(model, tour.to_tokens(model, ps), layer)[:, -1].mean(0)
    d = mean(positive) - mean(negative)
    return d / d.norm()


MUTANTS = {
    "next_token_probs": [
        (probs_logits, "logits"),
        (probs_first_position, "first position"),
        (probs_all_positions, "LAST position"),
        (probs_wrong_dim, "sum to"),
    ],
    "format_chat": [
        (chat_no_generation_prompt, "add_generation_prompt=True"),
        (chat_tokenized, "tokenize=False"),
        (chat_system_as_user, "role 'user'"),
        (chat_ignores_system, "system message is missing"),
    ],
    "residual_norms": [
        (norms_no_embedding, "embedding"),
        (norms_last_position, "last position"),
        (norms_squared, "squared"),
        (norms_of_mean, "norm of the mean"),
        (norms_wrong_axis, "norm over positions"),
    ],
    "resid_at_layer": [
        (resid_off_by_one, "off by one"),
        (resid_stop_at_layer, "stops BEFORE block L runs"),
        (resid_stop_too_early, "off by one"),
        (resid_next_layer, "off by one"),
        (resid_full_forward, "stop_at_layer"),
    ],
    "logit_lens": [
        (lens_no_norm, "final norm"),
        (lens_norm_without_gain, "learned gain"),
        (lens_returns_probs, "logits"),
    ],
    "mean_difference_direction": [
        (direction_flipped, "wrong way"),
        (direction_unnormalised, "unit vector"),
        (direction_all_positions, "all positions"),
        (direction_padded_batch, "padded batch"),
    ],
}


def test_every_exercise_has_mutants_and_a_check():
    names = [e.name for e in exercises("00")]
    assert names == list(MUTANTS)
    assert all(len(m) >= 2 for m in MUTANTS.values())


test_check_passes_on_reference, test_check_fails_on_stub, test_check_fails_on_mutant_with_diagnostic = (
    contract_tests(check, {name: getattr(tour, name) for name in MUTANTS}, MUTANTS, needs_model=set(MUTANTS))
)


def test_check_rejects_non_callables_and_crashing_code(model):
    with pytest.raises(CheckFailure, match="expected a function"):
        check.logit_lens(42)

    def crashes(model, resid):
        raise KeyError("blocks.99")

    with pytest.raises(CheckFailure, match="KeyError") as failure:
        check.logit_lens(crashes)
    assert "in your code, line" in str(failure.value) and 'raise KeyError("blocks.99")' in str(failure.value)
