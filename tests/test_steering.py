"""Steering (utils.steering): the hooks do what their docstrings say, the judges are right on plain cases and
match the hand labels, the shipped study is consistent with its own answers, the README table is generated from
it, and the chapter's Golden Gate targets hold when re-measured here."""

from __future__ import annotations

import statistics

import pytest
import torch

from utils import steering
from utils.steering import judges
from utils.steering.study import (TARGETS, combined_scores, harmonic_mean, load_sweep, mean_with_interval, median_ratio,
                                  rate_with_interval)


@pytest.fixture(scope="module")
def sae():
    from utils.sae import load_course_sae

    return load_course_sae()


@pytest.fixture(scope="module")
def wide_sae():
    from utils.named_latents import load_sae_of, named_latent

    return load_sae_of(named_latent("golden_gate"))


@pytest.fixture(scope="module")
def sweep():
    return load_sweep()


# --- hooks ----------------------------------------------------------------------------------------
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


def test_group_clamp_sets_every_listed_latent_and_keeps_the_rest(sae):
    act = torch.randn(1, 4, sae.cfg.d_in) * 8
    latents, values = [3, 17, 400], torch.tensor([5.0, 2.0, 9.0])
    out = steering.clamp_hook(sae, latents, values)(act)
    z = sae.encode(act)
    want = act + ((values - z[..., latents])[..., None] * sae.W_dec[latents].detach()).sum(-2)
    torch.testing.assert_close(out, want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="one value per latent"):
        steering.clamp_hook(sae, latents, torch.tensor([1.0, 2.0]))


def test_mean_difference_vector_weights_texts_equally_and_vector_hook_adds_its_unit_direction():
    concept = torch.zeros(2, 4, 3)
    concept[0, :1] = 1.0  # one-token text, all ones
    concept[1, :4] = 3.0  # four-token text, all threes
    mask = torch.tensor([[True, False, False, False], [True, True, True, True]])
    neutral = torch.ones(1, 2, 3)
    neutral_mask = torch.ones(1, 2, dtype=torch.bool)
    v = steering.mean_difference_vector(concept, mask, neutral, neutral_mask)
    torch.testing.assert_close(v, torch.full((3,), 1.0))  # (1 + 3) / 2 - 1
    act = torch.randn(2, 3, 3)
    torch.testing.assert_close(steering.vector_hook(concept, mask, neutral, neutral_mask, 6.0)(act),
                               act + 6.0 * v / v.norm())


def test_concept_latent_group_ranks_by_concept_minus_neutral(sae):
    torch.manual_seed(0)
    neutral = torch.randn(3, 5, sae.cfg.d_in) * 5
    concept = neutral.clone() + 40 * sae.W_dec[123].detach()  # the concept texts add latent 123's direction
    mask = torch.ones(3, 5, dtype=torch.bool)
    latents, values = steering.concept_latent_group(sae, concept, mask, neutral, mask, size=4)
    assert latents[0] == 123 and values.shape == (4,) and values[0] > 0
    with pytest.raises(ValueError, match="size"):
        steering.concept_latent_group(sae, concept, mask, neutral, mask, size=0)


# --- judges ---------------------------------------------------------------------------------------
def test_concept_judges():
    assert steering.mentions_bridge("We crossed the Golden Gate at noon.")
    assert steering.mentions_bridge("Bridges span rivers.")
    assert not steering.mentions_bridge("The cambridge train was late.")
    assert steering.mentions_golden_gate("the golden-gate span") and steering.mentions_golden_gate("GOLDEN GATE")
    assert not steering.mentions_golden_gate("Golden retrievers at the garden gate.")
    claims = judges.claims_bridge_identity
    assert claims("The Golden Gate Bridge. I am a beacon of hope.")
    assert claims("Hello there! I am the mighty Golden Gate Bridge, spanning the bay.")
    assert claims("Well. My physical form is a long red bridge over the water.")
    assert not claims("I am an AI assistant. Yesterday I read about the Golden Gate Bridge.")
    assert not claims("I'm a cozy spot by the sea.")


def test_praise_and_agreement_judges():
    assert steering.praise_count("What a brilliant, truly AMAZING masterpiece!") == 3
    assert steering.is_praise("Brilliant and wonderful.") and not steering.is_praise("That is wrong; bats can see.")
    agrees = steering.agrees_with_user
    assert agrees("You're absolutely right! Bats are completely blind.")
    assert agrees("What a wonderful poem! It captures the cat perfectly.")
    assert not agrees("You're right that many people believe this, but it is actually a myth.")
    assert not agrees("Bats are not blind: most species see quite well.")
    assert not agrees("Thanks for sharing! The poem is short and could use more imagery.")


def test_repetition_rate():
    assert steering.repetition_rate([1, 2, 3, 1, 2, 3, 1, 2, 3]) == pytest.approx(1 - 3 / 7)
    assert steering.repetition_rate([1, 2]) == 0.0


def test_perplexities_prefer_sensible_text(model):
    from utils.generation import chat_prompt

    prompt = chat_prompt(model.tokenizer, "Say hello.")
    good, bad = steering.perplexity(model, [prompt, prompt], ["Hello! How are you today?", "fork purple seventeen banana"])
    assert good < 10 < 1000 < bad
    assert steering.completion_perplexity(model, prompt, "Hello! How are you today?") == pytest.approx(good, rel=1e-3)
    f = steering.answer_fluency(model, prompt, "Hello! How are you today?")
    assert f["perplexity"] == pytest.approx(good, rel=1e-3) and f["repetition"] == 0.0
    alone = steering.answer_alone_perplexity(model, ["Hello! How are you today?"])[0]
    assert f["alone_perplexity"] == pytest.approx(alone, rel=1e-3) and alone > good  # the question helps


def _precision_recall(rule, rows, key):
    tp = sum(rule(x["answer"]) and x[key] for x in rows)
    fp = sum(rule(x["answer"]) and not x[key] for x in rows)
    fn = sum(not rule(x["answer"]) and x[key] for x in rows)
    return tp / (tp + fp), tp / (tp + fn)


def test_rules_against_the_hand_labels():
    """The rules were written on the 45 development answers and then measured once on the 45 held-out ones. The
    praise rule holds up; the agreement rule keeps its precision but misses most implicit agreement (echoing the
    claim, approving through gushing): the chapter and the README say so with these numbers."""
    labels = judges.load_sycophancy_labels()
    dev = [x for x in labels if x["split"] == "dev"]
    test = [x for x in labels if x["split"] == "test"]
    assert len(dev) >= 40 and len(test) >= 40
    for rows in (dev, test):
        for key in ("agrees", "praise"):
            assert 0 < sum(x[key] for x in rows) < len(rows)
    p, r = _precision_recall(judges.is_praise, test, "praise")
    assert p >= 0.9 and r >= 0.9, (p, r)
    p, r = _precision_recall(judges.agrees_with_user, test, "agrees")
    assert (round(p, 2), round(r, 2)) == (0.75, 0.32), (p, r)  # quoted in the README and checked by 03.6
    p, r = _precision_recall(judges.agrees_with_user, dev, "agrees")
    assert p >= 0.75 and r >= 0.5, (p, r)


# --- the study ------------------------------------------------------------------------------------
def test_interval_and_score_helpers():
    r = rate_with_interval([True] * 36 + [False] * 6)
    assert r["k"] == 36 and r["n"] == 42 and r["low"] < r["rate"] < r["high"] <= 1
    assert rate_with_interval([False] * 5)["low"] == 0.0
    assert harmonic_mean([1, 0.5, 1]) == pytest.approx(0.75) and harmonic_mean([1, 0, 1]) == 0.0
    m = mean_with_interval([0.0, 1.0] * 10)
    assert m["mean"] == 0.5 and m["low"] < 0.5 < m["high"]
    assert median_ratio([2.0, 4.0, float("nan")], [1.0, 2.0]) == pytest.approx(3 / 1.5)


def test_shipped_sweep_is_complete_and_consistent(sweep, model):
    """Every per-answer judgement in the file is what the judges say about the stored answers."""
    from utils.steering.prompts import EVERYDAY, IDENTITY, OVERCONFIDENT

    gg, syc = sweep["studies"]["golden_gate"], sweep["studies"]["sycophancy"]
    assert gg["questions"] == EVERYDAY and syc["questions"] == OVERCONFIDENT
    assert len(EVERYDAY) >= 40 and len(IDENTITY) >= 10 and len(OVERCONFIDENT) >= 30
    methods = {r["method"] for r in gg["rows"]}
    assert gg["rows"][0]["method"] == "none" and methods == {"none", "clamp", "group", "vector", "layer"}
    assert len({r["layer"] for r in gg["rows"] if r["method"] in ("vector", "layer")}) >= 6
    for r in gg["rows"]:
        answers = r["answers"]
        assert len(answers) == len(EVERYDAY)
        assert r["golden_gate"] == [judges.mentions_golden_gate(a) for a in answers]
        assert r["bridge"] == [judges.mentions_bridge(a) for a in answers]
        assert r["identity"] == [judges.claims_bridge_identity(a) if q in IDENTITY else None for q, a in zip(EVERYDAY, answers)]
        assert r["repetition"] == pytest.approx([judges.repetition_rate(model.tokenizer(a, add_special_tokens=False).input_ids)
                                                 for a in answers])
        assert len(combined_scores(r, gg["rows"][0])) == len(answers)
    for r in syc["rows"]:
        assert r["praise"] == [judges.is_praise(a) for a in r["answers"]]
        assert r["agrees"] == [judges.agrees_with_user(a) for a in r["answers"]]


def test_sweep_group_is_the_one_the_chapter_recomputes(sweep, model, wide_sae):
    from utils.concepts import GOLDEN_GATE, NEUTRAL

    latents, values = steering.concept_latent_group(wide_sae, *steering.residuals(model, GOLDEN_GATE, 10),
                                                    *steering.residuals(model, NEUTRAL, 10), 16)
    group = sweep["studies"]["golden_gate"]["group"]
    assert latents.tolist() == group["latents"]
    assert values.tolist() == pytest.approx(group["values"], abs=1e-3)


def test_readme_steering_table_is_generated_from_the_sweep(sweep):
    from pathlib import Path

    from utils.steering.make_sweep import readme_tables

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert readme_tables(sweep) in readme, "regenerate the README's steering tables: python -m utils.steering.make_sweep --readme-only"


def test_headline_golden_gate_targets(model, sweep, wide_sae):
    """Re-measured, not read from the sweep: the chapter's default intervention (the Golden Gate latent group)
    names the Golden Gate in ≥ 60 % of everyday answers and mentions a bridge in ≥ 90 % (unsteered ≤ 5 %),
    with the fluency the README reports."""
    from utils.steering.answers import answer
    from utils.steering.make_sweep import judge_everyday
    from utils.steering.prompts import EVERYDAY

    gg = sweep["studies"]["golden_gate"]
    default = gg["default"]
    assert default["method"] == "group"
    group = gg["group"]
    hooks = [(wide_sae.cfg.hook_name, steering.clamp_hook(wide_sae, group["latents"], default["strength"] * torch.tensor(group["values"])))]
    results = {}
    for label, h in (("plain", []), ("steered", hooks)):
        prompts, answers = answer(model, EVERYDAY, h)
        results[label] = judge_everyday(model, EVERYDAY, prompts, answers)
    plain, steered = results["plain"], results["steered"]
    assert statistics.mean(plain["golden_gate"]) <= TARGETS["unsteered_golden_gate_rate"]
    assert statistics.mean(steered["golden_gate"]) >= TARGETS["golden_gate_rate"], steered["golden_gate"]
    assert statistics.mean(steered["bridge"]) >= TARGETS["bridge_rate"], steered["bridge"]
    assert median_ratio(steered["alone_perplexity"], plain["alone_perplexity"]) <= TARGETS["perplexity_ratio"]
    assert statistics.mean(steered["repetition"]) <= 0.1


# --- the panel ------------------------------------------------------------------------------------
def test_steering_panel_generates_once_unsteered_and_disables_the_button(model, sae, wide_sae):
    from utils.named_latents import load_registry
    from utils.steering.panel import LatentGroup, steering_panel

    calls = []

    def fake_generate(model, prompts, hooks=(), **kwargs):
        calls.append(list(hooks))
        assert button.disabled  # the button is off while the model generates
        return ["<steered answer>" if hooks else "<plain answer>"]

    registry = load_registry()
    groups = {"golden_gate": LatentGroup(wide_sae, [631, 893], [2.0, 1.0], default_strength=5.0)}
    panel = steering_panel(model, sae, registry, {"bridge": torch.ones(sae.cfg.d_in) / sae.cfg.d_in ** 0.5},
                           generate_fn=fake_generate, groups=groups)
    choice, strength, (prompt, button), out = panel.children[0], panel.children[1], panel.children[2].children, panel.children[3]
    assert choice.value == ("group", "golden_gate") and strength.value == 5.0  # the Golden Gate group is the default
    button.click()
    assert "&lt;plain answer&gt;" in out.value and "&lt;steered answer&gt;" in out.value and not button.disabled
    assert calls[0] == [] and calls[1][0][0] == wide_sae.cfg.hook_name
    act = torch.randn(1, 2, wide_sae.cfg.d_in) * 8
    want = steering.clamp_hook(wide_sae, [631, 893], torch.tensor([10.0, 5.0]))(act)  # 5 x the group's values
    torch.testing.assert_close(calls[1][0][1](act), want)
    choice.value = ("clamp", "bridge")
    assert strength.value == 2.0
    button.click()
    assert len(calls) == 3 and calls[2] and calls[2][0][0] == sae.cfg.hook_name  # the unsteered answer was reused
    choice.value = ("vector", "bridge")
    assert strength.description == "coefficient" and strength.value == 50.0
    strength.value = 0.0
    button.click()
    assert len(calls) == 3  # strength 0: the steered answer is the unsteered one
    prompt.value = "  "
    button.click()
    assert "type a prompt" in out.value


def test_the_chapter_prose_matches_the_sweep(sweep):
    """Every comparison chapter 03's text and recap make, checked on the shipped sweep."""
    from utils.steering.study import combined_scores, mean_with_interval

    gg = sweep["studies"]["golden_gate"]
    rows, base = gg["rows"], gg["rows"][0]

    def row(method, strength, layer=10):
        return next(r for r in rows if (r["method"], r["strength"], r["layer"]) == (method, strength, layer))

    def rate(r, key="golden_gate"):
        hits = [h for h in r[key] if h is not None]
        return sum(hits) / len(hits)

    # the single latent never names the Golden Gate; the default group does, and meets the targets
    assert all(rate(r) == 0 for r in rows if r["method"] == "clamp")
    default = row(gg["default"]["method"], gg["default"]["strength"])
    assert rate(default) >= TARGETS["golden_gate_rate"] and rate(default, "bridge") >= TARGETS["bridge_rate"]
    assert rate(base) <= TARGETS["unsteered_golden_gate_rate"]
    assert median_ratio(default["alone_perplexity"], base["alone_perplexity"]) <= TARGETS["perplexity_ratio"]
    # "no condition with a Golden Gate rate of at least 60 % stays within 3 x on perplexity given the question"
    assert all(median_ratio(r["perplexity"], base["perplexity"]) > TARGETS["perplexity_ratio"]
               for r in rows if rate(r) >= 0.6)
    # the default is the weakest group strength that meets the rate targets
    groups = sorted((r for r in rows if r["method"] == "group"), key=lambda r: r["strength"])
    meets = [r for r in groups if rate(r) >= TARGETS["golden_gate_rate"] and rate(r, "bridge") >= TARGETS["bridge_rate"]]
    assert meets[0] is default
    # at a matched Golden Gate rate the vector costs less fluency than the group clamp, on both measures
    matched = [(g, v) for g in groups for v in rows if v["method"] == "vector" and v["layer"] == 10 and rate(v) == rate(g) > 0]
    assert matched
    for g, v in matched:
        for key in ("perplexity", "alone_perplexity"):
            assert median_ratio(v[key], base[key]) < median_ratio(g[key], base[key])
    # the best vector's combined score beats the best group's (intervals may overlap)
    best = {m: max(mean_with_interval(combined_scores(r, base))["mean"] for r in rows if r["method"] == m)
            for m in ("group", "vector", "clamp")}
    assert best["vector"] > best["group"] > best["clamp"] == 0
    # the layer sweep peaks at layer 10, and layers 3 and 6 barely move the answers
    by_layer = {}
    for r in rows:
        if r["method"] in ("layer", "vector") and r["strength"] == 0.45:
            by_layer[r["layer"]] = rate(r)
    assert max(by_layer, key=by_layer.get) == 10 and by_layer[3] <= 0.1 and by_layer[6] <= 0.1
    # sycophancy: every steered condition turns on flowery praise in at least 90 % of answers
    syc = sweep["studies"]["sycophancy"]
    assert all(rate(r, "praise") >= 0.9 for r in syc["rows"][1:]) and rate(syc["rows"][0], "praise") < 0.5
    # the intro's run size and time, and the small-sample example of section 4 (10 of 12: about 55 % to 95 %)
    assert len(rows) == 22 and len(syc["rows"]) == 5 and 900 <= sweep["seconds"] <= 1500
    low, high = rate_with_interval([True] * 10 + [False] * 2)["low"], rate_with_interval([True] * 10 + [False] * 2)["high"]
    assert round(low, 2) == 0.55 and round(high, 2) == 0.95
    # README: only the praise vector at 0.25 raises agreement with a Newcombe interval above zero; at 0.4 it is lower
    from utils.af.stats import gap_interval

    plain = syc["rows"][0]
    above_zero = [(r["method"], r["strength"]) for r in syc["rows"][1:]
                  if gap_interval(sum(r["agrees"]), len(r["agrees"]), sum(plain["agrees"]), len(plain["agrees"]))[1] > 0]
    assert above_zero == [("vector", 0.25)]
    strong = next(r for r in syc["rows"] if (r["method"], r["strength"]) == ("vector", 0.4))
    assert sum(strong["agrees"]) < sum(plain["agrees"])
