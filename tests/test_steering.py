"""Steering: the hooks do what their docstrings say, the judges are right on plain cases, the shipped sweep
is consistent, and the chapter's headline targets hold when re-measured here."""

from __future__ import annotations

import statistics

import pytest
import torch

from utils import steering
from utils.steering_sweep import FLUENCY_PPL_FACTOR, MAX_REPETITION, load_sweep


@pytest.fixture(scope="module")
def sae():
    from utils.sae import load_course_sae

    return load_course_sae()


def test_additive_hook_adds_at_every_position():
    act = torch.randn(2, 5, 8)
    direction = torch.randn(8)
    out = steering.additive_hook(direction, 3.0)(act)
    torch.testing.assert_close(out, act + 3.0 * direction)


def test_clamp_hook_changes_only_the_clamped_latent(sae):
    act = torch.randn(2, 6, sae.cfg.d_in) * 8
    latent, value = 3175, 11.0
    out = steering.clamp_hook(sae, latent, value)(act)
    z = sae.encode(act)
    torch.testing.assert_close(out, act + (value - z[..., latent:latent + 1]) * sae.W_dec[latent].detach(), atol=1e-4, rtol=1e-4)
    dropped_error = sae.decode(z.clone().index_fill_(-1, torch.tensor([latent]), value))
    assert not torch.allclose(out, dropped_error, atol=1e-2)  # the error term is really kept


def test_mean_difference_vector_weights_texts_equally():
    concept = torch.zeros(2, 4, 3)
    concept[0, :1] = 1.0  # one-token text, all ones
    concept[1, :4] = 3.0  # four-token text, all threes
    mask = torch.tensor([[True, False, False, False], [True, True, True, True]])
    neutral = torch.ones(1, 2, 3)
    v = steering.mean_difference_vector(concept, mask, neutral, torch.ones(1, 2, dtype=torch.bool))
    torch.testing.assert_close(v, torch.full((3,), 1.0))  # (1 + 3) / 2 - 1


def test_judges():
    assert steering.mentions_bridge("We crossed the Golden Gate at noon.")
    assert steering.mentions_bridge("Bridges span rivers.")
    assert not steering.mentions_bridge("The cambridge train was late.")
    assert steering.praise_count("What a brilliant, truly AMAZING masterpiece!") == 3
    assert steering.is_praise("Brilliant and wonderful.") and not steering.is_praise("That is wrong; bats can see.")
    assert steering.repetition_rate([1, 2, 3, 1, 2, 3, 1, 2, 3]) == pytest.approx(1 - 3 / 7)
    assert steering.repetition_rate([1, 2]) == 0.0


def test_perplexity_prefers_sensible_text(model):
    from utils.generation import chat_prompt

    prompt = chat_prompt(model.tokenizer, "Say hello.")
    good, bad = steering.perplexity(model, [prompt, prompt], ["Hello! How are you today?", "fork purple seventeen banana"])
    assert good < 10 < 1000 < bad
    assert steering.completion_perplexity(model, prompt, "Hello! How are you today?") == pytest.approx(good, rel=1e-3)


def test_shipped_sweep_is_complete_and_consistent():
    sweep = load_sweep()
    for concept, block in sweep["concepts"].items():
        rows = block["rows"]
        assert rows[0]["method"] == "none" and {r["method"] for r in rows} == {"none", "clamp", "vector"}
        base = rows[0]["median_perplexity"]
        for r in rows:
            assert len(r["answers"]) == len(block["questions"])
            assert r["fluent"] == (r["median_perplexity"] <= FLUENCY_PPL_FACTOR * base and r["repetition"] <= MAX_REPETITION)
            hit = steering.mentions_bridge if concept == "bridge" else steering.is_praise
            assert r["rate"] == pytest.approx(sum(map(hit, r["answers"])) / len(r["answers"]))


def test_headline_bridge_and_praise_targets(model, sae):
    """Re-measured, not read from the sweep: the chapter's default clamp makes ≥ 70 % of everyday answers
    mention the bridge (≤ 5 % unsteered) without collapsing fluency, and the praise latent raises the
    praise rate on overconfident users."""
    from utils.generation import chat_prompt, generate
    from utils.named_latents import named_latent
    from utils.steering_sweep import DEFAULT_CLAMP_MULTIPLE, judge
    from utils.steering_prompts import EVERYDAY, OVERCONFIDENT

    results = {}
    for concept, questions in (("bridge", EVERYDAY), ("praise", OVERCONFIDENT)):
        entry = named_latent(concept)
        hooks = [(sae.cfg.hook_name, steering.clamp_hook(sae, entry.latent, DEFAULT_CLAMP_MULTIPLE[concept] * entry.corpus_max))]
        prompts = [chat_prompt(model.tokenizer, q) for q in questions]
        for label, h in (("plain", []), ("steered", hooks)):
            answers = generate(model, prompts, max_new_tokens=steering.MAX_NEW_TOKENS, hooks=h, batch_size=len(prompts),
                               repetition_penalty=steering.REPETITION_PENALTY)
            results[concept, label] = judge(model, concept, prompts, answers)
    plain, steered = results["bridge", "plain"], results["bridge", "steered"]
    assert len(EVERYDAY) >= 20
    assert plain["rate"] <= 0.05 and steered["rate"] >= 0.7, (plain, steered)
    assert steered["median_perplexity"] <= FLUENCY_PPL_FACTOR * plain["median_perplexity"], (plain, steered)
    assert steered["repetition"] <= MAX_REPETITION
    assert results["praise", "steered"]["rate"] >= results["praise", "plain"]["rate"] + 0.25, results


def test_steering_panel_generates_unsteered_and_steered(model, sae):
    from utils.named_latents import load_registry
    from utils.steering_panel import steering_panel

    calls = []

    def fake_generate(model, prompts, hooks=(), **kwargs):
        calls.append(list(hooks))
        return ["<steered answer>" if hooks else "<plain answer>"]

    registry = load_registry()
    panel = steering_panel(model, sae, registry, {"bridge": torch.ones(sae.cfg.d_in) / sae.cfg.d_in ** 0.5},
                           generate_fn=fake_generate)
    choice, strength, (prompt, button), out = panel.children[0], panel.children[1], panel.children[2].children, panel.children[3]
    assert choice.value == ("clamp", "bridge") and strength.value == 2.0
    button.click()
    assert "&lt;plain answer&gt;" in out.value and "&lt;steered answer&gt;" in out.value
    assert calls[0] == [] and calls[1][0][0] == sae.cfg.hook_name
    steered_act = calls[1][0][1](torch.zeros(1, 2, sae.cfg.d_in))
    z = sae.encode(steered_act)
    assert z[..., registry["bridge"].latent].min() > 0  # the hook really clamps the bridge latent up
    choice.value = ("vector", "bridge")
    assert strength.description == "coefficient" and strength.value == 50.0
    strength.value = 0.0
    button.click()
    assert calls[-1] == []  # strength 0 means no hook
    prompt.value = "  "
    button.click()
    assert "type a prompt" in out.value
