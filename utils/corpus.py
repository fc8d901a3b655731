"""The course corpus: modern English written by the embedded model itself, plus human-written prose.

No modern-English corpus installs from PyPI, and the course cannot reach a dataset hub, so the course
ships its own (``utils/data/course_corpus.jsonl.gz``). It is built by one command, reproducibly::

    python -m utils.corpus build --seed 0      # ≈ 1 h on 2 CPU cores; resumable

Each request in a seeded plan (:func:`plan`) pairs a topic with a format ("Write a short story about
the Golden Gate Bridge.") and is answered by SmolLM2-135M-Instruct with temperature sampling. About a
third of the documents keep the whole chat (template tokens included) so the SAE also sees chat
activations. CPython's ``pydoc_data`` topics add ≈ 100 k tokens of human-written technical prose.

What training on model-written text means: the SAE learns the features the model uses *on its own
writing*, which is fluent, generic and repetitive compared with human text. Metrics are therefore
always also reported on human-written text the SAE never saw (:func:`human_eval_texts`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import re
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from utils import corpus_topics as topics

if TYPE_CHECKING:
    import torch

DATA_DIR = Path(__file__).resolve().parent / "data"
CORPUS_PATH = DATA_DIR / "course_corpus.jsonl.gz"
STATS_PATH = DATA_DIR / "course_corpus.stats.json"
HUMAN_EVAL_PATH = DATA_DIR / "human_eval.txt"
VAL_FRACTION = 0.05  # documents held out from SAE training, chosen by a hash of their id


@dataclass(frozen=True)
class Request:
    id: str  # stable, e.g. "gen-00042"
    topic: str
    format: str  # "story", "chat", ...
    instruction: str  # the user turn sent to the model


def plan(seed: int = 0) -> list[Request]:
    """The seeded list of generation requests (the same seed gives the same list, in order).

    Every topic gets 8 of the 12 formats (a seeded choice); overconfident-user scenes get
    2 formats x 3 samples.
    """
    rng = random.Random(seed)
    concept = topics.BRIDGES_AND_LANDMARKS + topics.SAN_FRANCISCO + topics.PRAISE_AND_FLATTERY + topics.AI_ASSISTANTS
    pairs: list[tuple[str, tuple[str, str]]] = []
    for topic in concept:
        pairs += [(topic, f) for f in rng.sample(topics.FORMATS, 8)]
    for topic in topics.GENERAL:
        pairs += [(topic, f) for f in rng.sample(topics.FORMATS, 8)]
    for topic in topics.OVERCONFIDENT_USERS:
        pairs += [(topic, f) for f in topics.OVERCONFIDENT_FORMATS for _ in range(3)]
    rng.shuffle(pairs)
    return [Request(f"gen-{i:05d}", topic, fmt, template.format(topic=topic)) for i, (topic, (fmt, template)) in enumerate(pairs)]


def plan_extension(seed: int = 0) -> list[Request]:
    """The seeded "Golden Gate, for real" extension (ids ``gg-NNNNN``): every topic of
    :func:`utils.corpus_topics.extension_topics` in 6 of the 12 formats. It is generated after the base
    plan, as its own part, so adding it never changes a base document."""
    rng = random.Random(seed + 1)
    pairs = [(topic, f) for topic in topics.extension_topics() for f in rng.sample(topics.FORMATS, topics.EXTENSION_FORMATS_PER_TOPIC)]
    rng.shuffle(pairs)
    return [Request(f"gg-{i:05d}", topic, fmt, template.format(topic=topic)) for i, (topic, (fmt, template)) in enumerate(pairs)]


# The corpus is generated in parts; each part has its own request plan and its own resumable partial
# file, and a part's batch seeds depend only on its own position, so parts never disturb each other.
PARTS = {"base": plan, "golden_gate": plan_extension}
PART_PREFIX = {"base": "gen-", "golden_gate": "gg-"}  # document ids of each part start with this


def is_validation(doc_id: str) -> bool:
    """Deterministic ~5 % hold-out by a hash of the document id (independent of generation order)."""
    return int(hashlib.sha256(doc_id.encode()).hexdigest()[:8], 16) / 16**8 < VAL_FRACTION


def distinct_ngram_ratio(words: Sequence[str], n: int = 4) -> float:
    """Distinct n-grams / all n-grams: near 1 for normal prose, low for text stuck in a loop."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def compression_ratio(text: str) -> float:
    """zlib-compressed size / raw size: ordinary model prose stays above ~0.35; a text stuck repeating
    itself (even inside one long "word" such as ``List_List_List_...``) compresses far better."""
    raw = text.encode()
    return len(zlib.compress(raw, 9)) / max(1, len(raw))


def clean_documents(docs: list[dict], min_words: int = 20, min_distinct: float = 0.5,
                    min_compression: float = 0.30) -> tuple[list[dict], dict]:
    """Drop exact duplicates (after whitespace/case normalisation), very short texts and degenerate
    loops (few distinct word 4-grams, or a very low compression ratio)."""
    seen: set[str] = set()
    kept: list[dict] = []
    dropped = {"duplicate": 0, "short": 0, "loop": 0}
    for doc in docs:
        words = doc["text"].split()
        key = hashlib.sha256(" ".join(words).lower().encode()).hexdigest()
        if key in seen:
            dropped["duplicate"] += 1
        elif len(words) < min_words:
            dropped["short"] += 1
        elif distinct_ngram_ratio(words) < min_distinct or compression_ratio(doc["text"]) < min_compression:
            dropped["loop"] += 1
        else:
            seen.add(key)
            kept.append(doc)
    return kept, dropped


def pydoc_documents(max_chars: int = 2000) -> list[dict]:
    """CPython's ``pydoc_data.topics`` help texts, split at blank lines into chunks of <= max_chars."""
    from pydoc_data.topics import topics as help_topics

    docs = []
    for name in sorted(help_topics):
        chunk: list[str] = []
        size = 0
        part = 0
        for para in re.split(r"\n\s*\n", help_topics[name]):
            if size + len(para) > max_chars and chunk:
                docs.append({"id": f"pydoc-{name}-{part}", "kind": "human", "topic": f"python: {name}", "format": "pydoc", "text": "\n\n".join(chunk)})
                chunk, size, part = [], 0, part + 1
            chunk.append(para)
            size += len(para)
        if chunk:
            docs.append({"id": f"pydoc-{name}-{part}", "kind": "human", "topic": f"python: {name}", "format": "pydoc", "text": "\n\n".join(chunk)})
    return docs


def generate_documents(
    requests: Sequence[Request], out_path: Path, seed: int = 0, batch_size: int = 64,
    max_new_tokens: int = 256, temperature: float = 0.8, top_p: float = 0.95, bf16: bool = True,
) -> None:
    """Answer every request with the embedded model, appending one JSON line per document to
    ``out_path``. Resumable: requests already in the file are skipped, and each batch is seeded by
    (seed, batch index), so an interrupted run continues exactly as an uninterrupted one would.

    ``bf16`` runs the matmuls in bfloat16 (autocast) when the CPU supports it natively: measured
    263 vs 136 tok/s here. The exact text then depends on the CPU type; the recipe does not."""
    import torch
    from tqdm.auto import tqdm

    from utils.generation import chat_prompt, generate_plain
    from utils.model import load_hf_model

    hf, tokenizer = load_hf_model()
    done = set()
    if out_path.exists():
        with out_path.open() as f:
            done = {json.loads(line)["id"] for line in f if line.strip()}
    batches = [list(requests[i : i + batch_size]) for i in range(0, len(requests), batch_size)]
    with out_path.open("a") as out, tqdm(total=len(requests), initial=len(done), desc="corpus", unit="doc") as bar:
        for index, batch in enumerate(batches):
            if all(r.id in done for r in batch):
                continue
            prompts = [chat_prompt(tokenizer, r.instruction) for r in batch]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                answers = generate_plain(hf, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                                         top_p=top_p, seed=seed * 1_000_003 + index, batch_size=batch_size)
            for request, prompt, answer in zip(batch, prompts, answers):
                if request.id in done:
                    continue
                answer = answer.strip()
                text = prompt + answer + tokenizer.eos_token if request.format == "chat" else answer
                record = {"id": request.id, "kind": "model", "topic": request.topic, "format": request.format, "text": text}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            bar.update(sum(r.id not in done for r in batch))


def partial_path(out_path: Path, seed: int, part: str) -> Path:
    """Where a part's raw generations accumulate (one JSON line per answered request)."""
    suffix = "" if part == "base" else f".{part}"
    return out_path.with_name(out_path.name.replace(".jsonl.gz", f".seed{seed}{suffix}.partial.jsonl"))


def build(seed: int = 0, out_path: Path = CORPUS_PATH, limit: int | None = None, parts: Sequence[str] = tuple(PARTS)) -> dict:
    """Generate (or resume) every part, clean, add pydoc prose, and write the compressed corpus + stats."""
    import torch

    t0 = time.perf_counter()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    generated: list[dict] = []
    n_requests = 0
    for part in parts:
        requests = PARTS[part](seed)[:limit]
        n_requests += len(requests)
        partial = partial_path(out_path, seed, part)
        generate_documents(requests, partial, seed=seed if part == "base" else seed + 7919 * (list(PARTS).index(part)), bf16=bf16)
        with partial.open() as f:
            raw = [json.loads(line) for line in f if line.strip()]
        order = {r.id: i for i, r in enumerate(requests)}
        generated += sorted((d for d in raw if d["id"] in order), key=lambda d: order[d["id"]])
    kept, dropped = clean_documents(generated)
    # Order: base documents, pydoc prose, then each later part (the order ``extend`` produces).
    base = [d for d in kept if d["id"].startswith(PART_PREFIX["base"])]
    docs = base + pydoc_documents() + [d for d in kept if not d["id"].startswith(PART_PREFIX["base"])]
    for doc in docs:
        doc["split"] = "val" if is_validation(doc["id"]) else "train"
    tmp = out_path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as f:
        for doc in docs:
            f.write(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n")
    tmp.replace(out_path)
    stats = corpus_stats(docs)
    stats.update({"seed": seed, "parts": list(parts), "requests": n_requests, "dropped": dropped, "bf16_generation": bf16,
                  "command": f"python -m utils.corpus build --seed {seed}", "build_seconds": round(time.perf_counter() - t0)})
    out_path.with_name(out_path.name.replace(".jsonl.gz", ".stats.json")).write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def extend(part: str, seed: int = 0, out_path: Path = CORPUS_PATH) -> dict:
    """Generate one part and merge it into the *existing* corpus file (base documents untouched).

    This is how the shipped corpus gained its ``golden_gate`` part without regenerating the base part
    (whose exact text depends on the CPU's bfloat16 kernels). ``build`` with all parts gives the same
    recipe from scratch."""
    import torch

    if part == "base" or part not in PARTS:
        raise ValueError(f"part must be one of {[p for p in PARTS if p != 'base']}, got {part!r}")
    t0 = time.perf_counter()
    existing = [d for d in load_corpus(path=out_path) if not d["id"].startswith(PART_PREFIX[part])]
    requests = PARTS[part](seed)
    partial = partial_path(out_path, seed, part)
    bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
    generate_documents(requests, partial, seed=seed + 7919 * list(PARTS).index(part), bf16=bf16)
    with partial.open() as f:
        raw = {d["id"]: d for d in (json.loads(line) for line in f if line.strip())}
    generated = [raw[r.id] for r in requests if r.id in raw]
    model_docs = [d for d in existing if d["kind"] == "model"]
    kept, dropped = clean_documents(model_docs + generated)  # drops duplicates of existing documents too
    new_docs = [d for d in kept if d["id"].startswith(PART_PREFIX[part])]
    for doc in new_docs:
        doc["split"] = "val" if is_validation(doc["id"]) else "train"
    # Appended: every existing document keeps its index, so statistics saved by index stay valid.
    docs = existing + new_docs
    tmp = out_path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8", compresslevel=9) as f:
        for doc in docs:
            f.write(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n")
    tmp.replace(out_path)
    stats_path = out_path.with_name(out_path.name.replace(".jsonl.gz", ".stats.json"))
    old = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    stats = corpus_stats(docs)
    again = part in old.get("parts", [])
    base_command = old.get("command", f"python -m utils.corpus build --seed {seed} --parts base")
    stats.update({"seed": seed, "parts": old.get("parts", ["base"]) + ([] if again else [part]),
                  "requests": old.get("requests", 0) + (0 if again else len(requests)),
                  "dropped": old.get("dropped", {}), f"dropped_{part}": dropped, "bf16_generation": bf16,
                  "command": base_command if again else base_command + f" && python -m utils.corpus extend {part} --seed {seed}",
                  "build_seconds": old.get("build_seconds"), f"{part}_seconds": round(time.perf_counter() - t0)})
    stats_path.write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def corpus_stats(docs: Sequence[dict]) -> dict:
    """Document and token counts by kind and split (tokens counted with the model's tokenizer)."""
    from utils.model import load_hf_tokenizer

    tokenizer = load_hf_tokenizer()
    stats: dict[str, Any] = {"documents": len(docs), "tokens": 0, "by_kind": {}, "by_split": {}}
    for doc in docs:
        n = len(tokenizer(doc["text"], add_special_tokens=False).input_ids)
        stats["tokens"] += n
        for key, value in (("by_kind", doc["kind"]), ("by_split", doc["split"])):
            entry = stats[key].setdefault(value, {"documents": 0, "tokens": 0})
            entry["documents"] += 1
            entry["tokens"] += n
    return stats


def part_of(doc_id: str) -> str:
    """The corpus part a document belongs to (pydoc prose counts as part of the base corpus)."""
    for part, prefix in PART_PREFIX.items():
        if doc_id.startswith(prefix):
            return part
    return "base"


def load_corpus(split: str | None = None, kind: str | None = None, path: Path = CORPUS_PATH,
                parts: Sequence[str] | None = None) -> list[dict]:
    """The shipped corpus as a list of ``{"id", "kind", "topic", "format", "split", "text"}`` dicts,
    optionally filtered by ``split`` ("train"/"val"), ``kind`` ("model"/"human") and ``parts`` (e.g.
    ``["base"]``: the corpus before the Golden Gate extension, on which the 4,608-latent course SAE was
    trained and scanned; its documents come first, so indices into it are indices into the whole)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with `python -m utils.corpus build --seed 0`.")
    for value, allowed in ((split, ("train", "val")), (kind, ("model", "human"))):
        if value is not None and value not in allowed:
            raise ValueError(f"expected one of {allowed}, got {value!r}")
    if parts is not None and not set(parts) <= set(PARTS):
        raise ValueError(f"parts must be among {list(PARTS)}, got {list(parts)}")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f if line.strip()]
    return [d for d in docs if (split is None or d["split"] == split) and (kind is None or d["kind"] == kind)
            and (parts is None or part_of(d["id"]) in parts)]


def human_eval_texts(path: Path = HUMAN_EVAL_PATH) -> list[str]:
    """Human-written everyday English written for the course (never used for training): one
    paragraph per blank-line-separated block of ``utils/data/human_eval.txt``."""
    return [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]


def stream_hub_texts(name: str = "HuggingFaceFW/fineweb-edu", split: str = "train", text_field: str = "text",
                     max_docs: int = 10_000, config: str | None = None) -> Iterator[str]:
    """Stream up to ``max_docs`` texts of a real dataset from the Hugging Face hub (online only), e.g.
    to train an SAE on human-written web text instead of the course corpus::

        texts = list(corpus.stream_hub_texts("HuggingFaceFW/fineweb-edu", max_docs=5_000))
        batches = corpus.token_batches(tokenizer, texts)

    Needs the ``datasets`` package (``pip install datasets``, not part of the offline environment).
    Offline it raises at once, saying what to do, instead of hanging on the network.
    """
    from utils.model import ModelUnavailableError, hub_reachable

    if not hub_reachable():
        raise ModelUnavailableError(
            f"Cannot stream '{name}': the Hugging Face hub is unreachable (offline, or HF_HUB_OFFLINE=1). "
            "Use the shipped course corpus instead: corpus.load_corpus()."
        )
    try:
        import datasets
    except ImportError as error:
        raise ImportError("Streaming a hub dataset needs the `datasets` package: pip install datasets") from error
    stream = datasets.load_dataset(name, config, split=split, streaming=True)
    for i, row in enumerate(stream):
        if i >= max_docs:
            return
        yield row[text_field]


def token_batches(
    tokenizer: Any, texts: Sequence[str], seq_len: int = 128, batch_size: int = 32, shuffle_seed: int | None = 0,
    max_batches: int | None = None,
) -> Iterator["torch.Tensor"]:
    """Pack ``texts`` into ``(batch_size, seq_len)`` token batches.

    Documents are joined into one stream, each followed by EOS; the stream is cut into windows of
    ``seq_len - 1`` tokens and every window gets the BOS token in front, so all rows start the same
    way. Windows are shuffled with ``shuffle_seed`` (None keeps order). The last partial batch is dropped.
    """
    import torch

    if seq_len < 2 or batch_size < 1:
        raise ValueError("seq_len must be >= 2 and batch_size >= 1")
    stream: list[int] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids
        if ids and ids[0] == tokenizer.bos_token_id:
            ids = ids[1:]
        stream += ids + [tokenizer.eos_token_id]
    width = seq_len - 1
    n_windows = len(stream) // width
    windows = torch.tensor(stream[: n_windows * width]).view(n_windows, width)
    if shuffle_seed is not None:
        windows = windows[torch.randperm(n_windows, generator=torch.Generator().manual_seed(shuffle_seed))]
    bos = torch.full((n_windows, 1), tokenizer.bos_token_id)
    windows = torch.cat([bos, windows], dim=1)  # (n_windows, seq_len)
    for i, start in enumerate(range(0, n_windows - batch_size + 1, batch_size)):
        if max_batches is not None and i >= max_batches:
            return
        yield windows[start : start + batch_size]


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m utils.corpus", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="generate (or resume) the corpus and write utils/data/")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--limit", type=int, default=None, help="only the first N requests (for a quick trial)")
    b.add_argument("--out", type=Path, default=CORPUS_PATH)
    b.add_argument("--parts", nargs="+", choices=tuple(PARTS), default=tuple(PARTS))
    e = sub.add_parser("extend", help="generate one part and merge it into the existing corpus")
    e.add_argument("part", choices=[p for p in PARTS if p != "base"])
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", type=Path, default=CORPUS_PATH)
    sub.add_parser("stats", help="print the shipped corpus's statistics")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(json.dumps(build(args.seed, args.out, args.limit, args.parts), indent=2))
    elif args.command == "extend":
        print(json.dumps(extend(args.part, args.seed, args.out), indent=2))
    else:
        print(STATS_PATH.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
