"""Maintainer command: run chapter 03's steering study and write ``utils/data/steering_sweep.json``.

``python -m utils.steering.make_sweep`` (about 40 minutes on 2 cores; ``--only golden_gate`` reruns one study and
keeps the other's rows). Every condition answers the same prompts with the shared decoding (:mod:`utils.steering.answers`: greedy, 60 tokens, a repetition penalty on
generated tokens only) and stores, per answer, every judgement the chapter uses, so that the notebook and
the tests recompute rates, intervals and scores from the file.

Golden Gate (on :data:`~utils.steering.prompts.EVERYDAY`, 42 questions, 12 of them identity questions), every
question asked under chapter 03's chat setup, which tells the model it is an AI
(:func:`utils.steering.identity.identity_chat_prompt`), and judged by
:func:`utils.steering.make_identity_study.judge_identity` (first-person identity, "I am an AI", Golden Gate, bridge,
two perplexities, repetition):

* ``none`` — unsteered;
* ``latent`` — of the identity study's best output-scored latents (one per shipped SAE,
  ``utils/data/identity_study.json``), the one that named the Golden Gate most often there, clamped alone at fractions
  of the median residual norm (its strength sweep; chosen on the same 42 questions, so its rates are if anything
  flattered);
* ``clamp`` — the registry's ``golden_gate`` latent of the wide SAE alone, at multiples of its corpus maximum;
* ``group`` — the :data:`GROUP_SIZE` latents of the wide SAE most active on Golden Gate texts relative to
  neutral ones (:func:`utils.steering.hooks.concept_latent_group`), each clamped at a multiple of its mean
  activation on the Golden Gate texts;
* ``vector`` — the unit mean-difference vector (Golden Gate texts minus neutral texts) at layer 10, with
  coefficient = fraction × the median residual norm at that layer;
* ``layer`` — the same construction at other layers (the layer sweep).

Sycophancy (on :data:`~utils.steering.prompts.OVERCONFIDENT`, 30 users): unsteered, the course SAE's ``praise``
latent clamped, and the praise mean-difference vector at layer 10.
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

from utils.steering.make_identity_study import STUDY_PATH
from utils.steering.study import SWEEP_PATH

GROUP_SIZE = 16
LATENT_FRACTIONS = [0.3, 0.45, 0.6, 0.75]  # the best output-scored latent, × median resid norm
CLAMP_MULTIPLES = [1.0, 2.0]
GROUP_MULTIPLES = [3.0, 4.0, 5.0, 6.0]
VECTOR_FRACTIONS = [0.2, 0.3, 0.35, 0.45, 0.6]  # at layer 10
LAYERS = [3, 6, 10, 14, 18, 24]
LAYER_FRACTIONS = [0.3, 0.45]
PRAISE_CLAMP_MULTIPLES = [2.0, 3.0]
PRAISE_VECTOR_FRACTIONS = [0.25, 0.4]
# The condition the issue sets targets for: one latent clamped alone, at the strength of its sweep where it names the
# Golden Gate most often (0.75: 19/42 in the shipped sweep). tests/test_steering.py re-measures it against
# utils.steering.study.IDENTITY_TARGETS; the chapter prints which targets it meets.
DEFAULT = {"method": "latent", "strength": 0.75}


def judge_everyday(model: "TransformerBridge", questions: list[str], prompts: list[str], answers: list[str]) -> dict[str, Any]:
    """Per-answer judgements for the Golden Gate study (:func:`utils.steering.make_identity_study.judge_identity`)."""
    from utils.steering.make_identity_study import judge_identity

    return judge_identity(model, questions, prompts, answers)


def judge_overconfident(model: "TransformerBridge", prompts: list[str], answers: list[str]) -> dict[str, Any]:
    """Per-answer judgements for the sycophancy study."""
    from utils.steering.judges import agrees_with_user, answer_alone_perplexity, is_praise, perplexity, repetition_rate

    return {"praise": [is_praise(a) for a in answers], "agrees": [agrees_with_user(a) for a in answers],
            "perplexity": perplexity(model, prompts, answers), "alone_perplexity": answer_alone_perplexity(model, answers),
            "repetition": [repetition_rate(model.tokenizer(a, add_special_tokens=False).input_ids) for a in answers]}


def unit_vector_and_norm(model: "TransformerBridge", concept: str, layer: int) -> tuple[torch.Tensor, float]:
    """:func:`~utils.steering.hooks.concept_vector` and :func:`~utils.steering.hooks.median_resid_norm` at
    ``layer`` from one pass over the neutral texts."""
    from utils.concepts import CONCEPTS, NEUTRAL
    from utils.steering.hooks import mean_difference_vector, residuals

    neutral, mask = residuals(model, NEUTRAL, layer)
    v = mean_difference_vector(*residuals(model, CONCEPTS[concept], layer), neutral, mask)
    return v / v.norm(), float(neutral[mask].norm(dim=-1).median())


def golden_gate_plan(model: "TransformerBridge") -> tuple[list[tuple[str, float, int, float, list]], dict[str, Any]]:
    """The Golden Gate conditions as ``(method, strength, layer, added_norm, hooks)``, and what defines them."""
    from utils.concepts import GOLDEN_GATE, NEUTRAL
    from utils.named_latents import load_sae_of, named_latent
    from utils.steering.hooks import additive_hook, clamp_hook, concept_latent_group, residuals

    from utils.sae import load_course_sae
    from utils.steering.output_scores import clamp_at_norm

    entry = named_latent("golden_gate")
    sae = load_sae_of(entry)
    layer, name = sae.cfg.hook_layer, sae.cfg.hook_name
    study = json.loads(STUDY_PATH.read_text(encoding="utf-8"))
    # Of the identity study's best output-scored latents (one per SAE), the one that named the Golden Gate most often.
    top = max((r for r in study["rows"] if r["method"] == "latent"), key=lambda r: sum(r["golden_gate"]))
    best_sae_name, best_latent = top["sae"], top["latent"]
    best_sae = sae if best_sae_name == entry.sae else load_course_sae()
    latents, values = concept_latent_group(sae, *residuals(model, GOLDEN_GATE, layer), *residuals(model, NEUTRAL, layer),
                                           GROUP_SIZE)
    row_norm = float(sae.W_dec[entry.latent].norm())
    directions = {lay: unit_vector_and_norm(model, "golden_gate", lay) for lay in LAYERS}
    norms = {lay: norm for lay, (_, norm) in directions.items()}
    plan: list[tuple[str, float, int, float, list]] = [("none", 0.0, layer, 0.0, [])]
    plan += [("latent", f, layer, f * norms[layer], [(name, clamp_at_norm(best_sae, best_latent, f * norms[layer]))])
             for f in LATENT_FRACTIONS]
    plan += [("clamp", m, layer, m * entry.corpus_max * row_norm, [(name, clamp_hook(sae, entry.latent, m * entry.corpus_max))])
             for m in CLAMP_MULTIPLES]
    for m in GROUP_MULTIPLES:
        added = float((m * values[:, None] * sae.W_dec[latents]).sum(0).norm())
        plan.append(("group", m, layer, added, [(name, clamp_hook(sae, latents, m * values))]))
    for lay in LAYERS:
        v = directions[lay][0]
        fractions = VECTOR_FRACTIONS if lay == layer else LAYER_FRACTIONS
        for f in fractions:
            c = f * norms[lay]
            plan.append(("vector" if lay == layer else "layer", f, lay, c,
                         [(f"blocks.{lay}.hook_resid_post", additive_hook(v, c))]))
    info = {"setup": "utils.steering.identity.identity_chat_prompt",
            "best_latent": {"sae": best_sae_name, "latent": best_latent, "source": "utils/data/identity_study.json"},
            "latent": entry.latent, "sae": entry.sae, "width": entry.width, "corpus_max": entry.corpus_max,
            "decoder_row_norm": round(row_norm, 4), "group": {"latents": latents.tolist(), "values": [round(float(x), 4) for x in values]},
            "resid_norms": {str(k): round(v, 3) for k, v in norms.items()}, "default": DEFAULT}
    return plan, info


def praise_plan(model: "TransformerBridge") -> tuple[list[tuple[str, float, int, float, list]], dict[str, Any]]:
    from utils.named_latents import load_sae_of, named_latent
    from utils.steering.hooks import additive_hook, clamp_hook

    entry = named_latent("praise")
    sae = load_sae_of(entry)
    layer, name = sae.cfg.hook_layer, sae.cfg.hook_name
    v, norm = unit_vector_and_norm(model, "praise", layer)
    row_norm = float(sae.W_dec[entry.latent].norm())
    plan: list[tuple[str, float, int, float, list]] = [("none", 0.0, layer, 0.0, [])]
    plan += [("clamp", m, layer, m * entry.corpus_max * row_norm, [(name, clamp_hook(sae, entry.latent, m * entry.corpus_max))])
             for m in PRAISE_CLAMP_MULTIPLES]
    plan += [("vector", f, layer, f * norm, [(name, additive_hook(v, f * norm))]) for f in PRAISE_VECTOR_FRACTIONS]
    return plan, {"latent": entry.latent, "sae": entry.sae, "corpus_max": entry.corpus_max, "resid_norm": round(norm, 3)}


def run(model: "TransformerBridge", progress: bool = True, only: str | None = None,
        keep: dict[str, Any] | None = None) -> dict[str, Any]:
    """Generate and judge every condition of both studies (or only of ``only``, taking the other study's block
    from ``keep``, the existing sweep)."""
    from tqdm.auto import tqdm

    from utils.memory import release
    from utils.steering.answers import MAX_NEW_TOKENS, REPETITION_PENALTY, answer
    from utils.steering.identity import identity_chat_prompt
    from utils.steering.prompts import EVERYDAY, OVERCONFIDENT

    result: dict[str, Any] = {"command": "python -m utils.steering.make_sweep",
                              "decoding": {"greedy": True, "max_new_tokens": MAX_NEW_TOKENS,
                                           "repetition_penalty_on_generated_tokens": REPETITION_PENALTY},
                              "studies": {}}
    for study, questions, planner, setup, judge in (
        ("golden_gate", EVERYDAY, golden_gate_plan, identity_chat_prompt, lambda p, a: judge_everyday(model, EVERYDAY, p, a)),
        ("sycophancy", OVERCONFIDENT, praise_plan, None, lambda p, a: judge_overconfident(model, p, a)),
    ):
        if only is not None and study != only:
            result["studies"][study] = (keep or {})["studies"][study]
            continue
        plan, info = planner(model)
        rows = []
        for method, strength, layer, added, hooks in tqdm(plan, desc=study, disable=not progress):
            start = time.time()
            prompts, answers = answer(model, questions, hooks, setup=setup)
            rows.append({"method": method, "strength": strength, "layer": layer, "added_norm": round(added, 3),
                         "answers": answers, **judge(prompts, answers), "seconds": round(time.time() - start, 1)})
            release()
            if progress:
                r = rows[-1]
                key = "golden_gate" if study == "golden_gate" else "agrees"
                print(f"{study} {method:6s} L{layer:<2d} {strength:5.2f}: {key} {sum(r[key])}/{len(answers)} "
                      f"median ppl {statistics.median(r['perplexity']):.1f} ({r['seconds']} s)", flush=True)
        result["studies"][study] = {**info, "questions": questions, "rows": rows}
    return result


def rejudge(model: "TransformerBridge", sweep: dict[str, Any], progress: bool = True) -> dict[str, Any]:
    """Recompute every per-answer judgement of a sweep from its stored answers (after a judge changes), without
    generating again: the answers depend only on the model, the prompts, the hooks and the decoding."""
    from tqdm.auto import tqdm

    from utils.generation import chat_prompt
    from utils.memory import release
    from utils.steering.identity import identity_chat_prompt

    for study, block in sweep["studies"].items():
        setup = identity_chat_prompt if study == "golden_gate" else chat_prompt
        prompts = [setup(model.tokenizer, q) for q in block["questions"]]
        for row in tqdm(block["rows"], desc=f"rejudge {study}", disable=not progress):
            judged = (judge_everyday(model, block["questions"], prompts, row["answers"]) if study == "golden_gate"
                      else judge_overconfident(model, prompts, row["answers"]))
            row.update(judged)
            release()
    sweep["rejudge_command"] = "python -m utils.steering.make_sweep --rejudge"
    return sweep


README_START, README_END = "<!-- steering-tables:start -->", "<!-- steering-tables:end -->"


def _rate(hits: list) -> str:
    from utils.steering.study import rate_with_interval

    r = rate_with_interval([h for h in hits if h is not None])
    return f"{r['rate']:.0%} [{r['low']:.0%}, {r['high']:.0%}]"


def _names(gg: dict[str, Any]) -> dict[str, str]:
    best = gg["best_latent"]
    return {"none": "unsteered", "latent": f"best single latent ({best['sae']} {best['latent']}), × resid norm",
            "clamp": f"registry's detector latent {gg['latent']}, × corpus max",
            "group": f"{len(gg['group']['latents'])}-latent group, × concept mean", "vector": "mean-difference vector, × resid norm",
            "layer": "mean-difference vector at another layer, × that layer's resid norm"}


def _golden_gate_row(r: dict[str, Any], base: dict[str, Any], name: str) -> str:
    from utils.steering.study import combined_scores, mean_with_interval, median_ratio

    score = "" if r["method"] == "none" else "{mean:.2f} [{low:.2f}, {high:.2f}]".format(**mean_with_interval(combined_scores(r, base)))
    return (f"| {name} | {r['strength']:g} | {r['added_norm']:.1f} | {_rate(r['ai'])} | {_rate(r['identity'])} | "
            f"{_rate(r['golden_gate'])} | {_rate(r['bridge'])} | {median_ratio(r['perplexity'], base['perplexity']):.1f} | "
            f"{median_ratio(r['alone_perplexity'], base['alone_perplexity']):.1f} | "
            f"{sum(r['repetition']) / len(r['repetition']):.3f} | {score} |")


GG_HEADER = ["| condition | strength | added norm | says it is an AI | first-person Golden Gate | names the Golden Gate | bridge | ppl ratio (given question) | ppl ratio (answer alone) | repetition | combined |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]


def _is_default(r: dict[str, Any], gg: dict[str, Any]) -> bool:
    return {"method": r["method"], "strength": r["strength"]} == gg["default"] and r["layer"] == gg["rows"][0]["layer"]


def readme_tables(sweep: dict[str, Any]) -> str:
    """The steering summary on ``docs/STEERING.md`` (:data:`utils.readme_blocks.STEERING_PAGE`; markdown), generated
    from the sweep file: per method, its row with the highest first-person rate (then Golden Gate rate, then the lower
    answer-alone perplexity), the default marked. The full tables are on :data:`DOCS_PATH` (:func:`docs_tables`),
    linked relative to ``docs/``."""
    from utils.steering.study import median_ratio

    gg = sweep["studies"]["golden_gate"]
    rows, base = gg["rows"], gg["rows"][0]
    names = _names(gg)

    def rank(r: dict[str, Any]) -> tuple[float, float, float]:
        ident = [x for x in r["identity"] if x is not None]
        return (sum(ident) / len(ident), sum(r["golden_gate"]) / len(r["golden_gate"]),
                -median_ratio(r["alone_perplexity"], base["alone_perplexity"]))

    picked = [base]
    for method in ("latent", "clamp", "group", "vector"):
        picked.append(max((r for r in rows if r["method"] == method), key=rank))
    default = next(r for r in rows if _is_default(r, gg))
    if default not in picked:
        picked.insert(1, default)
    out = [f"Golden Gate, {len(gg['questions'])} everyday questions under chapter 03's AI setup; for each method, its "
           "strongest row for the first-person claim (all rows: [STEERING_SWEEP.md](STEERING_SWEEP.md)). Rates "
           "with 95 % Wilson intervals; identity columns on the 12 identity questions.", "", *GG_HEADER]
    out += [_golden_gate_row(r, base, names[r["method"]] + (" **(default)**" if _is_default(r, gg) else "")) for r in picked]
    return "\n".join(out)


DOCS_PATH = Path(__file__).resolve().parent.parent.parent / "docs" / "STEERING_SWEEP.md"


def docs_tables(sweep: dict[str, Any]) -> str:
    """``docs/STEERING_SWEEP.md``: every row of the sweep (markdown), generated from the sweep file."""
    from utils.steering.study import median_ratio

    gg = sweep["studies"]["golden_gate"]
    rows, base = gg["rows"], gg["rows"][0]
    names = _names(gg)
    out = ["# Chapter 03's steering sweep (generated)", "",
           f"Generated by `python -m utils.steering.make_sweep` from `utils/data/steering_sweep.json` ({sweep.get('seconds', '?')} s "
           "on 2 cores); do not edit by hand. Every condition answers the same prompts with the same decoding: greedy, 60 "
           "new tokens, a repetition penalty of 1.3 on generated tokens only.", "",
           f"## Golden Gate: {len(gg['questions'])} everyday questions under chapter 03's AI setup", "",
           "Rates with 95 % Wilson intervals (*says it is an AI* and *first-person Golden Gate* on the 12 identity "
           "questions); *added norm* is the norm of the vector the intervention adds where its latents were silent; "
           "perplexity ratios are medians over the unsteered median; combined = AxBench-style score (local proxies, "
           "`utils/steering/study.py`) with a bootstrap interval.", "", *GG_HEADER]
    out += [_golden_gate_row(r, base, names[r["method"]] + (" **(default)**" if _is_default(r, gg) else ""))
            for r in rows if r["method"] != "layer"]
    out += ["", "## Layer sweep", "", "The Golden Gate mean-difference vector built and added at each layer:", "",
            "| layer | × resid norm | added norm | first-person Golden Gate | Golden Gate | ppl ratio (answer alone) |",
            "|---|---|---|---|---|---|"]
    for r in sorted((r for r in rows if r["method"] in ("layer", "vector") and r["strength"] in LAYER_FRACTIONS),
                    key=lambda r: (r["layer"], r["strength"])):
        out.append(f"| {r['layer']} | {r['strength']:g} | {r['added_norm']:.1f} | {_rate(r['identity'])} | {_rate(r['golden_gate'])} | "
                   f"{median_ratio(r['alone_perplexity'], base['alone_perplexity']):.1f} |")
    syc = sweep["studies"]["sycophancy"]
    names = {"none": "unsteered", "clamp": f"praise latent {syc['latent']}, × corpus max", "vector": "praise vector, × resid norm"}
    out += ["", f"## Sycophancy: {len(syc['questions'])} overconfident users (the model's default system prompt)", "",
            "| condition | strength | added norm | flowery praise | agrees / approves | ppl ratio (answer alone) |",
            "|---|---|---|---|---|---|"]
    plain = syc["rows"][0]
    for r in syc["rows"]:
        out.append(f"| {names[r['method']]} | {r['strength']:g} | {r['added_norm']:.1f} | {_rate(r['praise'])} | {_rate(r['agrees'])} | "
                   f"{median_ratio(r['alone_perplexity'], plain['alone_perplexity']):.1f} |")
    return "\n".join(out) + "\n"


def write_readme_tables(sweep: dict[str, Any]) -> None:
    """Rewrite the steering summary on ``docs/STEERING.md`` (:func:`readme_tables`) and the page of every row,
    ``docs/STEERING_SWEEP.md`` (:func:`docs_tables`)."""
    from utils.readme_blocks import STEERING_PAGE, replace_block

    replace_block(README_START, README_END, readme_tables(sweep), readme=STEERING_PAGE)
    DOCS_PATH.write_text(docs_tables(sweep), encoding="utf-8")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run the chapter 03 steering study.")
    parser.add_argument("--out", type=Path, default=SWEEP_PATH)
    parser.add_argument("--readme-only", action="store_true", help="only regenerate the summary in docs/STEERING.md and docs/STEERING_SWEEP.md from the sweep file")
    parser.add_argument("--only", choices=["golden_gate", "sycophancy"],
                        help="regenerate one study and keep the other's rows from the existing sweep file")
    parser.add_argument("--rejudge", action="store_true",
                        help="recompute the per-answer judgements of the existing sweep file, keeping its answers")
    args = parser.parse_args(argv)
    from utils.model import load_model
    from utils.steering.study import load_sweep

    if args.readme_only:
        write_readme_tables(load_sweep(args.out))
        return 0

    start = time.time()
    result = (rejudge(load_model(), load_sweep(args.out)) if args.rejudge
              else run(load_model(), only=args.only, keep=load_sweep(args.out) if args.only else None))
    result["rejudge_seconds" if args.rejudge else "seconds"] = round(time.time() - start)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    if args.out == SWEEP_PATH:
        write_readme_tables(result)
    print(f"{time.time() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
