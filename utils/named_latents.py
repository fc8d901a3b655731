"""The named-latent registry: course-SAE latents with a label, a detector threshold and the evidence.

Chapter 03 steers with these latents, so each name must be earned. For the two concepts the course
needs, ``python -m utils.named_latents build`` does the whole search and writes
``utils/data/course_sae/named_latents.json``:

1. **candidates** — concept search on the contrastive prompt sets of :mod:`utils.concepts`: the 8
   latents with the largest ``mean(concept) - mean(neutral)`` of mean-pooled activations;
2. **choice** — among them, the latent whose 20 top-activating corpus documents are most often on a
   concept topic of the corpus plan (``purity``); this is what a person does by reading dashboards,
   written down as a rule;
3. **verification** — as a detector on ``utils/data/concept_eval.jsonl``, 190 labelled texts written
   for the course and never used in steps 1–2: a text is flagged when the latent's maximum over its
   tokens exceeds one third of the latent's maximum on the corpus. Precision, recall and AUROC are
   recorded, with the false positives by category.

Other striking latents found while browsing are recorded with their label and the tokens they peak
on, but without a detector test (``verified: false``). Each browsed label names the peak tokens that
would support it; the build measures that support on the latent's own top examples and marks the
label ``contradicted`` when fewer than half of them agree (the audit of chapter 02).

The wide Matryoshka SAE has its own registry (``python -m utils.named_latents build --sae matryoshka``,
``utils/data/matryoshka_sae/named_latents.json``), found by the same rule at a given nested width:
``golden_gate`` (searched against *hard* contrasts — other bridges, San Francisco, "golden", "gate" —
and verified against those categories too) and the broad ``bridge`` latent of the narrowest prefix,
whose splitting chapter 02 follows. :func:`named_latent` looks in both registries.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from utils.sae import COURSE_SAE_DIR, MATRYOSHKA_SAE_DIR

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.feature_scan import FeatureStats
    from utils.sae import SparseAutoencoder

REGISTRY_PATH = COURSE_SAE_DIR / "named_latents.json"
REGISTRY_PATHS = {"course_sae": REGISTRY_PATH, "matryoshka_sae": MATRYOSHKA_SAE_DIR / "named_latents.json"}
EVAL_PATH = Path(__file__).resolve().parent / "data" / "concept_eval.jsonl"
N_CANDIDATES, PURITY_DOCS, THRESHOLD_FRACTION = 8, 20, 1 / 3

# Latents a person labelled by reading their dashboards (chapter 02's browser); evidence is recomputed.
# name: (latent, label, the peak tokens that support the label — lower case, leading space stripped).
# The first two labels were contradicted by their own top examples in the audit of chapter 02 and are
# kept, relabelled, as the chapter's "spot the polysemantic latent" cases.
BROWSED = {
    "colosseum_and_bridge": (2801, "polysemantic: the Colosseum ('osse') AND the word 'Bridge' in landmark names",
                             ("osse", "bridge")),
    "waterway_names": (631, "names of waterways and harbours ('Narrow(s)', 'Harbour', 'Strait', 'Bay'); was 'tacoma_narrows'",
                       ("narrow", "narrows", "harbour", "harbor", "strait", "bay", "arf", "channel", "sound")),
    "phone": (2066, "telephones ('phone', 'cell')", ("phone", "phones", "cell", "mobile", "telephone")),
    "elegance": (2000, "elegance and beauty ('elegance', 'admired for its')", ("elegance", "beauty", "elegant", "stunning", "breathtaking")),
    "thank_you": (492, "'Thank you' at the end of a letter", ("you", "thanks")),
}
SUPPORT_MINIMUM = 0.5  # a browsed label is "contradicted" when fewer of its peak tokens support it


@dataclass(frozen=True)
class NamedLatent:
    name: str
    latent: int
    label: str
    hook_name: str
    corpus_max: float  # largest activation on the course corpus (sets steering and detector scales)
    threshold: float  # detector: fires on a text when max over tokens > threshold
    verified: bool  # true when the detector was tested on held-out labelled text
    evidence: dict[str, Any]
    sae: str = "course_sae"  # which SAE: "course_sae" or "matryoshka_sae" (folder under utils/data)
    width: int | None = None  # for a Matryoshka SAE, the nested width (prefix) the latent belongs to


def concept_topics(concept: str) -> set[str]:
    """Corpus-plan topics that count as being about ``concept`` (for the purity rule)."""
    from utils.corpus_topics import BRIDGES_AND_LANDMARKS, PRAISE_AND_FLATTERY

    if concept == "bridge":
        return {t for t in BRIDGES_AND_LANDMARKS if "bridge" in t.lower()}
    if concept == "praise":
        return set(PRAISE_AND_FLATTERY)
    if concept == "golden_gate":
        from utils.corpus_topics import GOLDEN_GATE_DEEP

        return {t for t in BRIDGES_AND_LANDMARKS + GOLDEN_GATE_DEEP if "Golden Gate" in t}
    raise KeyError(f"no corpus topics for concept {concept!r}; known: bridge, praise, golden_gate")


def load_eval_texts(path: Path = EVAL_PATH) -> list[dict]:
    """The held-out labelled texts: dicts with id, category, bridge, praise, text."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def purity(stats: "FeatureStats", docs: list[dict], latent: int, topics: set[str], n: int = PURITY_DOCS) -> float:
    """Fraction of the latent's ``n`` top-activating corpus documents whose topic is in ``topics``."""
    top = [d for d in stats.top_docs[latent, :n].tolist() if d >= 0]
    return sum(docs[d]["topic"] in topics for d in top) / n


def peak_token_counts(tokenizer: Any, stats: "FeatureStats", docs: list[dict], latent: int, n: int = PURITY_DOCS) -> Counter[str]:
    """How often each token is the one the latent peaks on, over its ``n`` top documents.

    ``stats.top_docs[latent, j]`` is a document index (-1 = none) and ``stats.top_pos[latent, j]`` the
    position of the latent's maximum in that document *as scanned*: BOS first, then the text's tokens."""
    from utils.feature_scan import tokenize_texts

    counts: Counter[str] = Counter()
    for d, p in zip(stats.top_docs[latent, :n].tolist(), stats.top_pos[latent, :n].tolist()):
        if d >= 0:
            counts[tokenizer.decode([tokenize_texts(tokenizer, [docs[d]["text"]], stats.max_len)[0][p]])] += 1
    return counts


def peak_tokens(model: "TransformerBridge", stats: "FeatureStats", docs: list[dict], latent: int, n: int = PURITY_DOCS) -> list[tuple[str, int]]:
    """The 5 tokens the latent peaks on most often in its top documents, most common first."""
    return peak_token_counts(model.tokenizer, stats, docs, latent, n).most_common(5)


def label_support(counts: Counter[str], supporting: Sequence[str]) -> float:
    """Fraction of the peak tokens (``counts``) that support a label: the token, lower-cased and
    stripped of spaces, is one of ``supporting``."""
    total = sum(counts.values())
    return sum(c for t, c in counts.items() if t.strip().lower() in supporting) / total if total else 0.0


def search(model: "TransformerBridge", sae: "SparseAutoencoder", stats: "FeatureStats", docs: list[dict], concept: str) -> dict[str, Any]:
    """Steps 1–2: concept-search candidates and the purity choice among them."""
    from utils.concepts import CONCEPTS, CONTRASTS
    from utils.feature_scan import pooled_latents
    from utils.features import concept_scores

    concept_mean, _ = pooled_latents(model, sae, CONCEPTS[concept])
    neutral_mean, _ = pooled_latents(model, sae, CONTRASTS[concept])
    scores = concept_scores(concept_mean, neutral_mean)
    candidates = scores.topk(N_CANDIDATES).indices.tolist()
    topics = concept_topics(concept)
    rows = [{"latent": i, "concept_score": round(float(scores[i]), 4), "purity": purity(stats, docs, i, topics)} for i in candidates]
    chosen = max(rows, key=lambda r: (r["purity"], r["concept_score"]))
    return {"candidates": rows, "chosen": chosen["latent"]}


def verify(model: "TransformerBridge", sae: "SparseAutoencoder", latent: int, threshold: float, concept: str,
           texts: list[dict] | None = None) -> dict[str, Any]:
    """Step 3: the latent as a detector of ``concept`` on the held-out labelled texts."""
    import torch

    from utils.feature_scan import pooled_latents
    from utils.features import auroc, detector_report

    texts = texts if texts is not None else load_eval_texts()
    _, maxes = pooled_latents(model, sae, [t["text"] for t in texts])
    scores = maxes[:, latent]
    labels = torch.tensor([bool(t[concept]) for t in texts])
    report = detector_report(scores, labels, threshold)
    flagged = (scores > threshold).tolist()
    false_pos = Counter(t["category"] for t, f in zip(texts, flagged) if f and not t[concept])
    false_neg = Counter(t["category"] for t, f in zip(texts, flagged) if not f and t[concept])
    # Threshold-free separation from each kind of negative: the hard negatives are the test that matters.
    by_category = {}
    for category in sorted({t["category"] for t in texts if not t[concept]}):
        keep = torch.tensor([bool(t[concept]) or t["category"] == category for t in texts])
        by_category[category] = round(auroc(scores[keep], labels[keep]), 4)
    return {
        "texts": len(texts), "positives": int(labels.sum()), "threshold": round(threshold, 4),
        "precision": round(report.precision, 4), "recall": round(report.recall, 4), "auroc": round(auroc(scores, labels), 4),
        "false_positives_by_category": dict(sorted(false_pos.items())),
        "false_negatives_by_category": dict(sorted(false_neg.items())),
        "auroc_vs_category": by_category,
    }


def build(path: Path = REGISTRY_PATH) -> dict[str, Any]:
    from utils.corpus import load_corpus
    from utils.feature_scan import FeatureStats
    from utils.model import load_model
    from utils.sae import load_course_sae

    model, sae, stats, docs = load_model(), load_course_sae(), FeatureStats.load(), load_corpus()
    entries: dict[str, Any] = {}
    labels = {"bridge": "the word bridge, strongest for bridge structures (Golden Gate, suspension bridges)", "praise": "praise: admiring superlatives (brilliant, incredible, genius, masterpiece...)"}
    for concept, label in labels.items():
        entries[concept] = _verified_entry(model, sae, stats, docs, concept, label)
    for name, (latent, label, supporting) in BROWSED.items():
        corpus_max = float(stats.top_values[latent, 0])
        support = label_support(peak_token_counts(model.tokenizer, stats, docs, latent), supporting)
        entries[name] = {
            "latent": latent, "label": label, "corpus_max": round(corpus_max, 4),
            "threshold": round(THRESHOLD_FRACTION * corpus_max, 4), "verified": False,
            "evidence": {"peak_tokens": peak_tokens(model, stats, docs, latent), "density": round(float(stats.density[latent]), 6),
                         "supporting_tokens": list(supporting), "label_support": round(support, 4),
                         "contradicted": support < SUPPORT_MINIMUM},
        }
    registry = {"sae": str(COURSE_SAE_DIR.name), "hook_name": sae.cfg.hook_name,
                "command": "python -m utils.named_latents build", "latents": entries}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(registry, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return registry


def _verified_entry(model: "TransformerBridge", sae: "SparseAutoencoder", stats: "FeatureStats", docs: list[dict],
                    concept: str, label: str, width: int | None = None) -> dict[str, Any]:
    """Search, choose and verify one concept's latent (steps 1–3) as a registry entry."""
    found = search(model, sae, stats, docs, concept)
    latent = found["chosen"]
    corpus_max = float(stats.top_values[latent, 0])
    threshold = THRESHOLD_FRACTION * corpus_max
    return {
        "latent": latent, "label": label, "corpus_max": round(corpus_max, 4), "threshold": round(threshold, 4),
        "verified": True, **({"width": width} if width else {}),
        "evidence": {"search": found, "peak_tokens": peak_tokens(model, stats, docs, latent),
                     "density": round(float(stats.density[latent]), 6),
                     "detector": verify(model, sae, latent, threshold, concept)},
    }


MATRYOSHKA_LABELS = {
    # Written after reading the evidence (peak tokens, false positives and negatives by category):
    "golden_gate": "the Golden Gate by name: peaks on ' Gate' after 'Golden'; misses texts that never name it, "
                   "fires weakly on Golden Gate Park and other gates",
    "bridge": "the word bridge in every sense: the broad latent of the narrowest prefix, which splits at larger widths",
}


def build_matryoshka(path: Path = REGISTRY_PATHS["matryoshka_sae"]) -> dict[str, Any]:
    """The wide SAE's registry: ``golden_gate`` found at every nested width (the entry is the widest
    width's choice; the others are recorded as evidence of where it appears) and the broad ``bridge``
    latent of the narrowest width."""
    from utils.corpus import load_corpus
    from utils.feature_scan import FeatureStats, matryoshka_stats_path
    from utils.model import load_model
    from utils.sae import load_matryoshka_sae

    model, docs, full = load_model(), load_corpus(), load_matryoshka_sae()
    widths = full.cfg.nested_widths or [full.cfg.d_sae]
    per_width = {}
    for width in widths:
        sae, stats = load_matryoshka_sae(width), FeatureStats.load(matryoshka_stats_path(width))
        per_width[width] = _verified_entry(model, sae, stats, docs, "golden_gate", MATRYOSHKA_LABELS["golden_gate"], width)
    entries = {"golden_gate": per_width[widths[-1]]}
    entries["golden_gate"]["evidence"]["by_width"] = {
        str(w): {"latent": e["latent"], **{k: e["evidence"]["detector"][k] for k in ("precision", "recall", "auroc")},
                 "auroc_vs_other_bridge": e["evidence"]["detector"]["auroc_vs_category"]["other_bridge"]}
        for w, e in per_width.items()}
    small = widths[0]
    entries["bridge"] = _verified_entry(model, load_matryoshka_sae(small), FeatureStats.load(matryoshka_stats_path(small)), docs,
                                        "bridge", MATRYOSHKA_LABELS["bridge"], small)
    registry = {"sae": MATRYOSHKA_SAE_DIR.name, "hook_name": full.cfg.hook_name,
                "command": "python -m utils.named_latents build --sae matryoshka", "latents": entries}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(registry, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return registry


def load_registry(path: Path | str = REGISTRY_PATH) -> dict[str, NamedLatent]:
    """All named latents of one SAE, by name: the course SAE's by default; ``"matryoshka_sae"`` (or a
    path) for the wide SAE's."""
    path = REGISTRY_PATHS.get(str(path), Path(path))
    if not path.exists():
        flag = " --sae matryoshka" if path == REGISTRY_PATHS["matryoshka_sae"] else ""
        raise FileNotFoundError(f"{path} is missing; rebuild it with `python -m utils.named_latents build{flag}`.")
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {name: NamedLatent(name=name, hook_name=raw["hook_name"], sae=raw.get("sae", "course_sae"), **entry)
            for name, entry in raw["latents"].items()}


def named_latent(name: str) -> NamedLatent:
    """One registry entry, e.g. ``named_latent("bridge").latent``; the course SAE's registry is
    searched first, then the wide Matryoshka SAE's (``named_latent("golden_gate")``)."""
    known: list[str] = []
    for path in REGISTRY_PATHS.values():
        if path.exists():
            registry = load_registry(path)
            if name in registry:
                return registry[name]
            known += sorted(registry)
    raise KeyError(f"no named latent {name!r}; the registries have {known}")


def load_sae_of(entry: NamedLatent, device: str = "cpu") -> "SparseAutoencoder":
    """The SAE (at the entry's nested width) that ``entry``'s latent index refers to."""
    from utils.sae import load_course_sae, load_matryoshka_sae

    if entry.sae == "matryoshka_sae":
        return load_matryoshka_sae(entry.width, device=device)
    return load_course_sae(device=device)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Find, verify and record the course SAE's named latents.")
    parser.add_argument("command", choices=["build", "show"])
    parser.add_argument("--sae", choices=["course", "matryoshka"], default="course")
    args = parser.parse_args(argv)
    path = REGISTRY_PATHS["course_sae" if args.sae == "course" else "matryoshka_sae"]
    if args.command == "build":
        registry = build() if args.sae == "course" else build_matryoshka()
    else:
        registry = json.loads(path.read_text(encoding="utf-8"))
    for name, entry in registry["latents"].items():
        det = entry["evidence"].get("detector")
        extra = f"  P {det['precision']:.2f} R {det['recall']:.2f} AUROC {det['auroc']:.2f}" if det else ""
        print(f"{name:15s} latent {entry['latent']:5d}  {entry['label']}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
