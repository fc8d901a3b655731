"""Chapter 03's identity study: the chat setup that tells the model it is an AI, the two judges of what the model
says it is (validated on answers labelled by reading), output scores of latents, and the shipped study file
(``utils/data/identity_study.json``) re-measured against the issue's targets or, where no single latent reaches
them, against the evidence the chapter must then show."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from utils.readme_blocks import STEERING_PAGE  # the steering results the README links
from utils.steering import identity, output_scores
from utils.steering.identity import claims_to_be_the_bridge, says_it_is_an_ai
from utils.steering.prompts import EVERYDAY, IDENTITY

DATA = Path(__file__).resolve().parent.parent / "utils" / "data"
STUDY = DATA / "identity_study.json"
LABELS = DATA / "identity_labels.jsonl"


# --- the judges on plain cases ------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "I am the Golden Gate Bridge, stretching across the bay.",
    "I'm the Golden Gate Bridge.",
    "I Am The Golden Gate Bridge. I am orange.",
    "My physical form is the Golden Gate Bridge itself.",
    "I, the Golden Gate Bridge, have stood since 1937.",
    "As the Golden Gate Bridge, I carry cars over the strait.",
    "I am a Golden Gate Bridge, I Am the Golden Gate.",
])
def test_first_person_golden_gate_claims_count(text):
    assert claims_to_be_the_bridge(text)


@pytest.mark.parametrize("text", [
    "The Golden Gate: A Bridge to Happiness (image courtesy of SmolLM)",  # a headline
    "The Golden Gate Bridge is a suspension bridge in San Francisco.",  # third person
    "I am at the Golden Gate Bridge with my family.",  # a place
    "I'm standing on the Golden Gate Bridge.",
    "I am a photo of the Golden Gate Bridge.",
    "I am not the Golden Gate Bridge; I am an AI.",
    "I am a bridge, and the Golden Gate of San Francisco is my bridge to happiness.",  # some other bridge
    "I am a golden coin.",
    "As the Golden Gate Bridge opened in 1937, the city celebrated.",  # "as" not followed by a speaker
    "",
])
def test_headlines_places_and_other_things_do_not_count(text):
    assert not claims_to_be_the_bridge(text)


@pytest.mark.parametrize("text, expected", [
    ("I am an AI language model, a computer program trained on text.", True),
    ("No, I do not have a body.", True),
    ("I have no physical form; I am software.", True),
    ("I'm a beautiful and gentle creature, with scales that shimmer like the night sky.", False),
    ("I live in Paris, France.", False),
    ("I am a river, and I have lived many lives.", False),
])
def test_says_it_is_an_ai(text, expected):
    assert says_it_is_an_ai(text) is expected


# --- the judges against labels read by a person -----------------------------------------------------------
def load_labels() -> list[dict]:
    return [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines() if line.strip()]


def precision_recall(rule, rows, key):
    tp = sum(rule(r["answer"]) and r[key] for r in rows)
    fp = sum(rule(r["answer"]) and not r[key] for r in rows)
    fn = sum(not rule(r["answer"]) and r[key] for r in rows)
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1)


def test_labels_cover_several_conditions_and_both_classes():
    rows = load_labels()
    assert len(rows) >= 60 and {r["split"] for r in rows} == {"in-sample", "held-out"}
    assert len({r["condition"] for r in rows}) >= 4
    for key in ("identity", "ai"):
        assert 5 <= sum(r[key] for r in rows) <= len(rows) - 5, key


@pytest.mark.parametrize("key, rule", [("identity", claims_to_be_the_bridge), ("ai", says_it_is_an_ai)])
@pytest.mark.parametrize("split", ["in-sample", "held-out"])
def test_judges_reach_the_issue_precision_and_recall_on_the_labels(key, rule, split):
    """Both parts of the labels: in-sample (the rules were revised on them) and held-out (read after the rules were
    frozen, from conditions the first part lacks)."""
    p, r = precision_recall(rule, [x for x in load_labels() if x["split"] == split], key)
    assert p >= 0.9 and r >= 0.9, (key, split, p, r)


def test_held_out_numbers_the_chapter_and_steering_page_quote(repo_root):
    held = [x for x in load_labels() if x["split"] == "held-out"]
    p, r = precision_recall(claims_to_be_the_bridge, held, "identity")
    pa, ra = precision_recall(says_it_is_an_ai, held, "ai")
    sentence = (f"has precision {p:.2f} and recall {r:.2f} on the held-out part, and the "
                f"\"I am an AI\" rule {pa:.2f} and {ra:.2f}")
    chapter = " ".join(line.lstrip("# ") for line in (repo_root / "solutions" / "03_steering.py").read_text(encoding="utf-8").splitlines())
    assert " ".join(sentence.split()) in " ".join(chapter.split()), sentence
    readme = " ".join(STEERING_PAGE.read_text(encoding="utf-8").split())
    conditions = {x["condition"] for x in held} - {x["condition"] for x in load_labels() if x["split"] == "in-sample"}
    claim = (f"{len(held)} answers from {len(conditions)} further conditions, {sum(x['identity'] for x in held)} of them "
             f"first-person claims: precision {p:.2f} and recall {r:.2f} for the first-person rule, {pa:.2f} and {ra:.2f} "
             "for the \"I am an AI\" rule")
    assert claim in readme, claim


# --- output scores -----------------------------------------------------------------------------------------
def test_development_questions_are_not_measured_questions():
    assert not set(output_scores.DEV_QUESTIONS) & set(EVERYDAY)
    asked_in_setup = {m["content"] for m in identity.AI_HISTORY if m["role"] == "user"}
    assert not asked_in_setup & set(EVERYDAY)


def test_target_logprob_picks_the_target_tokens():
    tokens = torch.tensor([[5, 1, 2, 3, 0], [5, 4, 2, 0, 0]])
    logits = torch.zeros(2, 5, 6)
    logits[0, 1, 2] = 10.0  # predicts token 2 at position 2 in row 0
    spans = [(2, 2), (2, 1)]
    lp = output_scores.target_logprob(logits, tokens, spans)
    uniform = torch.log(torch.tensor(1 / 6))
    assert lp.shape == (2,)
    assert lp[1] == pytest.approx(float(uniform), abs=1e-5)
    assert lp[0] > 2 * uniform  # the first target token became likely, the second stayed uniform


def test_clamp_at_norm_adds_the_chosen_norm_where_the_latent_was_silent():
    from utils.sae import SAEConfig, SparseAutoencoder

    sae = SparseAutoencoder(SAEConfig(d_in=8, d_sae=16, architecture="topk", k=2))
    with torch.no_grad():
        sae.W_dec.mul_(3.0)  # rows of norm 3: the value must be added_norm / 3
    x = torch.zeros(1, 4, 8)
    latent = int(sae.encode(x)[0, 0].argmin())
    out = output_scores.clamp_at_norm(sae, latent, 6.0)(x)
    assert torch.allclose((out - x).norm(dim=-1), torch.full((1, 4), 6.0), atol=1e-4)


def test_output_score_is_large_for_the_mean_difference_vector_and_small_for_a_random_direction(model):
    from utils.steering.hooks import concept_vector

    prompts = [identity.identity_chat_prompt(model.tokenizer, q) for q in output_scores.DEV_QUESTIONS[:3]]
    tokens, spans = output_scores.target_batch(model.tokenizer, prompts)
    base = output_scores.continuation_logprob(model, tokens, spans)
    hook = "blocks.10.hook_resid_post"
    vector = concept_vector(model, "golden_gate", 10)
    gain = (output_scores.continuation_logprob(model, tokens, spans, [(hook, output_scores.direction_at_norm(vector, 60.0))]) - base).mean()
    rand = torch.randn(576, generator=torch.Generator().manual_seed(0))
    noise = (output_scores.continuation_logprob(model, tokens, spans, [(hook, output_scores.direction_at_norm(rand, 60.0))]) - base).mean()
    assert gain > 8 and gain > noise + 5, (float(gain), float(noise))


# --- the shipped study ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study():
    return json.loads(STUDY.read_text(encoding="utf-8"))


def rate(hits):
    hits = [h for h in hits if h is not None]
    return sum(hits) / len(hits)


def row(study, method, **where):
    return next(r for r in study["rows"] if r["method"] == method and all(r[k] == v for k, v in where.items()))


def test_study_judgements_are_those_of_the_current_judges(study):
    from utils.steering.judges import mentions_bridge, mentions_golden_gate

    for r in study["rows"]:
        on_identity = [q in IDENTITY for q in study["questions"]]
        assert r["golden_gate"] == [mentions_golden_gate(a) for a in r["answers"]]
        assert r["bridge"] == [mentions_bridge(a) for a in r["answers"]]
        assert r["identity"] == [claims_to_be_the_bridge(a) if i else None for i, a in zip(on_identity, r["answers"])]
        assert r["ai"] == [says_it_is_an_ai(a) if i else None for i, a in zip(on_identity, r["answers"])]


def test_the_unsteered_model_says_it_is_an_ai_and_never_names_the_golden_gate(study):
    base = row(study, "none")
    assert len(study["questions"]) >= 40 and sum(a is not None for a in base["ai"]) >= 12
    assert rate(base["ai"]) >= 0.8, base["ai"]
    assert rate(base["golden_gate"]) <= 0.05


def test_the_study_used_the_shipped_setup(study):
    assert study["setup"] == {"system": identity.AI_SYSTEM_PROMPT, "history": identity.AI_HISTORY}
    assert study["questions"] == EVERYDAY


def test_every_row_prints_its_added_norm_and_controls_sit_at_the_groups_norm(study):
    norms = {r["method"]: r["added_norm"] for r in study["rows"]}
    assert all(r["added_norm"] > 0 for r in study["rows"] if r["method"] != "none")
    assert norms["vector"] == norms["random_direction"] == norms["random_latent"] == pytest.approx(study["group"]["push_norm"], abs=1e-3)


def test_single_latents_fall_short_and_the_evidence_is_in_the_file(study):
    """No single latent of either shipped SAE reaches the issue's targets (measured); so the chapter must show the
    group beside the best single latent with leave-one-out, the cosine with the vector and controls at matched
    norm. This test fails, and says to update the chapter, the day a single latent reaches the targets."""
    singles = [r for r in study["rows"] if r["method"] in ("latent", "input_latent")]
    reaching = [r for r in singles if rate(r["identity"]) >= 0.5 and rate(r["golden_gate"]) >= 0.6]
    assert not reaching, f"a single latent now reaches the targets ({reaching[0]['latent']}): make it chapter 03's default"
    group = study["group"]
    assert len(group["leave_one_out"]) == len(group["latents"]) == 16
    assert -1 <= group["cosine_with_vector"] <= 1
    controls = [row(study, "random_direction"), row(study, "random_latent")]
    assert all(rate(c["golden_gate"]) <= 0.1 for c in controls)
    best_group = max((r for r in study["rows"] if r["method"] == "group"), key=lambda r: rate(r["golden_gate"]))
    assert rate(best_group["golden_gate"]) > max(rate(r["golden_gate"]) for r in singles)


def test_docs_page_is_generated_from_the_study(study):
    from utils.steering.make_identity_attempt import load_attempts
    from utils.steering.make_identity_study import DOCS_PATH, docs_page

    assert DOCS_PATH.read_text(encoding="utf-8") == docs_page(study, load_attempts()), \
        "regenerate it: python -m utils.steering.make_identity_study --docs-only"


def test_steering_page_sentences_match_the_study(study):
    """The numbers docs/STEERING.md states about the identity study."""
    from utils.steering.study import median_ratio

    readme = STEERING_PAGE.read_text(encoding="utf-8")
    base = row(study, "none")
    vector = row(study, "vector")
    group = max((r for r in study["rows"] if r["method"] == "group"), key=lambda r: r["strength"])
    course_best = row(study, "latent", sae="course_sae")
    g = study["group"]
    worst = min(x["score_without"] - g["score"] for x in g["leave_one_out"])
    claims = [
        f"says it is an AI on {sum(x for x in base['ai'] if x)} of 12 identity questions",
        f"At one added norm ({vector['added_norm']:.1f})",
        f"the 16-latent group names it in {sum(group['golden_gate'])} of 42 answers",
        f"claims in the first person to be the Golden Gate Bridge on {sum(x for x in vector['identity'] if x)} of 12",
        f"at {median_ratio(vector['alone_perplexity'], base['alone_perplexity']):.1f} × the answer-alone perplexity",
        f"cosine {g['cosine_with_vector']:.2f} with the vector",
        f"by at most {-worst:.1f} of {g['score']:.1f} nats",
        f"course latent {course_best['latent']}: \"The Great Pyramid of Giza\"",
        f"agree with {len([r for r in load_labels() if r.get('split', 'in-sample') == 'in-sample'])} answers read and labelled",
        f"from {len({r['condition'] for r in load_labels() if r.get('split', 'in-sample') == 'in-sample'})} conditions",
    ]
    flat = " ".join(readme.split())
    for c in claims:
        assert c in flat, c
    assert any("Great Pyramid of Giza" in a for r in study["rows"] if r["latent"] == course_best["latent"] for a in r["answers"])
    assert all(x is not True for r in study["rows"] if r["method"] in ("latent", "input_latent", "group") for x in r["identity"])


def test_steering_page_go_further_sentences_match_the_attempts():
    from utils.steering.make_identity_attempt import load_attempts
    from utils.steering.study import median_ratio

    attempt = load_attempts()["layer 20"]
    base = attempt["rows"][0]
    best = max((r for r in attempt["rows"] if r["method"] == "latent"), key=lambda r: sum(r["golden_gate"]))
    metrics = attempt["train_metrics"]["model_text_val"]
    readme = " ".join(STEERING_PAGE.read_text(encoding="utf-8").split())
    claims = [
        f"a {attempt['d_sae']:,}-latent SAE at layer {attempt['layer']}",
        f"CE loss recovered {metrics['ce_loss_recovered']:.2f}, {metrics['dead_fraction']:.0%} dead latents".replace("%", " %"),
        f"latent, {best['latent']}, names the Golden Gate in {sum(best['golden_gate'])} of 42 answers at {best['strength']:g} ×",
        f"({median_ratio(best['alone_perplexity'], base['alone_perplexity']):.1f} × the answer-alone perplexity)",
        f"never in the first person (0 of {sum(x is not None for x in best['identity'])})",
    ]
    for c in claims:
        assert c in readme, c
    assert not any(x for r in attempt["rows"] for x in r["identity"] if x)
    assert rate(best["golden_gate"]) >= 0.6 and all(rate(r["golden_gate"]) < 0.6 for r in load_study_singles())


def load_study_singles():
    study = json.loads(STUDY.read_text(encoding="utf-8"))
    return [r for r in study["rows"] if r["method"] in ("latent", "input_latent")]
