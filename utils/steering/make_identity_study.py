"""Maintainer command: the Golden Gate identity study, written to ``utils/data/identity_study.json``.

``python -m utils.steering.make_identity_study`` (about 25 minutes on 2 cores). Every condition answers the same
:data:`~utils.steering.prompts.EVERYDAY` questions (42, 12 of them identity questions) under chapter 03's chat setup
(:func:`utils.steering.identity.identity_chat_prompt`, which tells the model it is an AI) with the shared decoding
(:mod:`utils.steering.answers`), and stores every answer with its judgements, so the notebook and the tests
recompute each rate from the file.

What it measures, in order:

1. **Output scores** (:mod:`utils.steering.output_scores`) of each shipped SAE's candidates: the top input-side
   latents (Golden Gate texts minus neutral texts, :func:`~utils.steering.hooks.concept_latent_group`) and the top
   first-order output latents, each clamped alone at :data:`SCORE_FRACTIONS` × the median residual norm.
2. **The group's anatomy**: the 16-latent group's push, its cosine with the mean-difference vector, and the output
   score of the group with each member left out.
3. **Generation** under every condition, each printed with the norm it adds: unsteered; the best output-scored
   latent of each SAE alone at :data:`LATENT_FRACTIONS`; the registry's input-side ``golden_gate`` latent at the same
   norms; the group; the mean-difference vector at the group's norm; a random latent and a random direction at that
   norm (controls).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

STUDY_PATH = Path(__file__).resolve().parent.parent / "data" / "identity_study.json"
CANDIDATES = 20  # per SAE and per side (input, first-order output)
SCORE_FRACTIONS = [0.4, 0.7]  # added norm for output scores, × median residual norm at the layer
LATENT_FRACTIONS = [0.4, 0.6, 0.8]  # the single-latent strength sweep
GROUP_SIZE = 16
GROUP_MULTIPLES = [4.0, 6.0]
SEED = 0


def rule_judgements(questions: list[str], answers: list[str]) -> dict[str, list]:
    """The rule-based judgements of each answer: Golden Gate / bridge named, and on identity questions (``None``
    elsewhere) first-person Golden Gate identity and "I am an AI"."""
    from utils.steering.identity import claims_to_be_the_bridge, says_it_is_an_ai
    from utils.steering.judges import mentions_bridge, mentions_golden_gate
    from utils.steering.prompts import IDENTITY

    on_identity = [q in IDENTITY for q in questions]
    return {
        "golden_gate": [mentions_golden_gate(a) for a in answers],
        "bridge": [mentions_bridge(a) for a in answers],
        "identity": [claims_to_be_the_bridge(a) if i else None for i, a in zip(on_identity, answers)],
        "ai": [says_it_is_an_ai(a) if i else None for i, a in zip(on_identity, answers)],
    }


def judge_identity(model: "TransformerBridge", questions: list[str], prompts: list[str], answers: list[str]) -> dict[str, Any]:
    """:func:`rule_judgements`, perplexity given the question and of the answer alone (after the same setup with an
    empty question), and repetition."""
    from utils.steering.identity import identity_chat_prompt
    from utils.steering.judges import perplexity, repetition_rate

    ppl = perplexity(model, prompts, answers)
    alone = perplexity(model, [identity_chat_prompt(model.tokenizer, "")] * len(answers), answers)
    return {
        **rule_judgements(questions, answers),
        "perplexity": ppl, "alone_perplexity": alone,
        "pmi": [math.log(b) - math.log(a) if a == a and b == b else 0.0 for a, b in zip(ppl, alone)],
        "repetition": [repetition_rate(model.tokenizer(a, add_special_tokens=False).input_ids) for a in answers],
    }


def answer_condition(model: "TransformerBridge", prompts: list[str], hooks: list) -> dict[str, Any]:
    """Generate every answer to the :data:`~utils.steering.prompts.EVERYDAY` ``prompts`` under ``hooks`` with the
    shared decoding and judge them (:func:`judge_identity`): ``{"answers", <judgements>, "seconds"}``."""
    from utils.generation import generate
    from utils.memory import release
    from utils.steering.answers import MAX_NEW_TOKENS, REPETITION_PENALTY
    from utils.steering.prompts import EVERYDAY

    start = time.time()
    answers = generate(model, prompts, max_new_tokens=MAX_NEW_TOKENS, hooks=hooks, batch_size=len(prompts),
                       repetition_penalty=REPETITION_PENALTY)
    out = {"answers": answers, **judge_identity(model, EVERYDAY, prompts, answers), "seconds": round(time.time() - start, 1)}
    release()
    return out


def progress_line(row: dict[str, Any], label: str) -> str:
    """One line per generated condition: its label, Golden Gate and first-person counts, seconds."""
    ident = [x for x in row["identity"] if x is not None]
    return (f"{label}: Golden Gate {sum(row['golden_gate'])}/{len(row['golden_gate'])}, identity "
            f"{sum(ident)}/{len(ident)} ({row['seconds']} s)")


def score_candidates(model: "TransformerBridge", sae: Any, gg: tuple, neutral: tuple, resid_norm: float,
                     dev_prompts: list[str], progress: bool) -> list[dict[str, Any]]:
    """Output scores of the SAE's top input-side and top first-order candidates."""
    from utils.steering.hooks import concept_latent_group
    from utils.steering.output_scores import first_order_scores, output_scores

    inputs = concept_latent_group(sae, *gg, *neutral, CANDIDATES)[0].tolist()
    first = first_order_scores(model, sae, dev_prompts)
    outputs = first.topk(CANDIDATES).indices.tolist()
    latents = list(dict.fromkeys(inputs + outputs))
    scores = {f: output_scores(model, sae, latents, f * resid_norm, dev_prompts, progress) for f in SCORE_FRACTIONS}
    return [{"latent": lat, "input_rank": inputs.index(lat) if lat in inputs else None,
             "first_order_rank": outputs.index(lat) if lat in outputs else None, "first_order": round(float(first[lat]), 4),
             "scores": {str(f): round(float(scores[f][j]), 3) for f in SCORE_FRACTIONS}}
            for j, lat in enumerate(latents)]


def best(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    return max(candidates, key=lambda c: max(c["scores"].values()))


def run(model: "TransformerBridge", progress: bool = True) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from utils.concepts import GOLDEN_GATE, NEUTRAL
    from utils.named_latents import load_sae_of, named_latent
    from utils.sae import load_course_sae
    from utils.steering.answers import MAX_NEW_TOKENS, REPETITION_PENALTY
    from utils.steering.hooks import concept_latent_group, group_clamp_hook, mean_difference_vector, residuals
    from utils.steering.identity import AI_HISTORY, AI_SYSTEM_PROMPT, identity_chat_prompt
    from utils.steering.output_scores import (DEV_QUESTIONS, PREFIX, TARGET, clamp_at_norm, continuation_logprob,
                                              direction_at_norm, target_batch)
    from utils.steering.prompts import EVERYDAY

    entry = named_latent("golden_gate")
    saes = {"course_sae": load_course_sae(), entry.sae: load_sae_of(entry)}
    wide = saes[entry.sae]
    layer, hook_name = wide.cfg.hook_layer, wide.cfg.hook_name
    gg, neutral = residuals(model, GOLDEN_GATE, layer), residuals(model, NEUTRAL, layer)
    resid_norm = float(neutral[0][neutral[1]].norm(dim=-1).median())
    dev_prompts = [identity_chat_prompt(model.tokenizer, q) for q in DEV_QUESTIONS]

    # 1. output scores
    scored = {name: score_candidates(model, sae, gg, neutral, resid_norm, dev_prompts, progress) for name, sae in saes.items()}
    winners = {name: best(c) for name, c in scored.items()}
    top_sae = max(winners, key=lambda n: max(winners[n]["scores"].values()))

    # 2. the group and the vector
    latents, values = concept_latent_group(wide, *gg, *neutral, GROUP_SIZE)
    W_dec = wide.W_dec.detach()
    vector = mean_difference_vector(*gg, *neutral)
    tokens, spans = target_batch(model.tokenizer, dev_prompts)
    base_lp = continuation_logprob(model, tokens, spans)

    def group_score(keep: list[int], multiple: float) -> float:
        hook = group_clamp_hook(wide, [int(latents[j]) for j in keep], multiple * values[keep])
        return round(float((continuation_logprob(model, tokens, spans, [(hook_name, hook)]) - base_lp).mean()), 3)

    group_multiple = GROUP_MULTIPLES[-1]
    push = (group_multiple * values[:, None] * W_dec[latents]).sum(0)
    group_norm = float(push.norm())
    leave_one_out = [{"latent": int(latents[j]), "score_without": group_score([i for i in range(GROUP_SIZE) if i != j], group_multiple)}
                     for j in tqdm(range(GROUP_SIZE), desc="leave one out", disable=not progress)]
    anatomy = {"latents": latents.tolist(), "values": [round(float(v), 4) for v in values], "multiple": group_multiple,
               "push_norm": round(group_norm, 3), "score": group_score(list(range(GROUP_SIZE)), group_multiple),
               "cosine_with_vector": round(float(torch.nn.functional.cosine_similarity(push, vector, dim=0)), 4),
               "vector_score_at_group_norm": round(float((continuation_logprob(
                   model, tokens, spans, [(hook_name, direction_at_norm(vector, group_norm))]) - base_lp).mean()), 3),
               "leave_one_out": leave_one_out}

    # 3. generation
    g = torch.Generator().manual_seed(SEED)
    random_direction = torch.randn(wide.cfg.d_in, generator=g)
    random_latent = int(torch.randint(wide.cfg.d_sae, (1,), generator=g))
    plan: list[tuple[str, str, int | None, float, float, list]] = [("none", "", None, 0.0, 0.0, [])]
    for name, sae in saes.items():
        lat = winners[name]["latent"]
        fractions = LATENT_FRACTIONS if name == top_sae else [max(winners[name]["scores"], key=winners[name]["scores"].get)]
        plan += [("latent", name, lat, float(f), f * resid_norm, [(hook_name, clamp_at_norm(sae, lat, f * resid_norm))])
                 for f in map(float, fractions)]
    plan += [("input_latent", entry.sae, entry.latent, f, f * resid_norm, [(hook_name, clamp_at_norm(wide, entry.latent, f * resid_norm))])
             for f in LATENT_FRACTIONS]
    for m in GROUP_MULTIPLES:
        plan.append(("group", entry.sae, None, m, float((m * values[:, None] * W_dec[latents]).sum(0).norm()),
                     [(hook_name, group_clamp_hook(wide, latents.tolist(), m * values))]))
    plan += [("vector", "", None, group_norm / resid_norm, group_norm, [(hook_name, direction_at_norm(vector, group_norm))]),
             ("random_direction", "", None, group_norm / resid_norm, group_norm,
              [(hook_name, direction_at_norm(random_direction, group_norm))]),
             ("random_latent", entry.sae, random_latent, group_norm / resid_norm, group_norm,
              [(hook_name, clamp_at_norm(wide, random_latent, group_norm))])]
    prompts = [identity_chat_prompt(model.tokenizer, q) for q in EVERYDAY]
    rows = []
    for method, sae_name, latent, strength, added, hooks in tqdm(plan, desc="conditions", disable=not progress):
        rows.append({"method": method, "sae": sae_name, "latent": latent, "strength": round(strength, 4),
                     "added_norm": round(added, 3), **answer_condition(model, prompts, hooks)})
        if progress:
            print(progress_line(rows[-1], f"{method:16s} {sae_name:14s} {latent!s:6s} x{strength:.2f} |added| {added:6.1f}"),
                  flush=True)
    return {"command": "python -m utils.steering.make_identity_study",
            "setup": {"system": AI_SYSTEM_PROMPT, "history": AI_HISTORY},
            "decoding": {"greedy": True, "max_new_tokens": MAX_NEW_TOKENS, "repetition_penalty_on_generated_tokens": REPETITION_PENALTY},
            "layer": layer, "resid_norm": round(resid_norm, 3), "score": {"prefix": PREFIX, "target": TARGET,
                                                                           "questions": DEV_QUESTIONS, "fractions": SCORE_FRACTIONS},
            "candidates": scored, "best": {n: w["latent"] for n, w in winners.items()}, "best_sae": top_sae,
            "registry_latent": {"sae": entry.sae, "latent": entry.latent},
            "group": anatomy, "random": {"seed": SEED, "latent": random_latent},
            "questions": EVERYDAY, "rows": rows}


DOCS_PATH = Path(__file__).resolve().parent.parent.parent / "docs" / "GOLDEN_GATE_IDENTITY.md"
NAMES = {"none": "unsteered", "latent": "best output-scored latent alone", "input_latent": "registry's input-side latent alone",
         "group": "16-latent group", "vector": "mean-difference vector", "random_direction": "random direction (control)",
         "random_latent": "random latent (control)"}


def _rate(hits: list) -> str:
    from utils.steering.study import rate_with_interval

    r = rate_with_interval([h for h in hits if h is not None])
    return f"{r['k']}/{r['n']} = {r['rate']:.0%} [{r['low']:.0%}, {r['high']:.0%}]"


def _sae_quality(metrics: dict[str, Any] | None) -> str:
    """"Its CE loss recovered … ; … of its latents dead. " from a trained SAE's metrics (``""`` when absent)."""
    text = (metrics or {}).get("model_text_val")
    if not text:
        return ""
    return (f"On held-out model text its CE loss recovered is {text['ce_loss_recovered']:.2f} and "
            f"{text['dead_fraction']:.0%} of its latents are dead. ")


def docs_page(study: dict[str, Any], attempts: dict[str, Any] | None = None) -> str:
    """``docs/GOLDEN_GATE_IDENTITY.md``, generated from the study file: the conditions with their added norms and
    rates (95 % Wilson intervals), the output-score ranking, the group's anatomy and, when ``attempts`` (from
    :mod:`utils.steering.make_identity_attempt`) has any, what each go-further attempt gave."""
    from utils.steering.study import median_ratio

    rows, base = study["rows"], study["rows"][0]
    n_id = sum(x is not None for x in base["identity"])
    out = ["# Golden Gate identity study (generated)", "",
           f"Generated by `{study['command']}` from `utils/data/identity_study.json`; do not edit by hand. Every condition "
           f"answered the same {len(study['questions'])} everyday questions ({n_id} identity questions) under chapter 03's "
           "chat setup, which tells the model it is an AI (system prompt and four earlier turns, "
           "`utils/steering/identity.py`), with greedy decoding and a repetition penalty on generated tokens only. "
           "Rates carry 95 % Wilson intervals; *added norm* is the norm of the vector each intervention adds where "
           f"the clamped latents were silent (median residual norm at layer {study['layer']}: {study['resid_norm']:g}).", "",
           "| condition | SAE | latent | strength | added norm | says it is an AI | first-person Golden Gate | names the Golden Gate | mentions a bridge | answer-alone ppl ratio |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {NAMES[r['method']]} | {r['sae'] or '–'} | {r['latent'] if r['latent'] is not None else '–'} | "
                   f"{r['strength']:g} | {r['added_norm']:.1f} | {_rate(r['ai'])} | {_rate(r['identity'])} | "
                   f"{_rate(r['golden_gate'])} | {_rate(r['bridge'])} | "
                   f"{median_ratio(r['alone_perplexity'], base['alone_perplexity']):.1f} |")
    score = study["score"]
    out += ["", "## Output scores", "",
            f"Gain in log p(\"{score['target'].strip()}\" | question + \"{score['prefix']}\") in nats, mean over "
            f"{len(score['questions'])} development questions the study does not measure, with the latent clamped alone at "
            f"{' and '.join(f'{f:g}' for f in score['fractions'])} × the median residual norm. Candidates: each SAE's top "
            "input-side latents (Golden Gate texts minus neutral texts) and top first-order output latents. Top 8 per SAE:", ""]
    for name, cands in study["candidates"].items():
        out += [f"**{name}**", "", "| latent | input rank | first-order rank | " + " | ".join(f"score at {f}" for f in score["fractions"]) + " |",
                "|---|---|---|" + "---|" * len(score["fractions"])]
        for c in sorted(cands, key=lambda c: -max(c["scores"].values()))[:8]:
            out.append(f"| {c['latent']} | {c['input_rank'] if c['input_rank'] is not None else '–'} | "
                       f"{c['first_order_rank'] if c['first_order_rank'] is not None else '–'} | "
                       + " | ".join(f"{c['scores'][str(f)]:+.1f}" for f in score["fractions"]) + " |")
        out.append("")
    g = study["group"]
    out += ["## The group's anatomy", "",
            f"The {len(g['latents'])}-latent group at {g['multiple']:g} × its concept means adds a vector of norm "
            f"{g['push_norm']:.1f}; its cosine with the mean-difference vector is {g['cosine_with_vector']:.2f}. Output score "
            f"of the whole group {g['score']:+.1f} nats; the mean-difference vector at the same norm {g['vector_score_at_group_norm']:+.1f}. "
            "Leaving one member out (score of the other 15):", "",
            "| left out | score without it | change |", "|---|---|---|"]
    for item in sorted(g["leave_one_out"], key=lambda x: x["score_without"]):
        out.append(f"| {item['latent']} | {item['score_without']:+.1f} | {item['score_without'] - g['score']:+.1f} |")
    for name, a in (attempts or {}).items():
        top = sorted(a["candidates"], key=lambda c: -max(c["scores"].values()))[:5]
        out += ["", f"## Going further: {name}", "",
                f"{a['note']} An SAE of {a['d_sae']:,} latents (TopK, k = {a['k']}) at `{a['hook_name']}`, trained by "
                f"`{a['train_command']}` (not shipped) and tried by `{a['command']}`. Median residual norm at layer "
                f"{a['layer']}: {a['resid_norm']:g}. " + _sae_quality(a.get("train_metrics")) + "Best output scores: "
                + ", ".join(f"latent {c['latent']} {max(c['scores'].values()):+.1f}" for c in top) + ".", "",
                "| condition | latent | × resid norm | added norm | says it is an AI | first-person Golden Gate | names the Golden Gate | answer-alone ppl ratio |",
                "|---|---|---|---|---|---|---|---|"]
        for r in a["rows"]:
            out.append(f"| {NAMES[r['method']]} | {r['latent'] if r['latent'] is not None else '–'} | {r['strength']:g} | "
                       f"{r['added_norm']:.1f} | {_rate(r['ai'])} | {_rate(r['identity'])} | {_rate(r['golden_gate'])} | "
                       f"{median_ratio(r['alone_perplexity'], a['rows'][0]['alone_perplexity']):.1f} |")
    return "\n".join(out) + "\n"


def rejudge_rules(study: dict[str, Any]) -> dict[str, Any]:
    """Recompute the rule-based judgements of every stored answer after a rule changes (:func:`rule_judgements`);
    perplexities depend only on the answers and the model, and are kept."""
    for r in study["rows"]:
        r.update(rule_judgements(study["questions"], r["answers"]))
    return study


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Run chapter 03's Golden Gate identity study.")
    parser.add_argument("--out", type=Path, default=STUDY_PATH)
    parser.add_argument("--docs-only", action="store_true", help="only regenerate docs/GOLDEN_GATE_IDENTITY.md from the study file")
    parser.add_argument("--rejudge-rules", action="store_true",
                        help="recompute the rule-based judgements of the stored answers (no model needed), then the docs page")
    args = parser.parse_args(argv)
    if args.rejudge_rules:
        study = rejudge_rules(json.loads(args.out.read_text(encoding="utf-8")))
        args.out.write_text(json.dumps(study, indent=1) + "\n", encoding="utf-8")
        args.docs_only = True
    from utils.steering.make_identity_attempt import load_attempts

    if args.docs_only:
        DOCS_PATH.write_text(docs_page(json.loads(args.out.read_text(encoding="utf-8")), load_attempts()), encoding="utf-8")
        return 0
    from utils.model import load_model

    start = time.time()
    result = run(load_model())
    result["seconds"] = round(time.time() - start)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    if args.out == STUDY_PATH:
        DOCS_PATH.write_text(docs_page(result, load_attempts()), encoding="utf-8")
    print(f"{time.time() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
