"""Run the course SAE over many texts once, and keep what the dashboards need.

Encoding the whole course corpus (≈ 0.5 M tokens) takes a few minutes on two cores, too slow for a
notebook cell, so ``python -m utils.feature_scan`` does it once and writes
``utils/data/course_sae/feature_stats.safetensors`` (≈ 1 MB): for every latent, its firing count, its
activation histogram and its top-activating documents (one example per document, the position of
the document's maximum). Chapter 02 loads that file; learners recompute the same quantities on a
small slice to see that they agree.

Texts are tokenised one per row, with BOS in front (as in training), cut at ``max_len`` tokens and
right-padded: attention is causal, so padding after a text cannot change the activations on it.
Position 0 (BOS) is the same for every text and is left out of every statistic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from utils.memory import release
from utils.sae import COURSE_SAE_DIR

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.sae import SparseAutoencoder

STATS_PATH = COURSE_SAE_DIR / "feature_stats.safetensors"
HIST_EDGES = torch.logspace(-2, 2, 41)  # activation histogram bins: 0.01 .. 100, 40 log-spaced bins


def tokenize_texts(tokenizer: Any, texts: Sequence[str], max_len: int = 256) -> list[list[int]]:
    """One token list per text: BOS + the text's tokens, cut to ``max_len`` tokens in all."""
    rows = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        if ids and ids[0] == tokenizer.bos_token_id:
            ids = ids[1:]
        rows.append([tokenizer.bos_token_id] + ids[: max_len - 1])
    return rows


def padded_batches(rows: Sequence[list[int]], batch_size: int, pad_id: int) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """Group rows of similar length: yields ``(row_indices, tokens (b, pos), mask (b, pos))`` where
    ``mask`` is true on real tokens after BOS."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(rows[i]) for i in idx)
        tokens = torch.full((len(idx), width), pad_id)
        mask = torch.zeros(len(idx), width, dtype=torch.bool)
        for r, i in enumerate(idx):
            tokens[r, : len(rows[i])] = torch.tensor(rows[i])
            mask[r, 1 : len(rows[i])] = True
        yield idx, tokens, mask


def encode_batch(model: "TransformerBridge", sae: "SparseAutoencoder", tokens: torch.Tensor) -> torch.Tensor:
    """SAE latents of every position: (batch, pos) tokens -> (batch, pos, d_sae)."""
    name = sae.cfg.hook_name
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=name, stop_at_layer=sae.cfg.hook_layer + 1)
        return sae.encode(cache[name].to(sae.W_enc.device, sae.W_enc.dtype))


def pooled_latents(
    model: "TransformerBridge", sae: "SparseAutoencoder", texts: Sequence[str], batch_size: int = 8, max_len: int = 256,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per text, the mean and the max of every latent over its tokens (BOS excluded).

    Returns ``(mean, max)``, each (n_texts, d_sae), in the order of ``texts``."""
    from tqdm.auto import tqdm

    from utils.features import max_pool, mean_pool

    rows = tokenize_texts(model.tokenizer, texts, max_len)
    means = torch.zeros(len(texts), sae.cfg.d_sae)
    maxes = torch.zeros(len(texts), sae.cfg.d_sae)
    batches = list(padded_batches(rows, batch_size, model.tokenizer.eos_token_id))
    for idx, tokens, mask in tqdm(batches, desc="encoding texts", disable=not progress):
        z = encode_batch(model, sae, tokens)
        means[idx] = mean_pool(z, mask).cpu()
        maxes[idx] = max_pool(z, mask).cpu()
    release()
    return means, maxes


@dataclass
class FeatureStats:
    """Corpus statistics of every latent. Shapes: ``fire_counts``/``act_sums`` (d_sae,),
    ``hist`` (d_sae, 40) counts in the bins of ``HIST_EDGES``, ``top_values``/``top_docs``/``top_pos``
    (d_sae, top_n): the documents with the largest maximum activation, largest first (value 0 and
    doc -1 where a latent fired in fewer than ``top_n`` documents)."""

    n_tokens: int
    fire_counts: torch.Tensor
    act_sums: torch.Tensor
    hist: torch.Tensor
    top_values: torch.Tensor
    top_docs: torch.Tensor
    top_pos: torch.Tensor
    doc_ids: list[str]
    max_len: int

    @property
    def density(self) -> torch.Tensor:
        return self.fire_counts.double() / self.n_tokens

    def save(self, path: Path = STATS_PATH, metadata: dict[str, Any] | None = None) -> Path:
        from safetensors.torch import save_file

        tensors = {
            "fire_counts": self.fire_counts.to(torch.int64), "act_sums": self.act_sums.float(),
            "hist": self.hist.to(torch.int32), "top_values": self.top_values.half(),
            "top_docs": self.top_docs.to(torch.int32), "top_pos": self.top_pos.to(torch.int16),
        }
        meta = {"n_tokens": str(self.n_tokens), "max_len": str(self.max_len), "doc_ids": json.dumps(self.doc_ids)}
        meta.update({k: str(v) for k, v in (metadata or {}).items()})
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path = STATS_PATH) -> "FeatureStats":
        from safetensors import safe_open

        if not path.exists():
            raise FileNotFoundError(f"{path} is missing; rebuild it with `python -m utils.feature_scan`.")
        with safe_open(str(path), "pt") as f:
            meta = f.metadata()
            t = {k: f.get_tensor(k) for k in f.keys()}
        return cls(
            n_tokens=int(meta["n_tokens"]), fire_counts=t["fire_counts"], act_sums=t["act_sums"], hist=t["hist"],
            top_values=t["top_values"].float(), top_docs=t["top_docs"].long(), top_pos=t["top_pos"].long(),
            doc_ids=json.loads(meta["doc_ids"]), max_len=int(meta["max_len"]),
        )


class _Accumulator:
    """Running per-latent statistics of one SAE width over a scan (see :class:`FeatureStats`)."""

    def __init__(self, d_sae: int, n_docs: int) -> None:
        self.fire = torch.zeros(d_sae, dtype=torch.int64)
        self.sums = torch.zeros(d_sae, dtype=torch.float64)
        self.hist = torch.zeros(d_sae, len(HIST_EDGES) - 1, dtype=torch.int64)
        self.doc_max = torch.zeros(n_docs, d_sae, dtype=torch.float16)
        self.doc_argmax = torch.zeros(n_docs, d_sae, dtype=torch.int16)
        self.n_tokens = 0

    def add(self, idx: list[int], z: torch.Tensor, mask: torch.Tensor) -> None:
        """z: (b, pos, d_sae) latents of the documents ``idx``; mask: (b, pos) real tokens after BOS."""
        z = z * mask.unsqueeze(-1)  # 0 off-text
        flat = z[mask]  # (real tokens, d_sae)
        self.n_tokens += len(flat)
        self.fire += (flat > 0).sum(0)
        self.sums += flat.sum(0).double()
        rows_i, cols = flat.nonzero(as_tuple=True)
        bins = torch.bucketize(flat[rows_i, cols], HIST_EDGES[1:-1])
        self.hist.view(-1).index_add_(0, cols * self.hist.shape[1] + bins, torch.ones_like(cols))
        values, positions = z.max(1)  # (b, d_sae)
        self.doc_max[idx] = values.half()
        self.doc_argmax[idx] = positions.to(torch.int16)

    def finish(self, docs: Sequence[dict], top_n: int, max_len: int) -> FeatureStats:
        top_values, top_docs = self.doc_max.float().T.topk(top_n, dim=1)  # (d_sae, top_n)
        top_pos = self.doc_argmax.T.long().gather(1, top_docs)
        top_docs = torch.where(top_values > 0, top_docs, -1)
        return FeatureStats(
            n_tokens=self.n_tokens, fire_counts=self.fire, act_sums=self.sums.float(), hist=self.hist, top_values=top_values,
            top_docs=top_docs, top_pos=top_pos, doc_ids=[d["id"] for d in docs], max_len=max_len,
        )


def scan_corpus(
    model: "TransformerBridge", sae: "SparseAutoencoder", docs: Sequence[dict], top_n: int = 20, batch_size: int = 8,
    max_len: int = 256, progress: bool = True,
) -> tuple[FeatureStats, torch.Tensor]:
    """Encode every document and accumulate :class:`FeatureStats`. Also returns the per-document
    maximum of every latent, (n_docs, d_sae) float16, for choosing detector thresholds."""
    stats, doc_max = scan_corpus_widths(model, sae, [sae.cfg.d_sae], docs, top_n, batch_size, max_len, progress)
    return stats[sae.cfg.d_sae], doc_max[sae.cfg.d_sae]


def scan_corpus_widths(
    model: "TransformerBridge", sae: "SparseAutoencoder", widths: Sequence[int], docs: Sequence[dict], top_n: int = 20,
    batch_size: int = 8, max_len: int = 256, progress: bool = True,
) -> tuple[dict[int, FeatureStats], dict[int, torch.Tensor]]:
    """:func:`scan_corpus` for several prefixes of one (Matryoshka) SAE in a single pass: the model and
    the encoder run once per batch, and each width ``m`` keeps ``TopK_k(pre[..., :m])`` (its own top k,
    as :meth:`SparseAutoencoder.prefix` does). Returns ``({width: stats}, {width: doc_max})``."""
    from tqdm.auto import tqdm

    from utils.sae import topk_relu

    if sae.cfg.architecture != "topk" and list(widths) != [sae.cfg.d_sae]:
        raise ValueError("several widths need a TopK SAE")
    rows = tokenize_texts(model.tokenizer, [d["text"] for d in docs], max_len)
    accumulators = {w: _Accumulator(w, len(docs)) for w in widths}
    name = sae.cfg.hook_name
    batches = list(padded_batches(rows, batch_size, model.tokenizer.eos_token_id))
    with tqdm(total=sum(len(r) - 1 for r in rows), desc="scanning corpus", unit="tok", disable=not progress) as bar:
        for idx, tokens, mask in batches:
            with torch.no_grad():
                _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=name, stop_at_layer=sae.cfg.hook_layer + 1)
                pre = sae.pre_activations(cache[name].to(sae.W_enc.device, sae.W_enc.dtype)).cpu()  # (b, pos, d_sae)
                for w, acc in accumulators.items():
                    z = topk_relu(pre[..., :w], sae.cfg.k) if sae.cfg.architecture == "topk" else torch.relu(pre)
                    acc.add(idx, z, mask)
            bar.update(int(mask.sum()))
    release()
    stats = {w: acc.finish(docs, top_n, max_len) for w, acc in accumulators.items()}
    return stats, {w: acc.doc_max for w, acc in accumulators.items()}


def topk_codes(
    model: "TransformerBridge", sae: "SparseAutoencoder", texts: Sequence[str], widths: Sequence[int], max_len: int = 128,
    batch_size: int = 8, progress: bool = False,
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Every real token's active latents at each nested width of a TopK (Matryoshka) SAE, stored sparsely:
    ``{width: (indices, values)}``, each (n_tokens, k), tokens in text order (BOS and padding left out).
    At width ``m`` the codes are ``TopK_k(pre[:, :m])``, exactly what ``sae.prefix(m).encode`` gives."""
    from tqdm.auto import tqdm

    rows = tokenize_texts(model.tokenizer, texts, max_len)
    name = sae.cfg.hook_name
    found: dict[int, list[tuple[int, torch.Tensor, torch.Tensor]]] = {w: [] for w in widths}
    for idx, tokens, mask in tqdm(list(padded_batches(rows, batch_size, model.tokenizer.eos_token_id)),
                                  desc="encoding", disable=not progress):
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=name, stop_at_layer=sae.cfg.hook_layer + 1)
            pre = sae.pre_activations(cache[name].to(sae.W_enc.device, sae.W_enc.dtype)).cpu()  # (b, pos, d_sae)
        for w in widths:
            values, indices = pre[..., :w].topk(sae.cfg.k, dim=-1)  # (b, pos, k)
            for r, i in enumerate(idx):
                found[w].append((i, indices[r][mask[r]], torch.relu(values[r][mask[r]])))
    release()
    codes = {}
    for w, parts in found.items():
        parts.sort(key=lambda part: part[0])
        codes[w] = (torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts]))
    return codes


def matryoshka_stats_path(width: int) -> Path:
    """Where the wide Matryoshka SAE's statistics for its prefix of ``width`` latents live."""
    from utils.sae import MATRYOSHKA_SAE_DIR

    return MATRYOSHKA_SAE_DIR / f"feature_stats_{width}.safetensors"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=STATS_PATH)
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--max-len", type=int, default=256)
    parser.add_argument("--sae", choices=("course", "matryoshka"), default="course",
                        help="matryoshka: scan every nested width of the wide SAE in one pass")
    args = parser.parse_args(argv)

    from utils.corpus import load_corpus
    from utils.model import load_model
    from utils.sae import load_course_sae, load_matryoshka_sae

    start = time.time()
    model = load_model()
    if args.sae == "course":  # the corpus the course SAE was trained on (its documents come first)
        docs = load_corpus(parts=["base"])
        stats, _ = scan_corpus(model, load_course_sae(), docs, top_n=args.top_n, max_len=args.max_len)
        stats.save(args.out, metadata={"command": "python -m utils.feature_scan", "seconds": round(time.time() - start)})
        print(f"scanned {stats.n_tokens:,} tokens of {len(docs)} documents in {time.time() - start:.0f} s -> {args.out}")
        return 0
    sae, docs = load_matryoshka_sae(), load_corpus()
    by_width, _ = scan_corpus_widths(model, sae, sae.cfg.nested_widths or [sae.cfg.d_sae], docs, top_n=args.top_n, max_len=args.max_len)
    for width, stats in by_width.items():
        path = stats.save(matryoshka_stats_path(width), metadata={
            "command": "python -m utils.feature_scan --sae matryoshka", "seconds": round(time.time() - start), "width": width})
        print(f"width {width}: {stats.n_tokens:,} tokens of {len(docs)} documents -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
