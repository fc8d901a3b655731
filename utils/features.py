"""Reading an SAE latent: top-activating examples, activation density, logit effects, concept search.

Chapter 02's reference implementations. With ``z`` the SAE latents of a batch of tokens
(``z[t, i]`` = activation of latent ``i`` on token ``t``, non-negative):

* **top-activating examples** of latent ``i``: the tokens with the largest ``z[:, i]``, shown with a
  window of context (the latent is computed from the prefix only, so most of the window is *before*
  the token);
* **activation density** of latent ``i``: ``P(z[t, i] > 0)`` over tokens, usually shown on a log10
  scale (TopK with k = 32 of 4,608 latents gives a mean density of 32 / 4608 ≈ 0.7 %); over a corpus it
  is accumulated batch by batch (:func:`scan_density`);
* **logit effects** of a decoder row ``d = W_dec[i]``: what adding ``d`` to the residual stream does to
  the next-token logits *directly*, ignoring every later layer: ``(d ⊙ γ) @ W_U``, where ``γ`` is the
  final RMSNorm's weight (RMSNorm also divides by a positive per-token scale, which does not change
  the ranking of tokens, so we leave it out);
* **concept search**: each text is summarised per latent by its mean activation over tokens, and
  latents are ranked by ``mean_concept - mean_neutral``, how much more they fire on concept text
  (:func:`concept_search` does both steps from the texts);

* **decoder neighbourhood** of latent ``i``: the latents ``j != i`` with the largest cosine similarity
  ``<d_i, d_j> / (||d_i|| ||d_j||)`` of their decoder rows — the latents that *write* in nearly the same
  direction (a polysemantic or duplicated latent often sits next to the one it overlaps);
* **feature splitting** across the widths of a Matryoshka SAE: on the tokens where a parent latent of
  the narrow SAE fires, which latent that exists only in the wider SAE is the most active? The share of
  the parent's tokens each such latent wins is how the parent *splits*.

A latent used as a concept *detector* fires (max over a text's tokens) above a threshold; its
precision and recall on labelled held-out text are what tell us whether its label is deserved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.sae import SparseAutoencoder


def top_activating_examples(latent_acts: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of ``latent_acts`` (batch, pos), largest first.

    Returns ``(values, batch_idx, pos_idx)``, each of shape (k',), with ``k' = min(k, batch * pos)``.
    Ties keep ``torch.topk``'s order."""
    if latent_acts.ndim != 2:
        raise ValueError(f"latent_acts must be (batch, pos), got shape {tuple(latent_acts.shape)}")
    flat = latent_acts.flatten()
    values, flat_idx = flat.topk(min(k, flat.numel()))
    return values, flat_idx // latent_acts.shape[1], flat_idx % latent_acts.shape[1]


def context_window(str_tokens: Sequence[str], pos: int, before: int = 10, after: int = 3) -> tuple[list[str], int]:
    """The tokens from ``pos - before`` to ``pos + after`` (clipped to the sequence), and the index of
    ``pos`` inside that window."""
    if not 0 <= pos < len(str_tokens):
        raise IndexError(f"pos {pos} is outside a sequence of {len(str_tokens)} tokens")
    start = max(0, pos - before)
    return list(str_tokens[start : pos + after + 1]), pos - start


def activation_density(z: torch.Tensor) -> torch.Tensor:
    """Fraction of tokens on which each latent fires: ``mean_t [z[t, i] > 0]``. z: (n_tokens, d_sae) -> (d_sae,)."""
    return (z > 0).float().mean(0)


def scan_density(model: "TransformerBridge", sae: "SparseAutoencoder", texts: Sequence[str], batch_size: int = 16,
                 max_len: int = 128) -> torch.Tensor:
    """Activation density over ``texts``, computed the way the corpus scan does it: batch by batch, keeping
    running counts of firing tokens and of real tokens (BOS and padding excluded), dividing once at the
    end -> (d_sae,). The answer does not depend on ``batch_size``; the memory does."""
    from utils.feature_scan import encode_batch, padded_batches, tokenize_texts

    rows = tokenize_texts(model.tokenizer, texts, max_len)
    fires = torch.zeros(sae.cfg.d_sae, dtype=torch.int64)
    n_tokens = 0
    for _, tokens, mask in padded_batches(rows, batch_size, model.tokenizer.eos_token_id):
        z = encode_batch(model, sae, tokens).cpu()
        fires += (z[mask] > 0).sum(0)
        n_tokens += int(mask.sum())
    return fires.float() / max(n_tokens, 1)


def log10_density(density: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """``log10(density + eps)``: never-firing latents land at ``log10(eps)`` = -7 instead of -inf."""
    return torch.log10(density + eps)


def logit_effects(direction: torch.Tensor, ln_final_weight: torch.Tensor, W_U: torch.Tensor) -> torch.Tensor:
    """Direct effect of a residual-stream direction on the logits: ``(direction ⊙ γ) @ W_U``.

    direction: (d_model,); ln_final_weight γ: (d_model,); W_U: (d_model, d_vocab) -> (d_vocab,)."""
    return (direction * ln_final_weight) @ W_U


def top_and_bottom(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(top_values, top_ids, bottom_values, bottom_ids)``: the ``k`` largest entries (descending) and
    the ``k`` smallest (ascending)."""
    top = values.topk(k)
    bottom = (-values).topk(k)
    return top.values, top.indices, -bottom.values, bottom.indices


def mean_pool(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``z`` (texts, pos, d_sae) over the positions where ``mask`` (texts, pos) is true -> (texts, d_sae)."""
    m = mask.to(z.dtype).unsqueeze(-1)
    return (z * m).sum(1) / m.sum(1).clamp_min(1)


def max_pool(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max of ``z`` (texts, pos, d_sae) over the positions where ``mask`` is true -> (texts, d_sae).
    (z is non-negative, so masked positions are set to 0.)"""
    return (z * mask.to(z.dtype).unsqueeze(-1)).amax(1)


def concept_scores(concept: torch.Tensor, neutral: torch.Tensor) -> torch.Tensor:
    """Per-latent contrast ``mean(concept) - mean(neutral)`` over texts.

    concept: (n_concept_texts, d_sae) and neutral: (n_neutral_texts, d_sae), one pooled vector per
    text (e.g. :func:`mean_pool`) -> (d_sae,). Sort it descending to rank candidate latents."""
    return concept.mean(0) - neutral.mean(0)


def concept_search(model: "TransformerBridge", sae: "SparseAutoencoder", concept_texts: Sequence[str],
                   neutral_texts: Sequence[str], n: int = 8, batch_size: int = 16,
                   max_len: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Concept search end to end: mean-pool every text over its real tokens (:func:`mean_pool`), take
    :func:`concept_scores` of the two sets, and return the ``n`` best latents and their scores, each (n,),
    largest score first."""
    from utils.feature_scan import pooled_latents

    concept, _ = pooled_latents(model, sae, concept_texts, batch_size, max_len)
    neutral, _ = pooled_latents(model, sae, neutral_texts, batch_size, max_len)
    top = concept_scores(concept, neutral).topk(min(n, sae.cfg.d_sae))
    return top.indices, top.values


@dataclass(frozen=True)
class DetectorReport:
    threshold: float
    precision: float
    recall: float
    true_positives: int
    false_positives: int
    false_negatives: int
    true_negatives: int

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def detector_report(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> DetectorReport:
    """Precision and recall of the rule ``score > threshold`` against boolean ``labels`` (both (n,)).

    precision = TP / (TP + FP) (1.0 when nothing is predicted positive), recall = TP / (TP + FN)."""
    if scores.shape != labels.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} differ in shape")
    pred, truth = scores > threshold, labels.bool()
    tp, fp = int((pred & truth).sum()), int((pred & ~truth).sum())
    fn, tn = int((~pred & truth).sum()), int((~pred & ~truth).sum())
    return DetectorReport(
        threshold=float(threshold), precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / (tp + fn) if tp + fn else 0.0,
        true_positives=tp, false_positives=fp, false_negatives=fn, true_negatives=tn,
    )


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random
    negative (ties count one half). Threshold-free, so it cannot be tuned by picking a threshold."""
    truth = labels.bool()
    pos, neg = scores[truth].double(), scores[~truth].double()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUROC needs at least one positive and one negative label")
    greater = (pos[:, None] > neg[None, :]).double().mean()
    ties = (pos[:, None] == neg[None, :]).double().mean()
    return float(greater + 0.5 * ties)


def decoder_neighbours(W_dec: torch.Tensor, latent: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` latents whose decoder rows point most nearly the way latent ``latent``'s does.

    W_dec: (d_sae, d_in), rows of any norm. Cosine similarity ``cos(d_i, d_j)`` with every other row,
    the latent itself excluded; returns ``(indices, cosines)``, each (n,), largest cosine first."""
    if not 0 <= latent < W_dec.shape[0]:
        raise IndexError(f"latent {latent} is outside 0..{W_dec.shape[0] - 1}")
    rows = W_dec / W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)  # (d_sae, d_in)
    cosines = rows @ rows[latent]  # (d_sae,)
    cosines[latent] = -float("inf")
    values, indices = cosines.topk(n)
    return indices, values


def split_shares(parent_acts: torch.Tensor, wide_idx: torch.Tensor, wide_val: torch.Tensor, new_from: int) -> dict[int, float]:
    """How a narrow SAE's latent splits in a wider one (the nested widths of a Matryoshka SAE).

    parent_acts: (n_tokens,) the parent latent's activation in the narrow SAE. wide_idx, wide_val:
    (n_tokens, k) the wider SAE's active latents per token (TopK's indices and values). Latents
    ``>= new_from`` exist only in the wider SAE. On every token where the parent fires, the winner is the
    new latent with the largest activation (none if no new latent fires there). Returns
    ``{latent: winning tokens / parent's tokens}``, largest share first; the shares sum to at most 1 (the
    rest is tokens where no new latent fired)."""
    fires = parent_acts > 0
    n_parent = int(fires.sum())
    if n_parent == 0:
        return {}
    idx, val = wide_idx[fires], wide_val[fires].clone()  # (n_parent, k)
    val[idx < new_from] = 0  # only latents the wide SAE adds can be children
    best_val, best = val.max(-1)
    winners = idx.gather(-1, best[:, None])[:, 0][best_val > 0]
    counts = torch.bincount(winners - new_from) if len(winners) else torch.zeros(0, dtype=torch.long)
    shares = {int(i) + new_from: int(c) / n_parent for i, c in enumerate(counts.tolist()) if c}
    return dict(sorted(shares.items(), key=lambda item: -item[1]))
