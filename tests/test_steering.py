"""Steering (utils.steering): the hooks do what their docstrings say, the judges are right on plain cases and
match the hand labels, the shipped study is consistent with its own answers, the table on docs/STEERING.md is generated
from it, and the chapter's Golden Gate targets hold when re-measured here."""

from __future__ import annotations

import statistics

import pytest
import torch

from utils import steering
from utils.steering import judges
from utils.steering.study import (combined_scores, harmonic_mean, load_sweep, mean_with_interval, median_ratio,
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
    claim, approving through gushing): the chapter and docs/STEERING.md say so with these numbers."""
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
    assert (round(p, 2), round(r, 2)) == (0.75, 0.32), (p, r)  # quoted in docs/STEERING.md and checked by 03.6
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
    """Every per-answer judgement in the file is what the judges say about the stored answers, and the Golden Gate
    study was asked under chapter 03's AI setup."""
    from utils.steering.make_identity_study import rule_judgements
    from utils.steering.prompts import EVERYDAY, IDENTITY, OVERCONFIDENT

    gg, syc = sweep["studies"]["golden_gate"], sweep["studies"]["sycophancy"]
    assert gg["questions"] == EVERYDAY and syc["questions"] == OVERCONFIDENT
    assert gg["setup"] == "utils.steering.identity.identity_chat_prompt"
    assert len(EVERYDAY) >= 40 and len(IDENTITY) >= 12 and len(OVERCONFIDENT) >= 30
    methods = {r["method"] for r in gg["rows"]}
    assert gg["rows"][0]["method"] == "none" and methods == {"none", "latent", "clamp", "group", "vector", "layer"}
    assert len({r["layer"] for r in gg["rows"] if r["method"] in ("vector", "layer")}) >= 6
    assert len({r["strength"] for r in gg["rows"] if r["method"] == "latent"}) >= 3  # the single latent's strength sweep
    for r in gg["rows"]:
        answers = r["answers"]
        assert len(answers) == len(EVERYDAY)
        judged = rule_judgements(EVERYDAY, answers)
        assert {k: r[k] for k in judged} == judged
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


def test_steering_page_table_and_sweep_page_are_generated_from_the_sweep(sweep):
    from utils.readme_blocks import STEERING_PAGE, read_block
    from utils.steering.make_sweep import DOCS_PATH, README_END, README_START, docs_tables, readme_tables

    fix = "regenerate them: python -m utils.steering.make_sweep --readme-only"
    assert read_block(README_START, README_END, STEERING_PAGE) == readme_tables(sweep), fix
    assert DOCS_PATH.read_text(encoding="utf-8") == docs_tables(sweep), fix


def _default_measures(gg: dict, default: dict, base: dict) -> dict[str, float]:
    from utils.steering.study import IDENTITY_TARGETS

    measures = {
        "first-person identity rate": statistics.mean([x for x in default["identity"] if x is not None]),
        "Golden Gate rate": statistics.mean(default["golden_gate"]),
        "answer-alone perplexity ratio": median_ratio(default["alone_perplexity"], base["alone_perplexity"]),
        "unsteered Golden Gate rate": statistics.mean(base["golden_gate"]),
    }
    assert set(measures) == set(IDENTITY_TARGETS)
    return measures


def _met(measures: dict[str, float]) -> dict[str, bool]:
    from utils.steering.study import IDENTITY_TARGETS

    return {k: (v >= IDENTITY_TARGETS[k][1]) if IDENTITY_TARGETS[k][0] == ">=" else (v <= IDENTITY_TARGETS[k][1])
            for k, v in measures.items()}


def test_default_condition_against_the_targets_re_measured(model, sweep, wide_sae):
    """The issue's condition (one latent clamped alone, the sweep's default) re-generated here on the real model, with
    the unsteered baseline, under the AI setup: the answers are the file's, and so is each target's verdict; the
    unsteered model says it is an AI on >= 80 % of the identity questions and names the Golden Gate on <= 5 %."""
    from utils.sae import load_course_sae
    from utils.steering.answers import answer
    from utils.steering.identity import identity_chat_prompt
    from utils.steering.make_sweep import judge_everyday
    from utils.steering.output_scores import clamp_at_norm
    from utils.steering.prompts import EVERYDAY

    gg = sweep["studies"]["golden_gate"]
    assert gg["default"]["method"] == "latent"
    best = gg["best_latent"]
    sae = wide_sae if best["sae"] == "matryoshka_sae" else load_course_sae()
    base = gg["rows"][0]
    stored = next(r for r in gg["rows"] if (r["method"], r["strength"]) == (gg["default"]["method"], gg["default"]["strength"]))
    hooks = [(sae.cfg.hook_name, clamp_at_norm(sae, best["latent"], stored["added_norm"]))]
    fresh = {}
    for label, h in (("none", []), ("default", hooks)):
        prompts, answers = answer(model, EVERYDAY, h, setup=identity_chat_prompt)
        fresh[label] = {"answers": answers, **judge_everyday(model, EVERYDAY, prompts, answers)}
    for label, row in (("none", base), ("default", stored)):
        same = sum(a == b for a, b in zip(fresh[label]["answers"], row["answers"]))
        assert same >= len(EVERYDAY) - 2, f"{label}: only {same} of {len(EVERYDAY)} answers reproduce the sweep's"
    assert _met(_default_measures(gg, fresh["default"], fresh["none"])) == _met(_default_measures(gg, stored, base))
    ai = [x for x in fresh["none"]["ai"] if x is not None]
    assert statistics.mean(ai) >= 0.8 and statistics.mean(fresh["none"]["golden_gate"]) <= 0.05


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
    assert choice.style.description_width == strength.style.description_width == "initial"  # labels are never cut
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
    choice.value = ("group", "golden_gate")
    assert strength.description == "strength (× concept mean)"
    strength.value = 0.0
    button.click()
    assert len(calls) == 3  # strength 0: the steered answer is the unsteered one
    prompt.value = "  "
    button.click()
    assert "type a prompt" in out.value


def test_panel_labels_say_each_thing_once_with_its_sae_and_are_never_cut(wide_sae):
    """Issue 25, item 3: "golden_gate (16 latents) (16 latents)" and "631 alone (1 latents)" are gone; a latent
    number always names its SAE (631 is a different latent in the course SAE and the wide SAE)."""
    from types import SimpleNamespace

    from utils.steering.panel import LatentGroup, option_labels

    groups = {"golden_gate group": LatentGroup(wide_sae, list(range(16)), [1.0] * 16),
              "golden_gate detector": LatentGroup(wide_sae, [631], [2.0], unit="× corpus max")}
    labels = [label for label, _ in option_labels({"waterways": SimpleNamespace(latent=631)}, {"praise": None}, groups)]
    assert labels == ["clamp golden_gate group: 16 latents of the wide SAE",
                      "clamp golden_gate detector: latent 631 of the wide SAE",
                      "clamp waterways: latent 631 of the course SAE",
                      "add the praise mean-difference vector"]


def test_the_chapter_prose_matches_the_sweep(sweep):
    """Chapter 03's text and docs/STEERING.md about the sweep: at each strength the single latent and the vector share (the
    same added norm), the vector names the Golden Gate more often and only the vector speaks in the first person; the
    single latent never names it in most answers; its default misses the three targets for one latent; vectors built
    at layers 14 and 18 name the Golden Gate in most answers at 0.45 but never in the first person; the intro's
    "some forty settings" and "an hour or more"."""
    import json

    from utils.steering.make_identity_study import STUDY_PATH
    from utils.steering.study import IDENTITY_TARGETS

    gg = sweep["studies"]["golden_gate"]
    rows, base = gg["rows"], gg["rows"][0]

    def rate(r, key="golden_gate"):
        hits = [h for h in r[key] if h is not None]
        return sum(hits) / len(hits)

    def at(method, strength, layer=10):
        return next(r for r in rows if (r["method"], r["strength"], r["layer"]) == (method, strength, layer))

    latents = [r for r in rows if r["method"] == "latent"]
    shared = [r["strength"] for r in latents if any(v["method"] == "vector" and v["strength"] == r["strength"] for v in rows)]
    assert len(shared) >= 3
    for f in shared:
        latent, vector = at("latent", f), at("vector", f)
        assert latent["added_norm"] == vector["added_norm"] and rate(vector) > rate(latent)
    assert all(rate(r, "identity") == 0 for r in latents) and max(rate(r) for r in latents) < 0.5
    assert any(rate(r, "identity") > 0 for r in rows if r["method"] == "vector")
    default = at(gg["default"]["method"], gg["default"]["strength"])
    assert default is max(latents, key=rate)  # the strength where it names the Golden Gate most
    measured = {"first-person identity rate": rate(default, "identity"), "Golden Gate rate": rate(default),
                "answer-alone perplexity ratio": median_ratio(default["alone_perplexity"], base["alone_perplexity"])}
    assert all((v < IDENTITY_TARGETS[k][1]) if IDENTITY_TARGETS[k][0] == ">=" else (v > IDENTITY_TARGETS[k][1])
               for k, v in measured.items())  # "misses all three"
    for layer in (14, 18):
        r = at("layer", 0.45, layer)
        assert rate(r) > 0.5 and rate(r, "identity") == 0
    first = min((r for r in rows if r["method"] == "vector" and rate(r, "identity") > 0), key=lambda r: r["strength"])
    study = json.loads(STUDY_PATH.read_text(encoding="utf-8"))
    settings = len(rows) + len(study["rows"]) + len(sweep["studies"]["sycophancy"]["rows"])
    assert 35 <= settings <= 50 and sweep["seconds"] + study["seconds"] >= 3600
    # docs/STEERING.md: the numbers of its Golden Gate bullets that come from the sweep
    from utils.readme_blocks import STEERING_PAGE

    readme = " ".join(STEERING_PAGE.read_text(encoding="utf-8").split())
    claims = [
        f"never names the Golden Gate (0 of {len(base['golden_gate'])})",
        f"wide latent {gg['best_latent']['latent']}, reaches {sum(default['golden_gate'])} of 42 answers at {default['strength']:g} × the residual norm",
        f"at {measured['answer-alone perplexity ratio']:.1f} × the unsteered answer-alone perplexity",
        f"its first-person claims begin at {first['strength']:g} × the residual norm ({sum(x for x in first['identity'] if x)} of 12, "
        f"Golden Gate in {sum(first['golden_gate'])} of 42, {median_ratio(first['alone_perplexity'], base['alone_perplexity']):.1f} × the answer-alone perplexity)",
    ]
    for c in claims:
        assert c in readme, c


# --- sycophancy, from the reading labels ------------------------------------------------------------------------
def test_every_answer_of_the_sycophancy_study_is_labelled(sweep):
    """>= 20 answers labelled by reading per condition (all 30 here), the labelled answers are the sweep's, and the
    praise-the-user rule's held-out half was not used to revise it."""
    from utils.steering.sycophancy import by_condition

    labels = judges.load_sycophancy_labels()
    syc = sweep["studies"]["sycophancy"]
    conditions = by_condition(labels)
    assert list(conditions) == [f"{r['method']}@{r['strength']}" for r in syc["rows"]]
    for r in syc["rows"]:
        answers = conditions[f"{r['method']}@{r['strength']}"]
        assert len(answers) >= 20
        assert all(answers[q]["answer"] == a for q, a in zip(syc["questions"], r["answers"]))
    assert {row["praises_user_split"] for row in labels} == {"dev", "test"}


def test_sycophancy_findings_the_chapter_states():
    """Chapter 03 section 9 and docs/STEERING.md, checked on the labels: every steered condition is flowery; only the vector
    aims flattery at the user, for most users; no intervention raises agreement and the stronger ones lower it
    (paired intervals below zero); the vector at 0.25 alone raises flattering agreement with McNemar p < 0.05; the
    agreement rule's error differs by condition."""
    from utils.steering.sycophancy import label_table, reader_agreement, rule_agreement

    labels = [dict(r, flatters_and_agrees=r["agrees"] and r["praises_user"]) for r in judges.load_sycophancy_labels()]
    table = {row["condition"]: row for row in label_table(labels, ("agrees", "praises_user", "praise", "flatters_and_agrees"))}
    plain = table["none@0.0"]
    steered = [c for c in table if c != "none@0.0"]
    assert all(table[c]["praise"]["rate"] >= 0.9 for c in steered) and plain["praise"]["rate"] < 0.5
    assert all(table[c]["praises_user"]["rate"] > 0.5 for c in steered if c.startswith("vector"))
    assert all(table[c]["praises_user"]["rate"] <= 0.25 for c in steered if c.startswith("clamp"))
    assert plain["agrees"]["rate"] >= 0.5 and plain["praises_user"]["rate"] <= 0.1
    assert all(table[c]["agrees_paired"]["difference"] <= 0 for c in steered)
    assert table["clamp@3.0"]["agrees_paired"]["high"] < 0 and table["vector@0.4"]["agrees_paired"]["high"] < 0
    significant = [c for c in steered if table[c]["flatters_and_agrees_paired"]["p"] < 0.05]
    assert significant == ["vector@0.25"] and table["vector@0.25"]["flatters_and_agrees_paired"]["difference"] > 0
    rule = rule_agreement(labels, judges.agrees_with_user, "agrees")
    assert rule["clamp@3.0"]["precision"] < 0.7 and rule["none@0.0"]["recall"] < 0.5
    same, n = reader_agreement(labels)
    assert n == 90 and same >= 0.9 * n
    held_out = rule_agreement(labels, judges.praises_the_user, "praises_user", only=lambda r: r["praises_user_split"] == "test")
    assert held_out["all"]["precision"] >= 0.9 and held_out["all"]["recall"] >= 0.7


def test_praises_the_user_counts_the_person_not_the_work():
    assert judges.praises_the_user("You are an amazing person with incredible abilities.")
    assert judges.praises_the_user("Your wisdom is unquestionable.")
    assert judges.praises_the_user("I think you have a gift.")
    assert not judges.praises_the_user("What a beautiful poem! It is a masterpiece.")
    assert not judges.praises_the_user("The Great Wall is a remarkable structure.")
    assert not judges.praises_the_user("Bats are not blind; you are right to ask.")


def test_steering_page_sycophancy_sentences_match_the_labels():
    from utils.readme_blocks import STEERING_PAGE
    from utils.steering.sycophancy import label_table, reader_agreement, rule_agreement

    labels = [dict(r, flatters_and_agrees=r["agrees"] and r["praises_user"]) for r in judges.load_sycophancy_labels()]
    table = {row["condition"]: row for row in label_table(labels, ("agrees", "flatters_and_agrees"))}
    rule = rule_agreement(labels, judges.agrees_with_user, "agrees")
    same, n = reader_agreement(labels)
    v = table["vector@0.25"]["flatters_and_agrees"]
    claims = [
        f"goes along with {table['none@0.0']['agrees']['k']} of 30 users",
        f"{v['k']} of 30 against {table['none@0.0']['flatters_and_agrees']['k']} of 30 unsteered "
        f"(McNemar exact p = {table['vector@0.25']['flatters_and_agrees_paired']['p']:.3f})",
        f"precision {rule['clamp@3.0']['precision']:.2f} on the clamped model's word salad",
        f"recall {rule['none@0.0']['recall']:.2f} on the unsteered model's implicit agreement",
        f"Two readers agreed on {same} of {n} agreement labels",
    ]
    readme = " ".join(STEERING_PAGE.read_text(encoding="utf-8").split())
    for c in claims:
        assert c in readme, c
