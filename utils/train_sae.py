"""Train a sparse autoencoder on stored activations; and the command that trains the course SAE.

    python -m utils.train_sae                       # the course SAE: TopK k=32, d_sae 4608, layer 10
    python -m utils.train_sae --d-sae 16384 --nested-widths 1024 4096 16384 --out utils/data/matryoshka_sae
    python -m utils.train_sae --architecture relu --l1 5.0 --out /tmp/relu_sae

Recipe (measured on this CPU, see utils/data/course_sae/metrics.json): inputs scaled so that
``mean ||x||^2 = d_in``; ``b_dec`` initialised at the data mean; Adam, lr 1e-3 with a short linear
warm-up and a linear decay over the last 20 % of steps; batch 4096; decoder rows kept at unit norm;
AuxK (coefficient 1/32, k_aux = d_in / 2) on latents that have not fired for ``dead_after`` tokens;
for ReLU SAEs the L1 coefficient warms up linearly over the first 25 % of steps (a short schedule
collapsed onto a few latents in a prototype). After training the input scale is folded into the
weights, so the saved SAE reads raw activations.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from utils.activations import input_scale, shuffled_batches
from utils.memory import release
from utils.sae import COURSE_SAE_DIR, SAEConfig, SparseAutoencoder, auxk_loss, l1_penalty, nested_topk_loss



@dataclass
class TrainConfig:
    lr: float = 1e-3
    batch_size: int = 4096
    epochs: int = 4  # passes over the stored activations (the corpus is ~0.5 M tokens)
    warmup_steps: int = 50  # linear lr warm-up: Adam's first steps are noisy
    decay_fraction: float = 0.2  # linear lr decay to 0 over the last 20 % of steps
    auxk_coefficient: float = 1 / 32  # Gao et al. (2024)
    k_aux: int | None = None  # default d_in // 2
    dead_after: int = 200_000  # tokens without firing before a latent counts as dead (for AuxK)
    l1_warmup_fraction: float = 0.25  # ReLU only
    seed: int = 0
    log_every: int = 20


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Warm-up, constant, then linear decay to zero."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    decay_start = int(total * (1 - cfg.decay_fraction))
    if step >= decay_start:
        return max(0.0, (total - step) / max(1, total - decay_start))
    return 1.0


def train_sae(sae: SparseAutoencoder, acts: torch.Tensor, cfg: TrainConfig = TrainConfig(),
              progress: bool = True, bf16: bool | None = None) -> list[dict]:
    """Train ``sae`` in place on ``acts`` (n, d_in), then fold the input scale into it.

    Returns the training history: one dict per ``log_every`` steps with step, lr, loss, fvu, l0 and
    the fraction of dead latents. ``bf16=None`` uses bfloat16 matmuls when the CPU supports them.
    """
    from tqdm.auto import tqdm

    if bf16 is None:
        bf16 = torch.cpu._is_avx512_bf16_supported() if hasattr(torch.cpu, "_is_avx512_bf16_supported") else False
    scale = input_scale(acts)
    with torch.no_grad():
        sae.b_dec.copy_(acts.float().mean(0) * scale)
    steps_per_epoch = len(acts) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    if total < 1:
        raise ValueError(f"{len(acts)} activations make no batch of {cfg.batch_size}")
    optimiser = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: lr_factor(step, total, cfg))
    k_aux = cfg.k_aux or sae.cfg.d_in // 2
    since_fired = torch.zeros(sae.cfg.d_sae)
    history: list[dict] = []
    sae.train()
    batches = shuffled_batches(acts, cfg.batch_size, cfg.epochs, cfg.seed, scale)
    widths = sae.cfg.nested_widths
    for step, x in enumerate(tqdm(batches, total=total, desc="training SAE", disable=not progress)):
        per_width: dict[int, float] = {}
        variance = (x - x.mean(0)).pow(2).sum(-1).mean()
        if widths:  # Matryoshka: every prefix reconstructs on its own
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                pre = sae.pre_activations(x)
            pre = pre.float()
            nested = nested_topk_loss(sae, x, pre, widths)
            loss, per_width, x_hat, fired, l0 = nested.loss, nested.fvu, nested.x_hat, nested.fired, nested.l0
            recon = (x - x_hat).pow(2).sum(-1).mean()
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                pre = sae.pre_activations(x)
                z = sae.activation(pre)
                x_hat = sae.decode(z)
            pre, z, x_hat = pre.float(), z.float(), x_hat.float()
            recon = (x - x_hat).pow(2).sum(-1).mean()
            loss = recon / variance  # normalised MSE (= FVU on this batch)
            fired, l0 = (z != 0).any(0), float((z != 0).float().sum(-1).mean())
        since_fired += len(x)
        since_fired[fired] = 0
        dead = since_fired > cfg.dead_after
        if sae.cfg.architecture == "topk":
            loss = loss + cfg.auxk_coefficient * auxk_loss(sae, x, x_hat, pre, dead, k_aux)
        else:
            warm = min(1.0, step / max(1, cfg.l1_warmup_fraction * total))
            loss = loss + warm * sae.cfg.l1_coefficient * l1_penalty(z, sae.W_dec) / variance.sqrt()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_parallel_gradient_()
        optimiser.step()
        scheduler.step()
        sae.normalise_decoder_()
        if step % cfg.log_every == 0 or step == total - 1:
            history.append({
                "step": step, "tokens": (step + 1) * cfg.batch_size, "lr": scheduler.get_last_lr()[0],
                "loss": float(loss.detach()), "fvu": float((recon / variance).detach()), "l0": l0,
                "dead_fraction": float(dead.float().mean()),
                **{f"fvu_{m}": v for m, v in per_width.items()},
            })
    sae.eval()
    del optimiser, scheduler
    release()
    sae.fold_input_scale_(scale)
    sae.cfg.extra["input_scale"] = scale
    return history


def main(argv: list[str]) -> int:
    import argparse

    from utils import corpus
    from utils.activations import collect_activations
    from utils.model import load_model
    from utils.sae_metrics import evaluate_sae

    p = argparse.ArgumentParser(prog="python -m utils.train_sae", description=__doc__.split("\n\n")[0])
    p.add_argument("--layer", type=int, default=10)
    p.add_argument("--d-sae", type=int, default=4608)
    p.add_argument("--architecture", choices=("topk", "relu"), default="topk")
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--nested-widths", type=int, nargs="+", default=None,
                   help="Matryoshka prefix widths, increasing, ending at --d-sae (e.g. 1024 4096 16384)")
    p.add_argument("--l1", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=1_000_000, help="activations collected from the corpus")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--eval-batches", type=int, default=40, help="8 x 128-token batches per evaluation set")
    p.add_argument("--out", type=Path, default=COURSE_SAE_DIR)
    args = p.parse_args(argv)

    t0 = time.perf_counter()
    model = load_model()
    tok = model.tokenizer
    train_texts = [d["text"] for d in corpus.load_corpus(split="train")]
    batches = corpus.token_batches(tok, train_texts, seq_len=args.seq_len, batch_size=32, shuffle_seed=0)
    acts = collect_activations(model, batches, args.layer, args.max_tokens)
    t_collect = time.perf_counter() - t0

    cfg = SAEConfig(d_in=model.cfg.d_model, d_sae=args.d_sae, architecture=args.architecture,
                    k=args.k if args.architecture == "topk" else None, l1_coefficient=args.l1,
                    hook_name=f"blocks.{args.layer}.hook_resid_post", hook_layer=args.layer,
                    nested_widths=args.nested_widths)
    sae = SparseAutoencoder(cfg)
    train_cfg = TrainConfig(epochs=args.epochs)
    t1 = time.perf_counter()
    history = train_sae(sae, acts, train_cfg)
    t_train = time.perf_counter() - t1

    with torch.no_grad():  # evaluate exactly what ships: the fp16-rounded weights
        for param in sae.parameters():
            param.copy_(param.half().float())
    eval_sets = {
        "model_text_val": [d["text"] for d in corpus.load_corpus(split="val", kind="model")],
        "human_everyday_text": corpus.human_eval_texts(),
        "human_pydoc_val": [d["text"] for d in corpus.load_corpus(split="val", kind="human")],
    }
    metrics: dict = {}
    nested_metrics: dict = {}
    for name, texts in eval_sets.items():
        eval_batches = list(corpus.token_batches(tok, texts, seq_len=args.seq_len, batch_size=8, shuffle_seed=0,
                                                 max_batches=args.eval_batches))
        metrics[name] = evaluate_sae(model, sae, eval_batches, progress=True)
        for width in (cfg.nested_widths or [])[:-1]:  # every smaller prefix, as an SAE of its own
            nested_metrics.setdefault(str(width), {})[name] = evaluate_sae(model, sae.prefix(width), eval_batches, progress=True)
    if cfg.nested_widths:
        nested_metrics[str(cfg.d_sae)] = metrics
    sae.cfg.extra.update({
        "command": "python -m utils.train_sae " + " ".join(argv),
        "train_activations": len(acts), "train_steps": len(acts) // train_cfg.batch_size * train_cfg.epochs,
        "activations_seen": len(acts) // train_cfg.batch_size * train_cfg.epochs * train_cfg.batch_size,
        "train_config": asdict(train_cfg), "collect_seconds": round(t_collect), "train_seconds": round(t_train),
        "corpus": "utils/data/course_corpus.jsonl.gz (split=train)", "metrics": metrics,
        **({"nested_metrics": nested_metrics} if nested_metrics else {}),
    })
    sae.save(args.out, dtype=torch.float16)
    (args.out / "history.json").write_text(json.dumps(history) + "\n")
    print(json.dumps(sae.cfg.extra, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
