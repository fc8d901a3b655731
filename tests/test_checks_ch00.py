"""Every chapter-00 check passes on the reference, fails on the stub, and fails on each catalogued
mistake (mutant) with the diagnostic message a learner needs."""

from __future__ import annotations

import pytest
import torch

from utils import tour
from remote_harness import remote_contract_tests
from check_contract import assert_passes_repeatedly, contract_tests
from utils.checks import CheckFailure, exercises
from utils.checks import ch00 as check


# --- mutants: realistic wrong implementations -------------------------------------------------
def _greedy(model, prompt, n_new, step_probs=lambda logits: logits[0, -1].softmax(-1), append=True):
    tokens = tour.to_tokens(model, prompt)
    ids, rows = [], []
    with torch.no_grad():
        for _ in range(n_new):
            probs = step_probs(model(tokens))
            rows.append(probs)
            ids.append(int(probs.argmax()))
            if append:
                tokens = torch.cat([tokens, torch.tensor([[ids[-1]]])], dim=1)
    return torch.tensor(ids), torch.stack(rows)


def greedy_logits(model, prompt, n_new):
    return _greedy(model, prompt, n_new, step_probs=lambda logits: logits[0, -1])


def greedy_first_position(model, prompt, n_new):
    return _greedy(model, prompt, n_new, step_probs=lambda logits: logits[0, 0].softmax(-1))


def greedy_softmax_over_batch(model, prompt, n_new):
    return _greedy(model, prompt, n_new, step_probs=lambda logits: logits[:, -1].softmax(0)[0])


def greedy_never_appends(model, prompt, n_new):
    return _greedy(model, prompt, n_new, append=False)


def greedy_returns_prompt_too(model, prompt, n_new):
    ids, probs = tour.greedy_decode(model, prompt, n_new)
    return torch.cat([tour.to_tokens(model, prompt)[0], ids]), probs


def greedy_chosen_probs_only(model, prompt, n_new):
    ids, probs = tour.greedy_decode(model, prompt, n_new)
    return ids, probs.max(-1).values


def greedy_second_choice(model, prompt, n_new):  # e.g. topk(2).indices[1], or argsort without descending=True
    tokens = tour.to_tokens(model, prompt)
    ids, rows = [], []
    with torch.no_grad():
        for _ in range(n_new):
            probs = model(tokens)[0, -1].softmax(-1)
            rows.append(probs)
            ids.append(int(probs.topk(2).indices[1]))
            tokens = torch.cat([tokens, torch.tensor([[ids[-1]]])], dim=1)
    return torch.tensor(ids), torch.stack(rows)


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


def _stack(model, prompt):
    n = model.cfg.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(n)]
    with torch.no_grad():
        _, cache = model.run_with_cache(tour.to_tokens(model, prompt), names_filter=lambda x: x in names)
    return torch.stack([cache[x][0] for x in names])  # (layers, pos, d_model)


def _sweep(model, prompt, answer, stack=None, norm=None, lens=None, position=-1, token=None, above=torch.gt):
    """The reference sweep with one piece swapped for a catalogued mistake."""
    stack = _stack(model, prompt) if stack is None else stack
    token = model.to_single_token(answer) if token is None else token
    with torch.no_grad():
        logits = (lens or (lambda r: model.unembed(model.ln_final(r))))(stack[:, position])
    return {"norm": (norm or (lambda s: s.norm(dim=-1).mean(-1)))(stack), "p_answer": logits.softmax(-1)[:, token],
            "rank": above(logits, logits[:, token, None]).sum(-1)}


def sweep_no_embedding(model, prompt, answer):
    return {k: v[1:] for k, v in tour.residual_sweep(model, prompt, answer).items()}


def sweep_norm_last_position(model, prompt, answer):
    return _sweep(model, prompt, answer, norm=lambda s: s[:, -1].norm(dim=-1))


def sweep_norm_squared(model, prompt, answer):
    return _sweep(model, prompt, answer, norm=lambda s: (s**2).sum(-1).mean(-1))


def sweep_norm_of_mean(model, prompt, answer):
    return _sweep(model, prompt, answer, norm=lambda s: s.mean(1).norm(dim=-1))


def sweep_norm_wrong_axis(model, prompt, answer):
    return _sweep(model, prompt, answer, norm=lambda s: s.norm(dim=1).mean(-1))


def sweep_lens_no_norm(model, prompt, answer):
    return _sweep(model, prompt, answer, lens=model.unembed)


def sweep_lens_without_gain(model, prompt, answer):
    return _sweep(model, prompt, answer, lens=lambda r: model.unembed(r * torch.rsqrt(r.pow(2).mean(-1, keepdim=True) + 1e-5)))


def sweep_lens_first_position(model, prompt, answer):
    return _sweep(model, prompt, answer, position=0)


def sweep_answer_is_bos(model, prompt, answer):  # tokenizer.encode(answer)[0] is the BOS token
    return _sweep(model, prompt, answer, token=model.tokenizer.encode(answer)[0])


def sweep_lens_logits(model, prompt, answer):
    out = _sweep(model, prompt, answer)
    stack = _stack(model, prompt)
    with torch.no_grad():
        out["p_answer"] = model.unembed(model.ln_final(stack[:, -1]))[:, model.to_single_token(answer)]
    return out


def sweep_lens_only_last_layer(model, prompt, answer):  # reads the model's own logits for every layer
    out = _sweep(model, prompt, answer)
    out["p_answer"] = out["p_answer"][-1].expand(model.cfg.n_layers + 1)
    out["rank"] = out["rank"][-1].expand(model.cfg.n_layers + 1)
    return out


def sweep_rank_counts_itself(model, prompt, answer):
    return _sweep(model, prompt, answer, above=torch.ge)


def sweep_one_pass_per_layer(model, prompt, answer):  # right values, 31 forward passes
    tokens = tour.to_tokens(model, prompt)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter="blocks.0.hook_resid_pre", stop_at_layer=1)
    rows = [cache["blocks.0.hook_resid_pre"][0]] + [tour.resid_at_layer(model, tokens, layer)[0]
                                                    for layer in range(model.cfg.n_layers)]
    return _sweep(model, prompt, answer, stack=torch.stack(rows))


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
    "greedy_decode": [
        (greedy_logits, "raw logits"),
        (greedy_first_position, "FIRST position"),
        (greedy_softmax_over_batch, "dimension of size 1"),
        (greedy_never_appends, "append each chosen token"),
        (greedy_returns_prompt_too, "only the"),
        (greedy_chosen_probs_only, "WHOLE next-token distribution"),
        (greedy_second_choice, "argmax"),
    ],
    "format_chat": [
        (chat_no_generation_prompt, "add_generation_prompt=True"),
        (chat_tokenized, "tokenize=False"),
        (chat_system_as_user, "role 'user'"),
        (chat_ignores_system, "system message is missing"),
    ],
    "residual_sweep": [
        (sweep_no_embedding, "entry 0 is the embedding"),
        (sweep_norm_last_position, "last position"),
        (sweep_norm_squared, "squared"),
        (sweep_norm_of_mean, "norm of the mean"),
        (sweep_norm_wrong_axis, "norm over positions"),
        (sweep_lens_no_norm, "final norm"),
        (sweep_lens_without_gain, "learned gain"),
        (sweep_lens_first_position, "FIRST position"),
        (sweep_answer_is_bos, "BOS token"),
        (sweep_lens_logits, "softmax"),
        (sweep_lens_only_last_layer, "every layer"),
        (sweep_rank_counts_itself, "counted the answer itself"),
        (sweep_one_pass_per_layer, "ran the model"),
    ],
    "resid_at_layer": [
        (resid_off_by_one, "off by one"),
        (resid_stop_at_layer, "stops BEFORE block L runs"),
        (resid_stop_too_early, "off by one"),
        (resid_next_layer, "off by one"),
        (resid_full_forward, "stop_at_layer"),
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
    assert names == ["greedy_decode", "format_chat", "residual_sweep", "resid_at_layer", "mean_difference_direction"]
    assert names == list(MUTANTS)
    assert [e.number for e in exercises("00")] == list(range(1, 6))
    assert all(len(m) >= 4 for m in MUTANTS.values())


REFERENCE = {name: getattr(tour, name) for name in MUTANTS}

test_check_passes_on_reference, test_check_fails_on_stub, test_check_fails_on_mutant_with_diagnostic = (
    contract_tests(check, REFERENCE, MUTANTS, needs_model=set(MUTANTS))
)

# The same contract through a real kernel, as the grader runs it: the check here, the function there.
(student_kernel, test_check_passes_on_reference_remotely, test_check_fails_on_stub_remotely,
 test_check_fails_on_mutant_remotely) = remote_contract_tests("test_checks_ch00", check, MUTANTS, needs_model=tuple(MUTANTS))


def test_check_rejects_non_callables_and_crashing_code(model):
    with pytest.raises(CheckFailure, match="expected a function"):
        check.residual_sweep(42)

    def crashes(model, prompt, answer):
        raise KeyError("blocks.99")

    with pytest.raises(CheckFailure, match="KeyError") as failure:
        check.residual_sweep(crashes)
    assert "in your code, line" in str(failure.value) and 'raise KeyError("blocks.99")' in str(failure.value)


@pytest.mark.parametrize("name", ["greedy_decode", "residual_sweep"])
def test_randomised_checks_never_trip_the_reference(name, model, capsys):
    assert_passes_repeatedly(getattr(check, name), getattr(tour, name), capsys, times=3)


def test_reference_sweep_agrees_with_the_model_and_the_lens(model):
    """The sweep's last entry is the model's own next-token distribution; its other entries are the logit lens of
    resid_at_layer; the norms are residual_norms; and every prompt the check uses has its answer on top at the end."""
    for prompt, answer in check._SWEEP_CASES:
        sweep = tour.residual_sweep(model, prompt, answer)
        answer_id = model.to_single_token(answer)
        probs = tour.next_token_probs(model, prompt)
        assert float(sweep["p_answer"][-1]) == pytest.approx(float(probs[answer_id]), abs=1e-5)
        assert int(sweep["rank"][-1]) == 0 and int(probs.argmax()) == answer_id and int(sweep["rank"][0]) > 0
        assert torch.allclose(sweep["norm"], tour.residual_norms(model, prompt), atol=1e-3)
        tokens = tour.to_tokens(model, prompt)
        mid = tour.logit_lens(model, tour.resid_at_layer(model, tokens, 14))[0, -1].softmax(-1)
        assert float(sweep["p_answer"][15]) == pytest.approx(float(mid[answer_id]), abs=1e-5)


def test_reference_greedy_decode_is_the_uncached_loop(model):
    from utils.generation import greedy_uncached

    prompt = "The Golden Gate Bridge is in the city of"
    ids, probs = tour.greedy_decode(model, prompt, 5)
    tokens = tour.to_tokens(model, prompt)
    assert torch.equal(ids, greedy_uncached(model, tokens, 5)[0, tokens.shape[1]:])
    assert torch.allclose(probs[0], tour.next_token_probs(model, prompt))


def test_the_chapters_lens_and_norm_claims(model):
    """Chapter 00's prose on the sweep of 'The capital of France is' -> ' Paris': the norm grows by a factor of several
    hundred (recap); the answer surfaces only in the last few blocks (recap), far from the top before them."""
    sweep = tour.residual_sweep(model, "The capital of France is", " Paris")
    assert 200 < float(sweep["norm"][-1] / sweep["norm"][0]) < 1000
    first_top = int((sweep["rank"] == 0).nonzero()[0])
    assert model.cfg.n_layers - 5 <= first_top < model.cfg.n_layers
    assert bool((sweep["rank"][: model.cfg.n_layers - 6] > 1000).all())
