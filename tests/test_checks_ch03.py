"""Every chapter-03 check passes on the reference, fails on the stub, and fails on each catalogued
mistake (mutant) with the diagnostic message a learner needs."""

from __future__ import annotations

import math

import pytest
import torch

from utils import steering
from check_contract import contract_tests
from utils.checks import CheckFailure, exercises
from utils.checks import ch03 as check
from utils.generation import chat_prompt, generate

REFERENCE = {
    "additive_hook": steering.additive_hook,
    "clamp_hook": steering.clamp_hook,
    "mean_difference_vector": steering.mean_difference_vector,
    "bridge_rate": steering.bridge_rate,
    "repetition_rate": steering.repetition_rate,
    "completion_perplexity": steering.completion_perplexity,
}


# --- mutants: realistic wrong implementations -------------------------------------------------
def additive_last_position(direction, coefficient):
    def hook(act, hook=None):
        act[:, -1] += coefficient * direction
        return act

    return hook


def additive_normalised(direction, coefficient):
    def hook(act, hook=None):
        return act + coefficient * direction / direction.norm()

    return hook


def additive_subtracts(direction, coefficient):
    def hook(act, hook=None):
        return act - coefficient * direction

    return hook


def additive_multiplies(direction, coefficient):
    def hook(act, hook=None):
        return act * (coefficient * direction)

    return hook


def additive_rebinds_and_returns_none(direction, coefficient):
    def hook(act, hook=None):
        act = act + coefficient * direction  # noqa: F841 (the mistake: a local rebinding, nothing returned)

    return hook


def additive_no_hook_argument(direction, coefficient):
    def hook(act):
        return act + coefficient * direction

    return hook


def additive_scales_direction_in_place(direction, coefficient):
    direction *= coefficient

    def hook(act, hook=None):
        return act + direction

    return hook


def _clamped(sae, act, latent, value):
    z = sae.encode(act)
    error = act - sae.decode(z)
    z = z.clone()
    z[..., latent] = value
    return z, error


def clamp_no_error_term(sae, latent, value):
    def hook(act, hook=None):
        z, _ = _clamped(sae, act, latent, value)
        return sae.decode(z)

    return hook


def clamp_pre_activation(sae, latent, value):
    def hook(act, hook=None):
        z = sae.encode(act)
        error = act - sae.decode(z)
        pre = sae.pre_activations(act)
        pre[..., latent] = value
        return sae.decode(sae.activation(pre)) + error

    return hook


def clamp_adds_value(sae, latent, value):
    def hook(act, hook=None):
        z = sae.encode(act)
        error = act - sae.decode(z)
        z[..., latent] += value
        return sae.decode(z) + error

    return hook


def clamp_last_position(sae, latent, value):
    def hook(act, hook=None):
        z, error = _clamped(sae, act[:, -1], latent, value)
        act[:, -1] = sae.decode(z) + error
        return act

    return hook


def clamp_encoder_column(sae, latent, value):
    def hook(act, hook=None):
        z = sae.encode(act)
        return act + (value - z[..., latent, None]) * sae.W_enc[:, latent]

    return hook


def clamp_forgets_to_decode_copy(sae, latent, value):
    def hook(act, hook=None):
        z = sae.encode(act)
        error = act - sae.decode(z)
        z_clamped = z.clone()
        z_clamped[..., latent] = value
        return sae.decode(z) + error  # decodes the original latents

    return hook


def clamp_edits_the_decoder(sae, latent, value):
    def hook(act, hook=None):
        z = sae.encode(act)
        error = act - sae.decode(z)
        sae.W_dec.data[latent] *= 2  # "strengthen the latent" by editing the SAE itself
        z[..., latent] = value
        return sae.decode(z) + error

    return hook


def _pool(x, mask):
    m = mask.float().unsqueeze(-1)
    return (x * m).sum(1) / m.sum(1)


def mean_diff_ignores_masks(concept, concept_mask, neutral, neutral_mask):
    return concept.mean(dim=(0, 1)) - neutral.mean(dim=(0, 1))


def mean_diff_normalised(concept, concept_mask, neutral, neutral_mask):
    v = _pool(concept, concept_mask).mean(0) - _pool(neutral, neutral_mask).mean(0)
    return v / v.norm()


def mean_diff_reversed(concept, concept_mask, neutral, neutral_mask):
    return _pool(neutral, neutral_mask).mean(0) - _pool(concept, concept_mask).mean(0)


def mean_diff_pooled_tokens(concept, concept_mask, neutral, neutral_mask):
    return concept[concept_mask].mean(0) - neutral[neutral_mask].mean(0)


def mean_diff_last_position(concept, concept_mask, neutral, neutral_mask):
    return concept[:, -1].mean(0) - neutral[:, -1].mean(0)


def mean_diff_in_place(concept, concept_mask, neutral, neutral_mask):
    concept *= concept_mask.unsqueeze(-1)
    neutral *= neutral_mask.unsqueeze(-1)
    return (concept.sum(1) / concept_mask.sum(1, keepdim=True)).mean(0) - (
        neutral.sum(1) / neutral_mask.sum(1, keepdim=True)).mean(0)


def _answers(model, questions, hooks, template=True):
    prompts = [chat_prompt(model.tokenizer, q) if template else q for q in questions]
    return generate(model, prompts, max_new_tokens=60, hooks=hooks, repetition_penalty=steering.REPETITION_PENALTY,
                    batch_size=len(prompts))


def bridge_hooks_not_passed(model, questions, hooks=()):
    answers = _answers(model, questions, ())
    return sum(steering.mentions_bridge(a) for a in answers) / len(answers), answers


def bridge_no_chat_template(model, questions, hooks=()):
    answers = _answers(model, questions, hooks, template=False)
    return sum(steering.mentions_bridge(a) for a in answers) / len(answers), answers


def bridge_count(model, questions, hooks=()):
    answers = _answers(model, questions, hooks)
    return sum(steering.mentions_bridge(a) for a in answers), answers


def bridge_every_mention(model, questions, hooks=()):
    answers = _answers(model, questions, hooks)
    return sum(len(steering.BRIDGE_PATTERN.findall(a)) for a in answers) / len(answers), answers


def repetition_distinct_ratio(tokens, n=3):
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_unigrams(tokens, n=3):
    return 1 - len(set(tokens)) / len(tokens) if tokens else 0.0


def repetition_off_by_one(tokens, n=3):
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def repetition_over_tokens(tokens, n=3):
    grams = {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}
    return 1 - len(grams) / len(tokens) if len(tokens) >= n else 0.0


def repetition_no_short_case(tokens, n=3):
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(grams)) / len(grams)


def _token_nll(model, prompt, completion):
    tok = model.tokenizer
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    c_ids = tok(completion, add_special_tokens=False).input_ids
    ids = torch.tensor([p_ids + c_ids])
    with torch.no_grad():
        logprobs = model(ids.to(model.cfg.device)).float().log_softmax(-1)[0].cpu()
    return logprobs, ids[0], len(p_ids), len(c_ids)


def _next_nll(model, prompt, completion):
    logprobs, ids, P, C = _token_nll(model, prompt, completion)
    return -logprobs[:-1].gather(-1, ids[1:, None])[:, 0], P, C


def perplexity_includes_prompt(model, prompt, completion):
    nll, P, C = _next_nll(model, prompt, completion)
    return math.exp(nll.mean().item())


def perplexity_same_position(model, prompt, completion):
    logprobs, ids, P, C = _token_nll(model, prompt, completion)
    return math.exp(-logprobs[P:].gather(-1, ids[P:, None]).mean().item())


def perplexity_mean_nll(model, prompt, completion):
    nll, P, C = _next_nll(model, prompt, completion)
    return nll[P - 1 :].mean().item()


def perplexity_sum(model, prompt, completion):
    nll, P, C = _next_nll(model, prompt, completion)
    return math.exp(nll[P - 1 :].sum().item())


def perplexity_base_two(model, prompt, completion):
    nll, P, C = _next_nll(model, prompt, completion)
    return 2 ** nll[P - 1 :].mean().item()


MUTANTS = {
    "additive_hook": [
        (additive_last_position, "only the last position"),
        (additive_normalised, "normalised the direction"),
        (additive_subtracts, "sign is reversed"),
        (additive_multiplies, "multiplied act"),
        (additive_rebinds_and_returns_none, "only rebinds a local name"),
        (additive_no_hook_argument, "def hook(act, hook=None)"),
        (additive_scales_direction_in_place, "in place"),
    ],
    "clamp_hook": [
        (clamp_no_error_term, "dropped the error term"),
        (clamp_pre_activation, "PRE-activation"),
        (clamp_adds_value, "added value to the latent"),
        (clamp_last_position, "only the last position"),
        (clamp_encoder_column, "ENCODER column"),
        (clamp_forgets_to_decode_copy, "returned act unchanged"),
        (clamp_edits_the_decoder, "changed the SAE's W_dec in place"),
    ],
    "mean_difference_vector": [
        (mean_diff_ignores_masks, "ignored the masks"),
        (mean_diff_normalised, "unit length"),
        (mean_diff_reversed, "sign is reversed"),
        (mean_diff_pooled_tokens, "Each text should count once"),
        (mean_diff_last_position, "only the last position"),
        (mean_diff_in_place, "in place"),
    ],
    "bridge_rate": [
        (bridge_hooks_not_passed, "the hooks never reached the model"),
        (bridge_no_chat_template, "chat turn"),
        (bridge_count, "number of answers that mention the bridge"),
        (bridge_every_mention, "each answer counts once"),
    ],
    "repetition_rate": [
        (repetition_distinct_ratio, "fraction of DISTINCT n-grams"),
        (repetition_unigrams, "unigrams"),
        (repetition_off_by_one, "missed the last n-gram"),
        (repetition_over_tokens, "divided by the number of tokens"),
        (repetition_no_short_case, "return 0.0"),
    ],
    "completion_perplexity": [
        (perplexity_includes_prompt, "prompt's tokens too"),
        (perplexity_same_position, "position t against token t"),
        (perplexity_mean_nll, "perplexity is its exponential"),
        (perplexity_sum, "SUM of the NLLs"),
        (perplexity_base_two, "logarithm bases"),
    ],
}

NEEDS_MODEL = {"bridge_rate", "completion_perplexity"}


def test_every_exercise_has_mutants_and_a_check():
    names = [e.name for e in exercises("03")]
    assert names == ["additive_hook", "clamp_hook", "mean_difference_vector", "bridge_rate", "repetition_rate",
                     "completion_perplexity"]
    assert names == list(MUTANTS) == list(REFERENCE)
    assert [e.number for e in exercises("03")] == list(range(1, 7))
    assert all(len(m) >= 2 for m in MUTANTS.values())


test_check_passes_on_reference, test_check_fails_on_stub, test_check_fails_on_mutant_with_diagnostic = (
    contract_tests(check, REFERENCE, MUTANTS, needs_model=NEEDS_MODEL)
)


def test_check_rejects_non_callables_and_crashing_code():
    with pytest.raises(CheckFailure, match="expected a function"):
        check.repetition_rate([1, 2, 3])

    def crashes(tokens, n=3):
        raise KeyError("tokens")

    with pytest.raises(CheckFailure, match="KeyError"):
        check.repetition_rate(crashes)

    with pytest.raises(CheckFailure, match="return the hook itself"):
        check.additive_hook(lambda direction, coefficient: None)

    with pytest.raises(CheckFailure, match="should return a function"):
        check.additive_hook(lambda direction, coefficient: coefficient * direction)


def test_checks_accept_equivalent_formulations(capsys):
    """Correct answers written differently (in-place edits returning None, add_, the closed form of the
    clamp, per-text loops, Counter, a tensor result) pass."""

    def additive_in_place(direction, coefficient):
        def hook(act, hook=None):
            act += coefficient * direction  # TransformerLens keeps an in-place edit when the hook returns None

        return hook

    def additive_add_(direction, coefficient):
        def hook(act, hook):
            return act.add_(direction, alpha=coefficient)

        return hook

    def clamp_closed_form(sae, latent, value):
        def hook(act, hook=None):
            z = sae.encode(act)[..., latent : latent + 1]
            return act + (value - z) * sae.W_dec[latent]

        return hook

    def clamp_in_place(sae, latent, value):
        def hook(act, hook=None):
            z = sae.encode(act)
            error = act - sae.decode(z)
            z[..., latent] = value
            act[:] = sae.decode(z) + error

        return hook

    def mean_diff_loops(concept, concept_mask, neutral, neutral_mask):
        def mean_of_means(x, mask):
            return torch.stack([x[i][mask[i]].mean(0) for i in range(len(x))]).mean(0)

        return mean_of_means(concept, concept_mask) - mean_of_means(neutral, neutral_mask)

    def repetition_counter(tokens, n=3):
        from collections import Counter

        counts = Counter(zip(*(tokens[i:] for i in range(n))))
        total = sum(counts.values())
        return torch.tensor(0.0) if total == 0 else torch.tensor(1 - len(counts) / total)

    assert check.additive_hook(additive_in_place)
    assert check.additive_hook(additive_add_)
    assert check.clamp_hook(clamp_closed_form)
    assert check.clamp_hook(clamp_in_place)
    assert check.mean_difference_vector(mean_diff_loops)
    assert check.repetition_rate(repetition_counter)
    assert capsys.readouterr().out.count("passed") == 6


def test_completion_perplexity_accepts_an_independent_implementation(model, capsys):
    """A learner's own scoring loop (sum of log-probs over the completion span, then exp) passes."""

    def perplexity_loop(model, prompt, completion):
        logprobs, ids, P, C = _token_nll(model, prompt, completion)
        total = sum(-logprobs[t - 1, ids[t]].item() for t in range(P, P + C))
        return math.exp(total / C)

    assert check.completion_perplexity(perplexity_loop)
    assert "passed" in capsys.readouterr().out


def test_bridge_rate_questions_do_their_job(model):
    """The check's steering is strong enough that the rate mistakes are distinguishable (every steered
    answer mentions the bridge, at least one several times, and the unsteered answers to the same
    questions do not), and its unsteered questions stop early, which keeps the check fast."""
    steered = check._bridge_answers(check.STEERED_QUESTIONS, True)
    assert all(steering.mentions_bridge(a) for a in steered)
    assert any(len(steering.BRIDGE_PATTERN.findall(a)) > 1 for a in steered)
    assert not any(steering.mentions_bridge(a) for a in check._bridge_answers(check.STEERED_QUESTIONS, False))
    plain = check._bridge_answers(check.PLAIN_QUESTIONS, False)
    assert not any(steering.mentions_bridge(a) for a in plain)
    assert max(len(model.tokenizer(a, add_special_tokens=False).input_ids) for a in plain) < 30
