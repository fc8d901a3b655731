"""Maintainer command: one "go further" attempt at a single Golden Gate latent, with an SAE the course does not ship.

``python -m utils.steering.make_identity_attempt --sae DIR --name NAME [--note TEXT]`` runs, for the SAE saved in
``DIR`` (any layer; :meth:`utils.sae.SparseAutoencoder.load`), the same two steps the identity study
(:mod:`utils.steering.make_identity_study`) runs for the shipped SAEs:

1. **output scores** of its top input-side and top first-order candidates (:func:`make_identity_study.score_candidates`),
   at :data:`~utils.steering.make_identity_study.SCORE_FRACTIONS` × the median residual norm *of the SAE's layer*;
2. **generation** under chapter 03's chat setup on the 42 everyday questions: unsteered, the best output-scored
   latent alone at :data:`~utils.steering.make_identity_study.LATENT_FRACTIONS` × that norm, and a random latent of
   the same SAE at the middle norm (control), each judged by :func:`make_identity_study.judge_identity`.

The result is stored under ``NAME`` in ``utils/data/identity_attempts.json`` (answers included, so every rate is
recomputed from the file) with the command that trained the SAE (its ``cfg.json``), and the identity docs page is
regenerated. The SAE weights are not shipped: the training command in the file reproduces them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.sae import SparseAutoencoder

ATTEMPTS_PATH = Path(__file__).resolve().parent.parent / "data" / "identity_attempts.json"


def load_attempts(path: Path = ATTEMPTS_PATH) -> dict[str, Any]:
    """The stored attempts, ``{}`` when there are none yet."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def run_attempt(model: "TransformerBridge", sae: "SparseAutoencoder", progress: bool = True) -> dict[str, Any]:
    """Output scores and the single-latent strength sweep for ``sae`` (module docstring)."""
    from tqdm.auto import tqdm

    from utils.concepts import GOLDEN_GATE, NEUTRAL
    from utils.steering.hooks import residuals
    from utils.steering.identity import identity_chat_prompt
    from utils.steering.make_identity_study import (LATENT_FRACTIONS, SEED, answer_condition, best, progress_line,
                                                    score_candidates)
    from utils.steering.output_scores import DEV_QUESTIONS, clamp_at_norm
    from utils.steering.prompts import EVERYDAY

    layer, hook_name = sae.cfg.hook_layer, sae.cfg.hook_name
    gg, neutral = residuals(model, GOLDEN_GATE, layer), residuals(model, NEUTRAL, layer)
    resid_norm = float(neutral[0][neutral[1]].norm(dim=-1).median())
    dev_prompts = [identity_chat_prompt(model.tokenizer, q) for q in DEV_QUESTIONS]
    candidates = score_candidates(model, sae, gg, neutral, resid_norm, dev_prompts, progress)
    winner = best(candidates)["latent"]
    random_latent = int(torch.randint(sae.cfg.d_sae, (1,), generator=torch.Generator().manual_seed(SEED)))
    middle = LATENT_FRACTIONS[len(LATENT_FRACTIONS) // 2]
    plan: list[tuple[str, int | None, float, list]] = [("none", None, 0.0, [])]
    plan += [("latent", winner, f, [(hook_name, clamp_at_norm(sae, winner, f * resid_norm))]) for f in LATENT_FRACTIONS]
    plan.append(("random_latent", random_latent, middle, [(hook_name, clamp_at_norm(sae, random_latent, middle * resid_norm))]))
    prompts = [identity_chat_prompt(model.tokenizer, q) for q in EVERYDAY]
    rows = []
    for method, latent, fraction, hooks in tqdm(plan, desc="conditions", disable=not progress):
        rows.append({"method": method, "sae": "attempt" if latent is not None else "", "latent": latent,
                     "strength": fraction, "added_norm": round(fraction * resid_norm, 3),
                     **answer_condition(model, prompts, hooks)})
        if progress:
            print(progress_line(rows[-1], f"{method:14s} {latent!s:6s} x{fraction:.2f}"), flush=True)
    return {"layer": layer, "hook_name": hook_name, "d_sae": sae.cfg.d_sae, "k": sae.cfg.k,
            "resid_norm": round(resid_norm, 3), "candidates": candidates, "best": winner,
            "random": {"seed": SEED, "latent": random_latent}, "questions": EVERYDAY, "rows": rows}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="One go-further attempt at a single Golden Gate latent.")
    parser.add_argument("--sae", type=Path, required=True, help="folder with cfg.json and sae_weights.safetensors")
    parser.add_argument("--name", required=True, help="key of the attempt in utils/data/identity_attempts.json")
    parser.add_argument("--note", default="", help="what the attempt changes, in a sentence")
    parser.add_argument("--out", type=Path, default=ATTEMPTS_PATH)
    args = parser.parse_args(argv)
    if not (args.sae / "cfg.json").exists():
        print(f"{args.sae} has no cfg.json: point --sae at a folder written by `python -m utils.train_sae --out ...`.",
              file=sys.stderr)
        return 2
    from utils.model import load_model
    from utils.sae import SparseAutoencoder
    from utils.steering.make_identity_study import DOCS_PATH, STUDY_PATH, docs_page

    cfg = json.loads((args.sae / "cfg.json").read_text(encoding="utf-8"))
    start = time.time()
    result = run_attempt(load_model(), SparseAutoencoder.load(args.sae))
    result.update(note=args.note, train_command=cfg.get("extra", {}).get("command"),
                  train_metrics=cfg.get("extra", {}).get("metrics"),
                  command=f"python -m utils.steering.make_identity_attempt --sae <trained folder> --name {args.name}",
                  seconds=round(time.time() - start))
    attempts = load_attempts(args.out)
    attempts[args.name] = result
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(attempts, indent=1) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    if args.out == ATTEMPTS_PATH:
        DOCS_PATH.write_text(docs_page(json.loads(STUDY_PATH.read_text(encoding="utf-8")), attempts), encoding="utf-8")
    print(f"{time.time() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
