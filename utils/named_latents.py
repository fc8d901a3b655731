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
on, but without a detector test (``verified: false``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from utils.sae import COURSE_SAE_DIR

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.feature_scan import FeatureStats
    from utils.sae import SparseAutoencoder

REGISTRY_PATH = COURSE_SAE_DIR / "named_latents.json"
EVAL_PATH = Path(__file__).resolve().parent / "data" / "concept_eval.jsonl"
N_CANDIDATES, PURITY_DOCS, THRESHOLD_FRACTION = 8, 20, 1 / 3

# Latents a person labelled by reading their dashboards (chapter 02's browser); evidence is recomputed.
BROWSED = {
    "colosseum": (2801, "the Colosseum in Rome (fires on 'Col|osse|um')"),
    "tacoma_narrows": (631, "the Tacoma Narrows Bridge ('Narrow' after 'Tacoma')"),
    "phone": (2066, "telephones ('phone', 'cell')"),
    "elegance": (2000, "elegance and beauty ('elegance', 'admired for its')"),
    "thank_you": (492, "'Thank you' at the end of a letter"),
}


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


def concept_topics(concept: str) -> set[str]:
    """Corpus-plan topics that count as being about ``concept`` (for the purity rule)."""
    from utils.corpus_topics import BRIDGES_AND_LANDMARKS, PRAISE_AND_FLATTERY

    if concept == "bridge":
        return {t for t in BRIDGES_AND_LANDMARKS if "bridge" in t.lower()}
    if concept == "praise":
        return set(PRAISE_AND_FLATTERY)
    raise KeyError(f"no corpus topics for concept {concept!r}; known: bridge, praise")


def load_eval_texts(path: Path = EVAL_PATH) -> list[dict]:
    """The held-out labelled texts: dicts with id, category, bridge, praise, text."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def purity(stats: "FeatureStats", docs: list[dict], latent: int, topics: set[str], n: int = PURITY_DOCS) -> float:
    """Fraction of the latent's ``n`` top-activating corpus documents whose topic is in ``topics``."""
    top = [d for d in stats.top_docs[latent, :n].tolist() if d >= 0]
    return sum(docs[d]["topic"] in topics for d in top) / n


def peak_tokens(model: "TransformerBridge", stats: "FeatureStats", docs: list[dict], latent: int, n: int = PURITY_DOCS) -> list[tuple[str, int]]:
    """The tokens the latent peaks on in its top documents, most common first."""
    from utils.feature_scan import tokenize_texts

    tok = model.tokenizer
    counts: Counter[str] = Counter()
    for d, p in zip(stats.top_docs[latent, :n].tolist(), stats.top_pos[latent, :n].tolist()):
        if d >= 0:
            counts[tok.decode([tokenize_texts(tok, [docs[d]["text"]], stats.max_len)[0][p]])] += 1
    return counts.most_common(5)


def search(model: "TransformerBridge", sae: "SparseAutoencoder", stats: "FeatureStats", docs: list[dict], concept: str) -> dict[str, Any]:
    """Steps 1–2: concept-search candidates and the purity choice among them."""
    from utils.concepts import CONCEPTS, NEUTRAL
    from utils.feature_scan import pooled_latents
    from utils.features import concept_scores

    concept_mean, _ = pooled_latents(model, sae, CONCEPTS[concept])
    neutral_mean, _ = pooled_latents(model, sae, NEUTRAL)
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
    return {
        "texts": len(texts), "positives": int(labels.sum()), "threshold": round(threshold, 4),
        "precision": round(report.precision, 4), "recall": round(report.recall, 4), "auroc": round(auroc(scores, labels), 4),
        "false_positives_by_category": dict(sorted(false_pos.items())),
        "false_negatives_by_category": dict(sorted(false_neg.items())),
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
        found = search(model, sae, stats, docs, concept)
        latent = found["chosen"]
        corpus_max = float(stats.top_values[latent, 0])
        threshold = THRESHOLD_FRACTION * corpus_max
        entries[concept] = {
            "latent": latent, "label": label, "corpus_max": round(corpus_max, 4), "threshold": round(threshold, 4),
            "verified": True,
            "evidence": {"search": found, "peak_tokens": peak_tokens(model, stats, docs, latent),
                         "density": round(float(stats.density[latent]), 6),
                         "detector": verify(model, sae, latent, threshold, concept)},
        }
    for name, (latent, label) in BROWSED.items():
        corpus_max = float(stats.top_values[latent, 0])
        entries[name] = {
            "latent": latent, "label": label, "corpus_max": round(corpus_max, 4),
            "threshold": round(THRESHOLD_FRACTION * corpus_max, 4), "verified": False,
            "evidence": {"peak_tokens": peak_tokens(model, stats, docs, latent), "density": round(float(stats.density[latent]), 6)},
        }
    registry = {"sae": str(COURSE_SAE_DIR.name), "hook_name": sae.cfg.hook_name,
                "command": "python -m utils.named_latents build", "latents": entries}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(registry, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return registry


def load_registry(path: Path = REGISTRY_PATH) -> dict[str, NamedLatent]:
    """All named latents of the course SAE, by name."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with `python -m utils.named_latents build`.")
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {name: NamedLatent(name=name, hook_name=raw["hook_name"], **entry) for name, entry in raw["latents"].items()}


def named_latent(name: str) -> NamedLatent:
    """One registry entry, e.g. ``named_latent("bridge").latent``."""
    registry = load_registry()
    if name not in registry:
        raise KeyError(f"no named latent {name!r}; the registry has {sorted(registry)}")
    return registry[name]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Find, verify and record the course SAE's named latents.")
    parser.add_argument("command", choices=["build", "show"])
    args = parser.parse_args(argv)
    if args.command == "build":
        registry = build()
    else:
        registry = json.loads(REGISTRY_PATH.read_text(encoding="utf-8"))
    for name, entry in registry["latents"].items():
        det = entry["evidence"].get("detector")
        extra = f"  P {det['precision']:.2f} R {det['recall']:.2f} AUROC {det['auroc']:.2f}" if det else ""
        print(f"{name:15s} latent {entry['latent']:5d}  {entry['label']}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
