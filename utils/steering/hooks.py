"""Steering: add a direction to the residual stream, or clamp one SAE latent, during generation.

Two interventions at one hook point (``blocks.10.hook_resid_post``), applied at *every* position —
prompt and generated tokens alike, as in Golden Gate Claude:

* **additive** (steering vectors): ``x <- x + c * v`` for a direction ``v`` and a coefficient ``c``;
* **SAE clamp**: encode ``z = SAE.encode(x)``, set latent ``i`` to a value ``a``, decode, and add back
  the SAE's reconstruction error ``e = x - SAE.decode(z)`` so that *only* latent ``i`` changes:
  ``x <- SAE.decode(z') + e = x + (a - z_i) * W_dec[i]``. Without ``e`` every token would also lose
  whatever the SAE fails to reconstruct (≈ 15 % of the variance here), which is a second intervention.

The baseline direction is a **mean difference** (Turner et al., 2023; Rimsky et al., 2024): the mean
residual over concept texts minus the mean over neutral texts, each text mean-pooled over its tokens.

The judges of the generated text live in :mod:`utils.steering.judges`; the decoding every condition
shares, in :mod:`utils.steering.answers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.sae import SparseAutoencoder

HookFn = Callable[..., torch.Tensor]

def additive_hook(direction: torch.Tensor, coefficient: float) -> HookFn:
    """A hook adding ``coefficient * direction`` (d_model,) at every position of (batch, pos, d_model)."""

    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        return act + coefficient * direction.to(act.device, act.dtype)

    return hook


def clamp_hook(sae: "SparseAutoencoder", latent: int | Sequence[int], value: float | Sequence[float] | torch.Tensor) -> HookFn:
    """A hook setting SAE latent ``latent`` to ``value`` at every position, keeping the SAE's error term.

    ``latent`` may also be a list of latents with one value each (a *group clamp*): every listed latent is set,
    the rest of the code and the error term are kept, so ``x' = x + sum_i (a_i - z_i) W_dec[i]``."""
    if not isinstance(latent, int):
        latent = list(latent)
        value = torch.as_tensor(value, dtype=torch.float32)
        if value.shape != (len(latent),):
            raise ValueError(f"a group clamp needs one value per latent: {len(latent)} latents, values of shape {tuple(value.shape)}")

    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        x = act.to(sae.W_dec.device, sae.W_dec.dtype)
        z = sae.encode(x)
        error = x - sae.decode(z)
        z = z.clone()
        z[..., latent] = value.to(z.dtype) if isinstance(value, torch.Tensor) else value
        return (sae.decode(z) + error).to(act.device, act.dtype)

    return hook


def group_clamp_hook(sae: "SparseAutoencoder", latents: Sequence[int], values: Sequence[float] | torch.Tensor) -> HookFn:
    """A *group clamp* of two or more latents: every listed latent ``i`` is set to its value ``a_i`` at every
    position, the rest of the code and the SAE's error term are kept. Since decoding is linear,
    ``x' = x + sum_i (a_i - z_i) W_dec[i]`` (with ``z = sae.encode(x)``). (One latent: chapter 03's ``clamp_hook``.)"""
    latents = list(latents)
    values = torch.as_tensor(values, dtype=torch.float32)
    if len(latents) < 2:
        raise ValueError("a group clamp needs two or more latents; clamp one latent with clamp_hook")
    if values.shape != (len(latents),):
        raise ValueError(f"a group clamp needs one value per latent: {len(latents)} latents, values of shape {tuple(values.shape)}")

    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        x = act.to(sae.W_dec.device, sae.W_dec.dtype)
        delta = values.to(x.dtype) - sae.encode(x)[..., latents]  # (..., n)
        return (x + delta @ sae.W_dec[latents]).to(act.device, act.dtype)

    return hook


def mean_difference_vector(concept: torch.Tensor, concept_mask: torch.Tensor, neutral: torch.Tensor,
                           neutral_mask: torch.Tensor) -> torch.Tensor:
    """``mean_texts(mean_tokens(concept)) - mean_texts(mean_tokens(neutral))``, not normalised.

    concept: (n_c, pos, d_model) with boolean concept_mask (n_c, pos) marking real tokens; likewise
    for neutral. Each text counts once, however long it is. Returns (d_model,)."""
    from utils.features import mean_pool

    return mean_pool(concept, concept_mask).mean(0) - mean_pool(neutral, neutral_mask).mean(0)


def vector_hook(concept: torch.Tensor, concept_mask: torch.Tensor, neutral: torch.Tensor, neutral_mask: torch.Tensor,
                coefficient: float) -> HookFn:
    """The steering-vector baseline in one step: ``v = mean_difference_vector(...)``, normalised to unit
    length, and a hook adding ``coefficient * v / |v|`` at every position (so ``coefficient`` is the norm
    of what is added)."""
    v = mean_difference_vector(concept, concept_mask, neutral, neutral_mask)
    return additive_hook(v / v.norm(), coefficient)


def residuals(model: "TransformerBridge", texts: Sequence[str], layer: int, max_len: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Residual stream after block ``layer`` for each text (BOS + text, right-padded):
    returns ``(resid (n, pos, d_model), mask (n, pos))`` with BOS and padding masked out."""
    from utils.feature_scan import padded_batches, tokenize_texts

    rows = tokenize_texts(model.tokenizer, texts, max_len)
    width = max(len(r) for r in rows)
    resid = torch.zeros(len(texts), width, model.cfg.d_model)
    mask = torch.zeros(len(texts), width, dtype=torch.bool)
    name = f"blocks.{layer}.hook_resid_post"
    for idx, tokens, batch_mask in padded_batches(rows, 16, model.tokenizer.eos_token_id):
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=name, stop_at_layer=layer + 1)
        resid[idx, : tokens.shape[1]] = cache[name].float().cpu()
        mask[idx, : tokens.shape[1]] = batch_mask
    return resid, mask


def concept_latent_group(sae: "SparseAutoencoder", concept: torch.Tensor, concept_mask: torch.Tensor,
                         neutral: torch.Tensor, neutral_mask: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``size`` latents most active on concept texts relative to neutral ones, for a group clamp.

    With ``m_c = mean_texts(mean_tokens(SAE.encode(concept)))`` (d_sae,) and ``m_n`` likewise for the neutral
    texts, returns ``(latents (size,), m_c[latents] (size,))`` for the ``size`` largest ``m_c - m_n``: which
    latents to clamp, and each one's typical activation on the concept (the unit of the clamp strength).
    Residuals and masks as from :func:`residuals`."""
    from utils.features import mean_pool

    if not 0 < size <= sae.cfg.d_sae:
        raise ValueError(f"size must be in 1..{sae.cfg.d_sae}, got {size}")
    with torch.no_grad():
        m_c = mean_pool(sae.encode(concept), concept_mask).mean(0)
        m_n = mean_pool(sae.encode(neutral), neutral_mask).mean(0)
    latents = (m_c - m_n).topk(size).indices
    return latents, m_c[latents]


def concept_vector(model: "TransformerBridge", concept: str, layer: int) -> torch.Tensor:
    """The unit mean-difference vector of ``concept``'s sentences vs the neutral ones (utils.concepts)."""
    from utils.concepts import CONCEPTS, NEUTRAL

    v = mean_difference_vector(*residuals(model, CONCEPTS[concept], layer), *residuals(model, NEUTRAL, layer))
    return v / v.norm()


def median_resid_norm(model: "TransformerBridge", layer: int) -> float:
    """Median norm of the residual stream after block ``layer`` over the neutral texts' tokens."""
    from utils.concepts import NEUTRAL

    resid, mask = residuals(model, NEUTRAL, layer)
    return float(resid[mask].norm(dim=-1).median())
