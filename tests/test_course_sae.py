"""The shipped course SAE meets the issue's bar on held-out text, re-measured here (not read from its cfg):
CE-loss recovered >= 0.90 (vs zero-ablation), FVU <= 0.30, L0 <= 64, dead latents <= 10 %, on
model-written validation documents AND on human-written text; and its recorded metrics match."""

from __future__ import annotations

import json

import pytest
import torch

from utils import corpus
from utils.activations import collect_activations
from utils.sae import COURSE_SAE_DIR, load_course_sae
from utils.sae_metrics import evaluate_sae, fvu, sparsity_stats

pytestmark = pytest.mark.slow

EVAL_SETS = {
    "model_text_val": lambda: [d["text"] for d in corpus.load_corpus(split="val", kind="model")],
    "human_everyday_text": corpus.human_eval_texts,
}


@pytest.fixture(scope="module")
def sae():
    return load_course_sae()


def test_course_sae_file_is_small_and_saelens_shaped(sae):
    cfg = json.loads((COURSE_SAE_DIR / "cfg.json").read_text())
    assert cfg["architecture"] == "topk" and cfg["hook_name"] == "blocks.10.hook_resid_post"
    assert cfg["d_in"] == 576 and cfg["d_sae"] >= 4 * 576 and cfg["k"] <= 64
    assert (COURSE_SAE_DIR / "sae_weights.safetensors").stat().st_size < 12e6
    assert cfg["extra"]["activations_seen"] >= 2_000_000


@pytest.mark.parametrize("name", list(EVAL_SETS))
def test_course_sae_reconstructs_and_is_sparse_on_held_out_text(model, sae, name):
    texts = EVAL_SETS[name]()
    batches = corpus.token_batches(model.tokenizer, texts, seq_len=128, batch_size=16, shuffle_seed=0)
    acts = collect_activations(model, batches, 10, max_tokens=40_000, progress=False).float()
    assert len(acts) >= 4_000, "too little held-out text to measure on"
    with torch.no_grad():
        z = sae.encode(acts)
        unexplained = float(fvu(acts, sae.decode(z)))
    l0_value, dead = sparsity_stats(z)
    assert unexplained <= 0.30, f"FVU {unexplained:.3f} on {name}"
    assert l0_value <= 64
    if name == "model_text_val":  # dead latents are judged on the larger set
        assert dead <= 0.10, f"{dead:.1%} of latents never fired on {len(acts)} held-out tokens"


@pytest.mark.parametrize("name", list(EVAL_SETS))
def test_course_sae_preserves_the_models_predictions(model, sae, name):
    texts = EVAL_SETS[name]()
    batches = list(corpus.token_batches(model.tokenizer, texts, seq_len=128, batch_size=8, shuffle_seed=0, max_batches=4))
    metrics = evaluate_sae(model, sae, batches)
    assert metrics["ce_loss_recovered"] >= 0.90, metrics
    recorded = json.loads((COURSE_SAE_DIR / "cfg.json").read_text())["extra"]["metrics"][name]
    # A smaller sample than the recorded one: agreement within sampling noise, not bit-for-bit.
    assert abs(metrics["ce_loss_recovered"] - recorded["ce_loss_recovered"]) < 0.03
    assert abs(metrics["kl"] - recorded["kl"]) < 0.5 * recorded["kl"] + 0.05
