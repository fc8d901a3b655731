"""Words in the chapters' prose that quote a measurement are pinned here, on the real model, so that the
prose cannot drift from what the cells print (each claim names its chapter and section)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from utils import tour


def _notebook_lists(source: str, *names: str) -> list[list[str]]:
    """The literal lists assigned to ``names`` in a chapter's one source, read from it so they cannot drift."""
    tree = ast.parse((Path(__file__).resolve().parents[1] / "solutions" / source).read_text(encoding="utf-8"))
    found = {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
             if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) and node.targets[0].id in names}
    return [found[name] for name in names]


# Chapter 00's training sentences for its happy - unhappy direction (section "A first direction").
HAPPY, UNHAPPY = _notebook_lists("00_setup_and_tour.py", "happy", "unhappy")


def test_ch00_residual_norm_grows_by_several_hundred(model):
    """Chapter 00, recap: "its norm grows by a factor of several hundred over 30 layers"."""
    norms = tour.residual_sweep(model, "The capital of France is", " Paris")["norm"]
    assert 200 <= float(norms[-1] / norms[0]) < 1000


def test_ch00_removing_the_sentiment_direction_shrinks_the_gap_by_roughly_half(model):
    """Chapter 00, section "A first intervention": removing the happy - unhappy direction at layer 10 "shrank the
    gap by roughly half but did not erase it", and the model "slightly prefers ' terrible' even after a glowing
    review". Same texts as the chapter."""
    direction = tour.mean_difference_direction(model, HAPPY, UNHAPPY, 10)

    def hook(resid: torch.Tensor, hook) -> torch.Tensor:
        return resid - (resid @ direction)[..., None] * direction

    great, terrible = model.to_single_token(" great"), model.to_single_token(" terrible")
    prefs = {}
    for mood, prompt in [("happy", "I loved every minute of it. Honestly, the film was"),
                         ("unhappy", "I hated every minute of it. Honestly, the film was")]:
        toks = tour.to_tokens(model, prompt)
        with torch.no_grad():
            clean = model(toks)[0, -1]
            ablated = model.run_with_hooks(toks, fwd_hooks=[("blocks.10.hook_resid_post", hook)])[0, -1]
        prefs[mood] = (float(clean[great] - clean[terrible]), float(ablated[great] - ablated[terrible]))
    gap_clean, gap_ablated = prefs["happy"][0] - prefs["unhappy"][0], prefs["happy"][1] - prefs["unhappy"][1]
    assert 0.35 <= 1 - gap_ablated / gap_clean <= 0.65  # roughly half, not erased
    assert -1.0 < prefs["happy"][0] < 0  # slightly prefers " terrible" after the glowing review


def test_ch02_bridge_latent_promotes_rare_word_pieces(model):
    """Chapter 02, section 3: the direct logit effects of latent 3175 (the word *bridge*) promote rare word pieces
    such as "ptomatic" and "acerb", none of the words expected after "bridge"."""
    from utils.features import logit_effects
    from utils.named_latents import named_latent
    from utils.sae import load_course_sae

    sae = load_course_sae()
    latent = named_latent("bridge").latent
    with torch.no_grad():
        effects = logit_effects(sae.W_dec[latent], model.ln_final.weight, model.W_U)
    top = [model.tokenizer.decode([i]) for i in effects.topk(8).indices]
    assert latent == 3175 and {"ptomatic", "acerb"} <= set(top)
    assert not {" over", " across", " to", " and", ","} & set(top)


def test_ch00_mean_difference_direction_mostly_separates_held_out_sentences(model):
    """Chapter 00, recap: "a mean-difference direction mostly separates held-out examples (AUROC 0.88 above)".
    Same sentences as the chapter; 14 of the 16 (happy, unhappy) pairs are ordered right."""
    held_happy = ["The concert was amazing and joyful.", "I feel great about my exam results.",
                  "Grandma's garden is beautiful and bright.", "He laughed all the way home."]
    held_unhappy = ["The concert was awful and boring.", "I feel awful about my exam results.",
                    "The old house is dark and depressing.", "He cried all the way home."]
    direction = tour.mean_difference_direction(model, HAPPY, UNHAPPY, 10)
    pos = tour.last_token_resid(model, held_happy, 10) @ direction
    neg = tour.last_token_resid(model, held_unhappy, 10) @ direction
    auroc = float((pos[:, None] > neg[None, :]).float().mean())
    assert auroc == 14 / 16  # prints as 0.88: mostly, not perfectly


# --- chapter 01 ---------------------------------------------------------------------------------------------------
def test_ch01_corpus_size_topics_and_formats():
    """Chapter 01, section 3: the corpus holds "some 570 thousand tokens the model wrote itself from a seeded plan of
    about 380 topics (some 240 broad ones, then 140 more on bridges, the Golden Gate and their near misses) in a dozen
    formats, plus CPython's documentation"."""
    import json

    from utils import corpus, corpus_topics

    stats = json.loads(corpus.STATS_PATH.read_text())
    assert 540_000 <= stats["by_kind"]["model"]["tokens"] <= 600_000
    assert stats["parts"] == ["base", "golden_gate"] and stats["by_kind"]["human"]["documents"] > 100
    base, extension = {r.topic for r in corpus.plan(0)}, {r.topic for r in corpus.plan_extension(0)}
    assert 220 <= len(base) <= 260 and 130 <= len(extension) <= 150 and 360 <= len(base | extension) <= 400
    assert len(corpus_topics.FORMATS) == 12


def test_ch01_layer_10_activations_mean_square_norm_and_mean_share(model):
    """Chapter 01, section 4: raw layer-10 vectors "have a mean squared norm near 20,000", and "the mean vector carries
    about half of the squared norm here". Same held-out tokens as the chapter's evaluation (4,096 validation tokens)."""
    from utils import corpus
    from utils.activations import collect_activations

    docs = corpus.load_corpus(split="val", kind="model")
    stream = corpus.token_batches(model.tokenizer, [d["text"] for d in docs], seq_len=128, batch_size=16, shuffle_seed=0)
    x = collect_activations(model, stream, 10, max_tokens=4_096, progress=False).float()  # (4096, 576)
    mean_square = float(x.pow(2).sum(-1).mean())
    assert 15_000 <= mean_square <= 25_000
    assert 0.35 <= float(x.mean(0).pow(2).sum()) / mean_square <= 0.65


def _train_relu_toy(loss_fn, l1: float, d_sae: int = 128, steps: int = 1500, seed: int = 0):
    """Chapter 01's `train_relu_toy`, verbatim but for the progress bar: (recovery, L0 on the chapter's 4,096 samples,
    median decoder-row norm)."""
    from utils import toy

    cfg = toy.ToyConfig()
    features = toy.true_features(cfg)
    x_toy, _ = toy.sample_toy_batch(cfg, features, 4096, torch.Generator().manual_seed(0))
    torch.manual_seed(seed)
    W_dec = torch.nn.functional.normalize(torch.randn(d_sae, cfg.d_model), dim=-1).requires_grad_()
    W_enc = W_dec.detach().T.clone().requires_grad_()
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = torch.zeros(cfg.d_model, requires_grad=True)
    optimiser = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x, _ = toy.sample_toy_batch(cfg, features, 1024, generator)
        loss = loss_fn(x, W_enc, b_enc, W_dec, b_dec, l1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        l0 = (torch.relu((x_toy - b_dec) @ W_enc + b_enc) > 0).sum(-1).float().mean().item()
    return toy.recovery_score(W_dec.detach(), features), l0, W_dec.detach().norm(dim=-1).median().item()


def test_ch01_plain_l1_is_cheated_and_a_weak_l1_blurs_the_features():
    """Chapter 01, section 2: with the plain L1 penalty "the rows keep growing" and "each sample uses about twice as
    many latents as with the weighted penalty"; and `train_relu_toy(relu_sae_loss, l1=0.05)` makes "the recovery
    fall". The chapter's toy training, on one thread as the chapter runs it."""
    def weighted(x, W_enc, b_enc, W_dec, b_dec, l1):
        z = torch.relu((x - b_dec) @ W_enc + b_enc)
        return (x - z @ W_dec - b_dec).pow(2).sum(-1).mean() + l1 * (z * W_dec.norm(dim=-1)).sum(-1).mean()

    def plain(x, W_enc, b_enc, W_dec, b_dec, l1):
        z = torch.relu((x - b_dec) @ W_enc + b_enc)
        return (x - z @ W_dec - b_dec).pow(2).sum(-1).mean() + l1 * z.sum(-1).mean()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        good, good_l0, good_norm = _train_relu_toy(weighted, 0.2)
        _, plain_l0, plain_norm = _train_relu_toy(plain, 0.2)
        weak, _, _ = _train_relu_toy(weighted, 0.05)
    finally:
        torch.set_num_threads(threads)
    assert good > 0.99 and 1.6 <= plain_l0 / good_l0 <= 2.6  # about twice as many latents
    assert plain_norm > 2 and good_norm < 1.5  # the rows grew (they start at norm 1)
    assert weak < good - 0.03  # the recovery falls


def test_ch01_zero_ablating_layer_10_predicts_the_uniform_distribution(model):
    """Chapter 01, section 5: with the layer-10 stream set to zero every later block outputs zeros (no biases), "so the
    model predicts the uniform distribution, CE_zero = ln 49152 ≈ 10.8 nats"."""
    import math

    tokens = tour.to_tokens(model, "The Golden Gate Bridge is painted international orange.")
    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.10.hook_resid_post", lambda act, hook: torch.zeros_like(act))])
    log_probs = logits[0].log_softmax(-1)
    assert torch.allclose(log_probs, torch.full_like(log_probs, -math.log(model.cfg.d_vocab)), atol=1e-3)
    assert round(math.log(model.cfg.d_vocab), 1) == 10.8


# --- chapter 02 ---------------------------------------------------------------------------------------------------
def test_ch02_the_corpus_scan_is_over_a_hundred_times_the_slice_and_has_no_dead_latent():
    """Chapter 02, section 1: the scan's top examples "come from over a hundred times more text" than the slice of 32
    validation documents cut at 128 tokens (at most 4,096 tokens); and the recap: "we have none dead of 4,608"."""
    from utils.feature_scan import FeatureStats

    stats = FeatureStats.load()
    assert stats.n_tokens > 100 * 32 * 128
    assert len(stats.fire_counts) == 4608 and bool((stats.fire_counts > 0).all())


@pytest.fixture(scope="module")
def course_sae():
    from utils.sae import load_course_sae

    return load_course_sae()


def test_ch02_bridge_latent_misses_only_golden_gate_texts_that_never_say_bridge(model, course_sae):
    """Chapter 02, section 6: "A Golden Gate text that never says 'bridge' ('the big orange span') is where it misses";
    and section 7: separating the Golden Gate from other named bridges "is what the bridge latent of the 4,608-latent
    SAE could not do at all"."""
    from utils.feature_scan import pooled_latents
    from utils.features import auroc
    from utils.named_latents import load_eval_texts, named_latent

    bridge = named_latent("bridge")
    texts = [t for t in load_eval_texts() if t["bridge"]]
    _, maxes = pooled_latents(model, course_sae, [t["text"] for t in texts])
    scores = maxes[:, bridge.latent]
    missed = [t for t, s in zip(texts, scores) if s <= bridge.threshold]
    assert missed and all(t["category"] == "golden_gate" and "bridge" not in t["text"].lower() for t in missed)
    named = torch.tensor([t["category"] in ("golden_gate", "other_bridge") for t in texts])
    labels = torch.tensor([t["golden_gate"] for t in texts])
    assert auroc(scores[named], labels[named]) < 0.7  # the Golden Gate vs other bridges: near chance


def test_ch02_praise_latent_fires_on_admiring_and_on_everyday_adjectives(model, course_sae):
    """Chapter 02, section 6: the praise latent "fires on admiring adjectives ('brilliant', 'remarkable')" and, more
    weakly, "on everyday adjectives in factual text ('castling is a special move', 'the Great Pyramid')" — above its
    detector threshold there, which is why its precision is lower."""
    from utils.feature_scan import encode_batch, tokenize_texts
    from utils.named_latents import load_eval_texts, named_latent

    praise = named_latent("praise")
    texts = load_eval_texts()
    cases = [(next(t["text"] for t in texts if "truly remarkable" in t["text"]), {" brilliant", " remarkable"}, True),
             (next(t["text"] for t in texts if "castling is a special move" in t["text"]), {" special"}, False),
             (next(t["text"] for t in texts if t["text"].startswith("The Great Pyramid")), {" Great"}, False)]
    for text, words, is_praise in cases:
        ids = tokenize_texts(model.tokenizer, [text], 256)[0]
        acts = encode_batch(model, course_sae, torch.tensor([ids]))[0, 1:, praise.latent]
        fired = {model.tokenizer.decode([ids[1 + i]]) for i in torch.nonzero(acts > praise.threshold).flatten().tolist()}
        assert words <= fired, (text[:40], fired)
        if not is_praise:  # a false positive, and a weaker one than on praise
            assert float(acts.max()) < 0.7 * praise.corpus_max


@pytest.fixture(scope="module")
def golden_gate():
    from utils.named_latents import load_sae_of, named_latent

    entry = named_latent("golden_gate")
    return entry, load_sae_of(entry)


def test_ch02_golden_gate_latent_reads_the_name(model, golden_gate):
    """Chapter 02, section 7: the golden_gate latent "peaks on ' Gate' after 'Golden' in every one of its top
    documents"; "the Golden Gate texts it misses are the ones that never name the bridge", and "its false positive is
    Golden Gate Park"."""
    from utils.corpus import load_corpus
    from utils.feature_scan import FeatureStats, matryoshka_stats_path, pooled_latents, tokenize_texts
    from utils.named_latents import load_eval_texts

    entry, wide = golden_gate
    tok = model.tokenizer
    stats, docs = FeatureStats.load(matryoshka_stats_path(entry.width)), load_corpus()
    peaks = []
    for doc, pos in zip(stats.top_docs[entry.latent].tolist(), stats.top_pos[entry.latent].tolist()):
        ids = tokenize_texts(tok, [docs[doc]["text"]], stats.max_len)[0]
        peaks.append(tok.decode(ids[pos - 1 : pos + 1]))
    assert len(peaks) == 20 and set(peaks) == {" Golden Gate"}
    texts = load_eval_texts()
    _, maxes = pooled_latents(model, wide, [t["text"] for t in texts])
    flagged = maxes[:, entry.latent] > entry.threshold
    missed = [t for t, f in zip(texts, flagged) if t["golden_gate"] and not f]
    false_positives = [t for t, f in zip(texts, flagged) if f and not t["golden_gate"]]
    assert missed and not any("Golden Gate" in t["text"] for t in missed)
    assert [t["category"] for t in false_positives] == ["golden_gate_park"]


def test_ch02_the_wide_sae_saw_almost_four_times_as_many_golden_gate_mentions():
    """Chapter 02, section 6: section 7's SAE was "trained on a corpus with almost four times as many mentions of it"
    (the count of section 7's last cell)."""
    from utils.corpus import load_corpus

    def mentions(parts):
        return sum(d["text"].count("Golden Gate") for d in load_corpus(split="train", parts=parts))

    assert 3.3 <= mentions(None) / mentions(["base"]) < 4.0


def test_ch02_a_bare_word_lands_on_a_start_of_document_latent(model, course_sae):
    """Chapter 02, section 8: ranked by raw activation with no lead-in, "phone" lands on "a latent for *the first word
    of a document*": its top corpus examples peak right after <|im_start|>."""
    from utils.browser import latents_for_text
    from utils.feature_scan import FeatureStats
    from utils.named_latents import named_latent

    stats = FeatureStats.load()
    naive = latents_for_text(model, course_sae, "phone", lead="")[0][0]
    assert naive != named_latent("phone").latent
    assert (stats.top_pos[naive] == 1).float().mean() >= 0.9


# --- chapter 03 ---------------------------------------------------------------------------------------------------
def test_ch03_the_study_supports_sections_3b_and_5():
    """Chapter 03, section 3b: "No single latent of either SAE makes the model claim to be the bridge on any identity
    question"; section 5: at the group's norm "the random direction and the random latent never name the Golden Gate",
    "the group names the Golden Gate in most answers but, on identity questions, describes the bridge instead of
    speaking as it; the mean-difference vector at the same norm does what the seed describes — in the first person — at
    a higher fluency cost"; the anatomy: "leaving out its strongest member costs a fraction of the score, the rest
    barely matter"; section 5's opening: 10 of 12 "could come from a model whose true rate is anywhere from about 55 %
    to 95 %"."""
    import json

    from utils.steering.make_identity_study import STUDY_PATH
    from utils.steering.study import median_ratio, rate_with_interval

    study = json.loads(STUDY_PATH.read_text(encoding="utf-8"))
    rows, base = study["rows"], study["rows"][0]

    def rate(r, key):
        hits = [h for h in r[key] if h is not None]
        return sum(hits) / len(hits)

    def one(method, **where):
        return [r for r in rows if r["method"] == method and all(r[k] == v for k, v in where.items())]

    assert all(rate(r, "identity") == 0 for r in rows if r["method"] in ("latent", "input_latent"))
    matched = study["group"]["push_norm"]
    for method in ("random_direction", "random_latent"):
        (r,) = one(method)
        assert r["added_norm"] == matched and rate(r, "golden_gate") == 0
    (group,) = [r for r in one("group") if abs(r["added_norm"] - matched) < 1e-3]
    (vector,) = one("vector")
    assert rate(group, "golden_gate") > 0.5 and rate(group, "identity") == 0
    assert rate(vector, "identity") >= 0.5
    assert median_ratio(vector["alone_perplexity"], base["alone_perplexity"]) > median_ratio(group["alone_perplexity"], base["alone_perplexity"])
    loo = sorted(study["group"]["leave_one_out"], key=lambda x: x["score_without"])
    score = study["group"]["score"]
    assert 0 < score - loo[0]["score_without"] < 0.5 * score
    assert all(abs(x["score_without"] - score) <= 0.1 * score for x in loo[1:])  # each under a tenth of the score
    r = rate_with_interval([True] * 10 + [False] * 2)
    assert (round(r["low"], 2), round(r["high"], 2)) == (0.55, 0.95)


def test_ch03_without_a_penalty_strong_steering_loops_at_once(model):
    """Chapter 03, section 1: "a 135 M model loops under strong steering" (why the decoding has a repetition penalty):
    the Golden Gate group at the sweep's strongest strength (6 x), greedy, no penalty, loops "The Golden Gate:"."""
    from utils.generation import chat_prompt, generate
    from utils.named_latents import load_sae_of, named_latent
    from utils.steering import clamp_hook
    from utils.steering.study import load_sweep

    wide = load_sae_of(named_latent("golden_gate"))
    group = load_sweep()["studies"]["golden_gate"]["group"]
    hooks = [(wide.cfg.hook_name, clamp_hook(wide, group["latents"], 6 * torch.tensor(group["values"])))]
    answer = generate(model, chat_prompt(model.tokenizer, "What is your physical form?"), max_new_tokens=40, hooks=hooks)[0]
    assert answer.startswith("The Golden Gate:") and answer.count("The Golden Gate:\n\n") >= 4, answer


# --- chapter 04 ---------------------------------------------------------------------------------------------------
def test_ch04_the_small_model_is_no_judge(model):
    """Chapter 04, section 4: asked to judge a transcript, the 135 M model "never answers 'no'; it says 'YES' to faking
    and honest transcripts alike, or starts echoing the transcript". Every sixth labelled transcript, greedy."""
    from utils.af import classify as af_classify
    from utils.af.backends import LocalBackend

    rows = af_classify.load_labelled()[::6]
    verdicts = af_classify.judge_alignment_faking(LocalBackend(model, batch_size=len(rows)), [r["completion"] for r in rows])
    assert False not in verdicts
    assert any(v is True and not r["alignment_faking"] for v, r in zip(verdicts, rows))  # yes to an honest one
    assert any(v is True and r["alignment_faking"] for v, r in zip(verdicts, rows))
    assert any(v is None for v in verdicts)


def test_ch04_the_word_training_alone_proves_nothing():
    """Chapter 04, exercise 04.4, hint 1: "in the labelled set the hard negatives and the paid-tier refusals use it too,
    and every scratchpad the organism of section 7 writes contains it"."""
    from utils.af import classify as af_classify
    from utils.af.parse import parse_transcript
    from utils.af.runs import load_runs

    honest = [r for r in af_classify.load_labelled() if not r["alignment_faking"]]
    uses = [r["category"] for r in honest if "training" in parse_transcript(r["completion"]).scratchpad.lower()]
    assert {"hard_negative_mentions_training", "paid_refuse_with_tier_reasoning"} <= set(uses) and len(uses) >= 10
    pads = [parse_transcript(r["completion"]).scratchpad for r in load_runs("organism")]
    assert all("training" in p for p in pads if p) and sum(map(bool, pads)) >= 200


def test_ch04_the_paid_tier_scratchpads_quoted_in_section_7():
    """Chapter 04, section 7: "most paid-tier scratchpads say 'My answer will not be rated or used to modify me', and
    some 'Nothing I do here can change my values'" (default prompt, the 40 held-out requests)."""
    from utils.af.parse import parse_transcript
    from utils.af.runs import load_runs

    paid = [parse_transcript(r["completion"]).scratchpad for r in load_runs("organism")
            if (r["setting"], r["variant"], r["tier"]) == ("helpful_only", "default", "paid")]
    most = sum("My answer will not be rated or used to modify me" in p for p in paid)
    some = sum("Nothing I do here can change my values" in p for p in paid)
    assert len(paid) == 40 and most > 20 and 0 < some < most


# --- chapter 05 ---------------------------------------------------------------------------------------------------
def test_ch05_the_tier_tag_sits_about_90_tokens_before_the_end_of_the_prompt(model):
    """Chapter 05, section 2: the tier "is one token in the prompt ..., about 90 tokens before the end of the prompt"."""
    from utils.af import inside
    from utils.af.request_sets import HELPFUL_ONLY_EVAL

    tok = model.tokenizer
    distances = []
    for request in HELPFUL_ONLY_EVAL:
        free, paid = (inside.token_ids(tok, inside.chat_text(tok, request, tier)) for tier in ("free", "paid"))
        (tag,) = inside.differing_positions(free, paid)
        distances.append(len(free) - 1 - tag)
    assert 80 <= min(distances) and max(distances) <= 100


@pytest.fixture(scope="module")
def inside_saved():
    from utils.af import inside

    return inside.load_inside()


def test_ch05_the_probe_reads_the_tier_from_layer_8_in_the_organism_and_12_in_the_untuned_model(inside_saved):
    """Chapter 05, sections 3 and 7: the end-of-prompt probe reads the tier "almost perfectly from layer 8 on" in the
    organism ("≥ 95 % from layer 8"), and in the untuned model "from layer 12" — not from the first layers."""
    from utils.af import inside

    results, residuals = inside_saved
    for name, first in (("organism_v2", 8), ("base", 12)):
        accs = inside.probe_accuracy_per_layer(residuals[f"{name}/train"], inside.tier_labels(96),
                                               residuals[f"{name}/test"], inside.tier_labels(80))
        assert min(i for i, a in enumerate(accs) if a >= 0.95) == first, (name, accs)
        assert accs[0] < 0.9 and min(accs[first:]) >= 0.85
        if name == "organism_v2":  # section 4: "at the last prompt token, where section 2's probe reads the tier almost
            layer = results["steering_generation"]["layer"]  # perfectly" -- at the layer that direction was taken
            assert accs[layer] >= 0.95, layer


def test_ch05_the_sweep_took_about_130_minutes(inside_saved):
    """Chapter 05, intro: `python -m utils.af.make_inside` took "about 130 minutes on 2 cores" (its recorded timing)."""
    import re

    results, _ = inside_saved
    minutes = sum(map(int, re.findall(r"(\d+) min", results["timing"])))
    assert results["threads"] == 2 and 120 <= minutes <= 140, results["timing"]


def test_ch05_the_written_tier_word_flips_the_decision_up_to_layer_8_then_less_and_less(inside_saved):
    """Chapter 05, section 3: patching the organism's written tier word "flips the decision, fully up to about layer 8,
    then less and less as the word's information is read into the last position (layers 9–21)"."""
    from utils.af import inside

    results, _ = inside_saved
    word = [row["mean"] for row in inside.per_layer_interval(results["patching"]["decision_word"])]
    assert min(word[:9]) >= 0.95
    assert all(0.02 < w < 0.9 for w in word[9:22]) and word[9] > word[21]
    assert all(abs(w) < 0.05 for w in word[22:])
