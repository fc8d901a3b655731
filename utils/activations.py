"""Collect one layer's residual stream into a memory-bounded fp16 buffer, and serve shuffled batches.

Why layer 10 of 30 (``blocks.10.hook_resid_post``): steering works well there on this model (a
mean-difference "bridge" direction added at layer 10 makes it talk about the Golden Gate Bridge),
the concepts we look for are formed by then, and collection is cheap because ``stop_at_layer=11``
skips the remaining 19 blocks and the 49k-wide unembedding.

Memory: ``max_tokens`` rows of ``d_model`` fp16 numbers are allocated once (1 M tokens x 576 x 2 bytes
= 1.15 GB; the chapter uses 100 k = 115 MB), so collection can never grow past it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import torch

from utils.memory import release

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge


def hook_name(layer: int) -> str:
    return f"blocks.{layer}.hook_resid_post"


def collect_activations(
    model: "TransformerBridge", token_batches: Iterable[torch.Tensor], layer: int, max_tokens: int,
    dtype: torch.dtype = torch.float16, progress: bool = True,
) -> torch.Tensor:
    """Run each ``(batch, pos)`` token batch up to block ``layer`` and store every position's
    ``blocks.{layer}.hook_resid_post`` until ``max_tokens`` rows are filled. Returns (n, d_model)."""
    from tqdm.auto import tqdm

    name = hook_name(layer)
    buffer = torch.empty(max_tokens, model.cfg.d_model, dtype=dtype)
    filled = 0
    with tqdm(total=max_tokens, desc=f"collecting {name}", unit="tok", disable=not progress) as bar:
        for tokens in token_batches:
            with torch.no_grad():
                _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=name, stop_at_layer=layer + 1)
            acts = cache[name].reshape(-1, model.cfg.d_model)  # (batch * pos, d_model)
            take = min(len(acts), max_tokens - filled)
            buffer[filled : filled + take] = acts[:take].to(dtype).cpu()
            filled += take
            bar.update(take)
            if filled >= max_tokens:
                break
    release()
    return buffer[:filled]


def input_scale(acts: torch.Tensor) -> float:
    """The factor ``s`` with ``mean(||s x||^2) = d_model``: SAE hyper-parameters then transfer across
    layers and models. (Raw ``mean ||x||^2`` at layer 10 is about 19,700, so ``s`` is about 0.17.)"""
    mean_sq = acts.float().pow(2).sum(-1).mean()
    return float((acts.shape[-1] / mean_sq).sqrt())


def shuffled_batches(
    acts: torch.Tensor, batch_size: int, epochs: int = 1, seed: int = 0, scale: float = 1.0
) -> Iterator[torch.Tensor]:
    """Yield float32 batches of ``scale * acts`` rows, reshuffled every epoch; the last partial
    batch of each epoch is dropped so every step sees ``batch_size`` rows."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(acts), generator=g)
        for start in range(0, len(acts) - batch_size + 1, batch_size):
            yield acts[order[start : start + batch_size]].float() * scale


def benchmark_collection(model: "TransformerBridge", batches: list[torch.Tensor], layer: int) -> dict[str, float]:
    """Tokens per second of a bare ``stop_at_layer`` forward vs :func:`collect_activations` on the
    same batches (the issue's target: collection >= 0.9 x bare)."""
    n_tokens = sum(b.numel() for b in batches)
    collect_activations(model, batches[:1], layer, batches[0].numel(), progress=False)  # warm-up
    start = time.perf_counter()
    with torch.no_grad():
        for tokens in batches:
            model(tokens, stop_at_layer=layer + 1)
    bare = n_tokens / (time.perf_counter() - start)
    start = time.perf_counter()
    collect_activations(model, batches, layer, n_tokens, progress=False)
    collected = n_tokens / (time.perf_counter() - start)
    return {"bare_tok_per_s": bare, "collect_tok_per_s": collected, "ratio": collected / bare}


def main() -> int:
    """``python -m utils.activations``: print the collection benchmark on 16 batches of 16 x 128 corpus tokens."""
    from utils import corpus
    from utils.model import load_model

    model = load_model()
    texts = [d["text"] for d in corpus.load_corpus(split="train")]
    batches = list(corpus.token_batches(model.tokenizer, texts, seq_len=128, batch_size=16, max_batches=16))
    result = benchmark_collection(model, batches, layer=10)
    print(f"bare stop_at_layer forward: {result['bare_tok_per_s']:,.0f} tok/s; collection into the fp16 buffer: "
          f"{result['collect_tok_per_s']:,.0f} tok/s; ratio {result['ratio']:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
