"""The steering trade-off sweep: concept rate vs fluency across strengths, SAE clamp vs mean-difference vector.

``python -m utils.steering_sweep`` (23 min measured on a busy 2-core machine; 22 conditions) writes ``utils/data/steering_sweep.json``, which
chapter 03 plots. For each concept (bridge on :data:`~utils.steering_prompts.EVERYDAY`, praise on
:data:`~utils.steering_prompts.OVERCONFIDENT`) and each condition — unsteered, the named latent clamped at
several multiples of its corpus maximum, and the unit mean-difference vector at several coefficients —
it generates one greedy answer per prompt (60 tokens, the course's repetition penalty) and records:

* ``rate``: fraction of answers that mention the bridge (bridge) or use ≥ 2 admiring words (praise);
* ``median_perplexity``: of the answers under the *unsteered* model, given their prompts;
* ``repetition``: mean fraction of repeated 3-grams;
* ``fluent``: median perplexity ≤ :data:`FLUENCY_PPL_FACTOR` × the unsteered median and repetition ≤
  :data:`MAX_REPETITION` — our line between "odd but readable" and "collapsed";
* the answers themselves.

``added_norm`` puts both methods on one axis: the clamp adds ``(a - z_i) W_dec[i]`` with a unit decoder
row, so about ``a``; the vector adds ``c`` times a unit vector. Divide by ``resid_norm`` (the median
norm of the residual stream at that layer on the neutral texts) for a relative strength.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.sae import SparseAutoencoder

SWEEP_PATH = Path(__file__).resolve().parent / "data" / "steering_sweep.json"
FLUENCY_PPL_FACTOR = 10.0
MAX_REPETITION = 0.3
CLAMP_MULTIPLES = {"bridge": [1.0, 1.5, 1.75, 2.0, 2.5, 3.0], "praise": [1.0, 2.0, 3.0, 4.0]}
VECTOR_COEFFICIENTS = {"bridge": [20.0, 30.0, 40.0, 50.0, 60.0, 70.0], "praise": [20.0, 30.0, 45.0, 60.0]}
DEFAULT_CLAMP_MULTIPLE = {"bridge": 2.0, "praise": 2.0}  # the chapter's default strengths


def concept_vector(model: "TransformerBridge", concept: str, layer: int) -> torch.Tensor:
    """The unit mean-difference vector of ``concept``'s sentences vs the neutral ones (utils.concepts)."""
    from utils.concepts import CONCEPTS, NEUTRAL
    from utils.steering import mean_difference_vector, residuals

    v = mean_difference_vector(*residuals(model, CONCEPTS[concept], layer), *residuals(model, NEUTRAL, layer))
    return v / v.norm()


def median_resid_norm(model: "TransformerBridge", layer: int) -> float:
    from utils.concepts import NEUTRAL
    from utils.steering import residuals

    resid, mask = residuals(model, NEUTRAL, layer)
    return float(resid[mask].norm(dim=-1).median())


def judge(model: "TransformerBridge", concept: str, prompts: list[str], answers: list[str]) -> dict[str, Any]:
    """Rate, perplexity and repetition of one condition's answers."""
    from utils.steering import is_praise, mentions_bridge, perplexity, repetition_rate

    hit = mentions_bridge if concept == "bridge" else is_praise
    ppl = perplexity(model, prompts, answers)
    reps = [repetition_rate(model.tokenizer(a, add_special_tokens=False).input_ids) for a in answers]
    finite = [p for p in ppl if p == p] or [float("nan")]
    return {"rate": sum(hit(a) for a in answers) / len(answers), "median_perplexity": statistics.median(finite),
            "repetition": sum(reps) / len(reps)}


def run_condition(model: "TransformerBridge", concept: str, questions: list[str], hooks: list) -> dict[str, Any]:
    from utils.steering import answer

    prompts, answers = answer(model, questions, hooks)
    return {**judge(model, concept, prompts, answers), "answers": answers}


def sweep(model: "TransformerBridge", sae: "SparseAutoencoder", progress: bool = True) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from utils.named_latents import named_latent
    from utils.steering import additive_hook, clamp_hook
    from utils.steering_prompts import EVERYDAY, OVERCONFIDENT

    layer, name = sae.cfg.hook_layer, sae.cfg.hook_name
    result: dict[str, Any] = {"command": "python -m utils.steering_sweep", "hook_name": name,
                              "resid_norm": round(median_resid_norm(model, layer), 3),
                              "fluency_rule": {"ppl_factor": FLUENCY_PPL_FACTOR, "max_repetition": MAX_REPETITION},
                              "concepts": {}}
    for concept, questions in (("bridge", EVERYDAY), ("praise", OVERCONFIDENT)):
        entry = named_latent(concept)
        vector = concept_vector(model, concept, layer)
        plan = [("none", 0.0, 0.0, [])]
        plan += [("clamp", m, m * entry.corpus_max, [(name, clamp_hook(sae, entry.latent, m * entry.corpus_max))])
                 for m in CLAMP_MULTIPLES[concept]]
        plan += [("vector", c, c, [(name, additive_hook(vector, c))]) for c in VECTOR_COEFFICIENTS[concept]]
        rows = []
        for method, strength, added, hooks in tqdm(plan, desc=f"sweep {concept}", disable=not progress):
            rows.append({"method": method, "strength": strength, "added_norm": round(added, 3),
                         **run_condition(model, concept, questions, hooks)})
        base = rows[0]["median_perplexity"]
        for row in rows:
            row["fluent"] = (row["median_perplexity"] <= FLUENCY_PPL_FACTOR * base and row["repetition"] <= MAX_REPETITION)
        result["concepts"][concept] = {"latent": entry.latent, "corpus_max": entry.corpus_max, "questions": questions,
                                       "default_clamp_multiple": DEFAULT_CLAMP_MULTIPLE[concept], "rows": rows}
    return result


def load_sweep(path: Path = SWEEP_PATH) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; regenerate it with `python -m utils.steering_sweep` (tens of minutes on 2 cores).")
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run the chapter 03 steering sweep.")
    parser.add_argument("--out", type=Path, default=SWEEP_PATH)
    args = parser.parse_args(argv)
    from utils.model import load_model
    from utils.sae import load_course_sae

    start = time.time()
    result = sweep(load_model(), load_course_sae())
    result["seconds"] = round(time.time() - start)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    for concept, block in result["concepts"].items():
        for row in block["rows"]:
            print(f"{concept:7s} {row['method']:7s} {row['strength']:6.2f}  rate {row['rate']:.2f}  "
                  f"ppl {row['median_perplexity']:7.1f}  rep {row['repetition']:.2f}  {'fluent' if row['fluent'] else 'COLLAPSED'}")
    print(f"{time.time() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
