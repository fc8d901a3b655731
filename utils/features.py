"""Reading an SAE latent: top-activating examples, activation density, logit effects, concept search.

Chapter 02's reference implementations. With ``z`` the SAE latents of a batch of tokens
(``z[t, i]`` = activation of latent ``i`` on token ``t``, non-negative):

* **top-activating examples** of latent ``i``: the tokens with the largest ``z[:, i]``, shown with a
  window of context (the latent is computed from the prefix only, so most of the window is *before*
  the token);
* **activation density** of latent ``i``: ``P(z[t, i] > 0)`` over tokens, usually shown on a log10
  scale (TopK with k = 32 of 4,608 latents gives a mean density of 32 / 4608 ≈ 0.7 %);
* **logit effects** of a decoder row ``d = W_dec[i]``: what adding ``d`` to the residual stream does to
  the next-token logits *directly*, ignoring every later layer: ``(d ⊙ γ) @ W_U``, where ``γ`` is the
  final RMSNorm's weight (RMSNorm also divides by a positive per-token scale, which does not change
  the ranking of tokens, so we leave it out);
* **concept search**: each text is summarised per latent by its mean activation over tokens, and
  latents are ranked by ``mean_concept - mean_neutral``, how much more they fire on concept text.

A latent used as a concept *detector* fires (max over a text's tokens) above a threshold; its
precision and recall on labelled held-out text are what tell us whether its label is deserved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


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
