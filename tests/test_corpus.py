"""The course corpus: the seeded plan, cleaning, packing into token batches, and the shipped file."""

from __future__ import annotations

import pytest
import torch

from utils import corpus, corpus_topics


def test_plan_is_seeded_broad_and_covers_the_concepts():
    a, b, c = corpus.plan(0), corpus.plan(0), corpus.plan(1)
    assert a == b and a != c
    topics = {r.topic for r in a}
    assert len(topics) >= 200
    assert len({r.id for r in a}) == len(a)
    golden = [r for r in a if "Golden Gate" in r.topic]
    bridges = [r for r in a if "ridge" in r.topic or "Golden Gate" in r.topic]
    praise = [r for r in a if r.topic in corpus_topics.PRAISE_AND_FLATTERY]
    assert len(golden) >= 50 and len(bridges) >= 150 and len(praise) >= 50
    assert {r.format for r in a} >= {"story", "dialogue", "facts", "code", "chat", "explain"}


def test_clean_documents_drops_duplicates_short_texts_and_loops():
    prose = "The bridge crosses the strait and carries six lanes of traffic every single day of the year."
    docs = [
        {"id": "a", "text": prose + " It opened in 1937 and is painted orange."},
        {"id": "b", "text": "  " + (prose + " It opened in 1937 and is painted orange.").upper()},  # duplicate
        {"id": "c", "text": "Too short."},
        {"id": "d", "text": "I am a bridge. " * 30},  # a loop
    ]
    kept, dropped = corpus.clean_documents(docs)
    assert [d["id"] for d in kept] == ["a"]
    assert dropped == {"duplicate": 1, "short": 1, "loop": 1}


def test_validation_split_is_about_five_percent_and_stable():
    ids = [f"gen-{i:05d}" for i in range(4000)]
    fraction = sum(map(corpus.is_validation, ids)) / len(ids)
    assert 0.035 < fraction < 0.065
    assert corpus.is_validation("gen-00042") == corpus.is_validation("gen-00042")


def test_pydoc_documents_are_human_prose_in_bounded_chunks():
    docs = corpus.pydoc_documents(max_chars=2000)
    assert len(docs) > 100 and all(d["kind"] == "human" for d in docs)
    assert sum(len(d["text"]) for d in docs) > 400_000
    assert len({d["id"] for d in docs}) == len(docs)


class CharTokenizer:
    """A stand-in tokenizer: one token per character, BOS=1, EOS=2."""

    bos_token_id, eos_token_id = 1, 2

    def __call__(self, text, add_special_tokens=False):
        return type("Enc", (), {"input_ids": [ord(ch) for ch in text]})()


def test_token_batches_pack_documents_with_bos_and_eos():
    texts = ["abcdefghij", "klmnop", "qrstuvwxyz"]
    batches = list(corpus.token_batches(CharTokenizer(), texts, seq_len=5, batch_size=2, shuffle_seed=None))
    # stream = 10 + 1 + 6 + 1 + 10 + 1 = 29 tokens -> 7 windows of 4 -> 3 full batches of 2
    assert len(batches) == 3 and all(b.shape == (2, 5) for b in batches)
    assert all((b[:, 0] == 1).all() for b in batches)
    first = batches[0][0, 1:].tolist()
    assert first == [ord(c) for c in "abcd"]
    flat = torch.cat([b[:, 1:] for b in batches]).flatten().tolist()
    assert flat[10] == 2  # EOS after the first document
    ordered = torch.cat(list(corpus.token_batches(CharTokenizer(), texts, seq_len=5, batch_size=1, shuffle_seed=None)))
    shuffled = torch.cat(list(corpus.token_batches(CharTokenizer(), texts, seq_len=5, batch_size=1, shuffle_seed=0)))
    assert sorted(map(tuple, shuffled.tolist())) == sorted(map(tuple, ordered.tolist()))
    assert not torch.equal(shuffled, ordered)
    assert len(list(corpus.token_batches(CharTokenizer(), texts, seq_len=5, batch_size=2, max_batches=1))) == 1
    with pytest.raises(ValueError):
        list(corpus.token_batches(CharTokenizer(), texts, seq_len=1))


def test_load_corpus_rejects_bad_filters_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m utils.corpus build"):
        corpus.load_corpus(path=tmp_path / "missing.jsonl.gz")
    if corpus.CORPUS_PATH.exists():
        with pytest.raises(ValueError, match="expected one of"):
            corpus.load_corpus(split="test")


def test_streaming_a_hub_dataset_fails_fast_and_clearly_offline(monkeypatch):
    from utils.model import ModelUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="course corpus"):
        next(corpus.stream_hub_texts("HuggingFaceFW/fineweb-edu"))


def test_extension_plan_is_seeded_disjoint_and_rich_in_golden_gate_and_hard_negatives():
    a, b = corpus.plan_extension(0), corpus.plan_extension(0)
    assert a == b and a != corpus.plan_extension(1)
    assert all(r.id.startswith("gg-") for r in a) and len({r.id for r in a}) == len(a)
    assert not {r.id for r in a} & {r.id for r in corpus.plan(0)}
    assert corpus.PARTS["base"](0) == corpus.plan(0)  # adding the part changed no base request
    topics = [r.topic for r in a]
    golden = [t for t in topics if "Golden Gate Bridge" in t]
    named = [t for t in topics if t in corpus_topics.NAMED_BRIDGES]
    senses = [t for t in topics if t in corpus_topics.BRIDGE_OTHER_SENSES]
    near = [t for t in topics if t in corpus_topics.GOLDEN_AND_GATE]
    assert len(golden) >= 200 and len(named) >= 120 and len(senses) >= 60 and len(near) >= 60
    assert {"Brooklyn", "Tower Bridge", "Rialto"} <= {w for t in named for w in ("Brooklyn", "Tower Bridge", "Rialto") if w in t}


def test_extend_appends_a_part_without_moving_existing_documents(tmp_path, monkeypatch):
    """``extend`` on a tiny corpus, with generation replaced by a stub: existing documents keep their
    order and indices, new ones are appended, cleaned (a duplicate of an old document is dropped) and
    split by hash; rerunning resumes instead of regenerating."""
    import gzip
    import json

    base = [{"id": f"gen-{i:05d}", "kind": "model", "topic": "t", "format": "story", "split": "train",
             "text": f"Document number {i} is about rivers and boats and the long summer of the year {1900 + i}. " * 2}
            for i in range(3)]
    base.append({"id": "pydoc-x-0", "kind": "human", "topic": "python: x", "format": "pydoc", "split": "train",
                 "text": "Human prose about Python that is long enough to be kept by the cleaner, surely. " * 2})
    path = tmp_path / "course_corpus.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(d) + "\n" for d in base)
    requests = [corpus.Request(f"gg-{i:05d}", "the Golden Gate Bridge", "story", "Write.") for i in range(3)]
    monkeypatch.setitem(corpus.PARTS, "golden_gate", lambda seed: requests)
    calls = []

    def fake_generate(reqs, out_path, seed=0, bf16=False):
        calls.append(len(reqs))
        done = set()
        if out_path.exists():
            done = {json.loads(line)["id"] for line in out_path.read_text().splitlines()}
        with out_path.open("a") as out:
            for i, r in enumerate(reqs):
                if r.id in done:
                    continue
                text = base[0]["text"] if i == 0 else f"The Golden Gate Bridge, story {i}, glows orange above the fog every evening. " * 2
                out.write(json.dumps({"id": r.id, "kind": "model", "topic": r.topic, "format": r.format, "text": text}) + "\n")

    monkeypatch.setattr(corpus, "generate_documents", fake_generate)
    monkeypatch.setattr(corpus, "corpus_stats", lambda docs: {"documents": len(docs)})
    stats = corpus.extend("golden_gate", seed=0, out_path=path)
    docs = corpus.load_corpus(path=path)
    assert [d["id"] for d in docs] == [d["id"] for d in base] + ["gg-00001", "gg-00002"]  # gg-00000 duplicated gen-00000
    assert stats["dropped_golden_gate"]["duplicate"] == 1 and stats["parts"] == ["base", "golden_gate"]
    assert [d["id"] for d in corpus.load_corpus(path=path, parts=["base"])] == [d["id"] for d in base]
    assert all(d["split"] == ("val" if corpus.is_validation(d["id"]) else "train") for d in docs[4:])
    again = corpus.extend("golden_gate", seed=0, out_path=path)  # resumable and idempotent
    assert [d["id"] for d in corpus.load_corpus(path=path)] == [d["id"] for d in docs]
    assert again["parts"] == ["base", "golden_gate"] and again["command"] == stats["command"]
    with pytest.raises(ValueError, match="part must be"):
        corpus.extend("base", out_path=path)
