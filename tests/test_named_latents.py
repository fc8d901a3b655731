"""The named-latent registry: its choices follow from its stated rule, and its bridge and praise latents
pass their detector tests on the held-out labelled texts (re-measured here, not read from the file)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from utils import named_latents
from utils.feature_scan import FeatureStats, pooled_latents
from utils.features import auroc, detector_report


@pytest.fixture(scope="module")
def sae():
    from utils.sae import load_course_sae

    return load_course_sae()


@pytest.fixture(scope="module")
def registry():
    return named_latents.load_registry()


@pytest.fixture(scope="module")
def eval_max(model, sae):
    texts = named_latents.load_eval_texts()
    _, maxes = pooled_latents(model, sae, [t["text"] for t in texts])
    return texts, maxes


def test_eval_set_is_labelled_and_balanced():
    texts = named_latents.load_eval_texts()
    assert len({t["id"] for t in texts}) == len(texts) >= 180
    counts = Counter(t["category"] for t in texts)
    assert counts["golden_gate"] >= 25 and counts["other_bridge"] >= 25 and counts["praise"] >= 30
    assert counts["bridge_word_other_sense"] >= 12 and counts["praise_near_miss"] >= 25 and counts["neutral"] >= 40
    for t in texts:
        assert t["bridge"] == (t["category"] in {"golden_gate", "other_bridge", "bridge_praise"}), t["id"]
        assert t["praise"] == (t["category"] in {"praise", "bridge_praise"}), t["id"]


def test_eval_texts_are_not_the_search_texts():
    from utils.concepts import BRIDGE, NEUTRAL, PRAISE

    held_out = {t["text"] for t in named_latents.load_eval_texts()}
    assert not held_out & set(BRIDGE + PRAISE + NEUTRAL)


def test_registry_entries_are_consistent(registry, sae):
    stats = FeatureStats.load()
    for name, entry in registry.items():
        assert 0 <= entry.latent < sae.cfg.d_sae, name
        assert entry.hook_name == sae.cfg.hook_name
        assert entry.corpus_max == pytest.approx(float(stats.top_values[entry.latent, 0]), abs=1e-3), name
        assert entry.threshold == pytest.approx(named_latents.THRESHOLD_FRACTION * entry.corpus_max, abs=1e-3), name
    assert registry["bridge"].verified and registry["praise"].verified
    assert named_latents.named_latent("bridge") == registry["bridge"]
    with pytest.raises(KeyError, match="no named latent"):
        named_latents.named_latent("golden retriever")


@pytest.mark.parametrize("concept", ["bridge", "praise"])
def test_choice_follows_the_search_rule(model, sae, registry, concept):
    from utils.corpus import load_corpus

    found = named_latents.search(model, sae, FeatureStats.load(), load_corpus(), concept)
    assert found["chosen"] == registry[concept].latent
    assert [c["latent"] for c in found["candidates"]] == [c["latent"] for c in registry[concept].evidence["search"]["candidates"]]


# Minimums the latents must meet as detectors; the registry records the measured values.
TARGETS = {"bridge": {"auroc": 0.95, "precision": 0.75, "recall": 0.9}, "praise": {"auroc": 0.9, "precision": 0.65, "recall": 0.7}}


@pytest.mark.parametrize("concept", ["bridge", "praise"])
def test_named_latent_is_a_good_detector_on_held_out_text(registry, eval_max, concept):
    texts, maxes = eval_max
    entry = registry[concept]
    scores = maxes[:, entry.latent]
    labels = torch.tensor([t[concept] for t in texts])
    report = detector_report(scores, labels, entry.threshold)
    measured = {"auroc": auroc(scores, labels), "precision": report.precision, "recall": report.recall}
    for metric, minimum in TARGETS[concept].items():
        assert measured[metric] >= minimum, f"{concept} {metric} {measured[metric]:.3f} < {minimum}"
        assert measured[metric] == pytest.approx(entry.evidence["detector"][metric], abs=0.02), metric


def test_bridge_false_positives_are_other_senses_of_the_word(registry, eval_max):
    """The honest reading of the bridge latent: it is a word-level latent, so its false positives
    should be the card game / dental bridge texts, not ordinary text."""
    texts, maxes = eval_max
    entry = registry["bridge"]
    flagged_negatives = Counter(t["category"] for t, s in zip(texts, maxes[:, entry.latent]) if s > entry.threshold and not t["bridge"])
    assert flagged_negatives["bridge_word_other_sense"] >= 0.75 * sum(flagged_negatives.values())
    assert flagged_negatives["neutral"] == 0 and flagged_negatives["praise"] == 0


# --- the wide Matryoshka SAE's registry: golden_gate and the broad bridge latent -----------------------
@pytest.fixture(scope="module")
def wide_registry():
    return named_latents.load_registry("matryoshka_sae")


def test_golden_gate_is_registered_with_its_sae_and_width(wide_registry):
    from utils.sae import load_matryoshka_sae

    entry = named_latents.named_latent("golden_gate")
    assert entry == wide_registry["golden_gate"] and entry.sae == "matryoshka_sae" and entry.verified
    wide = load_matryoshka_sae()
    assert entry.width == wide.cfg.d_sae and 0 <= entry.latent < entry.width
    assert wide_registry["bridge"].width == wide.cfg.nested_widths[0]
    assert named_latents.load_sae_of(entry).cfg.d_sae == entry.width
    assert set(entry.evidence["by_width"]) == {str(w) for w in wide.cfg.nested_widths}


@pytest.mark.parametrize("name, concept", [("golden_gate", "golden_gate"), ("bridge", "bridge")])
def test_wide_choices_follow_the_search_rule(model, wide_registry, name, concept):
    from utils.corpus import load_corpus
    from utils.feature_scan import matryoshka_stats_path

    entry = wide_registry[name]
    sae = named_latents.load_sae_of(entry)
    found = named_latents.search(model, sae, FeatureStats.load(matryoshka_stats_path(entry.width)), load_corpus(), concept)
    assert found["chosen"] == entry.latent


def test_golden_gate_detector_numbers_are_re_measured(model, wide_registry):
    """Precision, recall, AUROC against everything and against other named bridges, on held-out texts."""
    entry = wide_registry["golden_gate"]
    texts = named_latents.load_eval_texts()
    _, maxes = pooled_latents(model, named_latents.load_sae_of(entry), [t["text"] for t in texts])
    scores = maxes[:, entry.latent]
    labels = torch.tensor([t["golden_gate"] for t in texts])
    report = detector_report(scores, labels, entry.threshold)
    bridges = torch.tensor([t["golden_gate"] or t["category"] == "other_bridge" for t in texts])
    recorded = entry.evidence["detector"]
    measured = {"precision": report.precision, "recall": report.recall, "auroc": auroc(scores, labels)}
    for metric, value in measured.items():
        assert value == pytest.approx(recorded[metric], abs=0.02), metric
    vs_bridges = auroc(scores[bridges], labels[bridges])
    assert vs_bridges == pytest.approx(recorded["auroc_vs_category"]["other_bridge"], abs=0.02)
    # The targets. Against everything the margin is narrow (0.950 recorded): allow only the few
    # thousandths that another CPU's float rounding can move it.
    assert vs_bridges >= 0.90 and measured["auroc"] >= 0.945, (vs_bridges, measured)
    assert labels.sum() >= 25 and sum(t["category"] in {"golden_word", "gate_word", "golden_gate_park"} for t in texts) >= 12
