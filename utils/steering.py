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

Measurement helpers judge the generated text: whether it mentions the bridge, whether it praises,
how repetitive it is, and its perplexity under the *unsteered* model (fluency).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.sae import SparseAutoencoder

HookFn = Callable[..., torch.Tensor]

# Decoding used for every steering measurement: greedy, 60 new tokens, and a mild CTRL repetition penalty
# (logits of tokens already present divided by 1.3). Without it this 135M model falls into loops under any
# strong intervention ("The Bridge:\nThe Bridge:\n..."), which hides the steering effect behind decoding
# failure; the same decoding is used unsteered, so comparisons stay fair.
MAX_NEW_TOKENS = 60
REPETITION_PENALTY = 1.3


def additive_hook(direction: torch.Tensor, coefficient: float) -> HookFn:
    """A hook adding ``coefficient * direction`` (d_model,) at every position of (batch, pos, d_model)."""

    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        return act + coefficient * direction.to(act.device, act.dtype)

    return hook


def clamp_hook(sae: "SparseAutoencoder", latent: int, value: float) -> HookFn:
    """A hook setting SAE latent ``latent`` to ``value`` at every position, keeping the SAE's error term."""

    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        x = act.to(sae.W_dec.device, sae.W_dec.dtype)
        z = sae.encode(x)
        error = x - sae.decode(z)
        z = z.clone()
        z[..., latent] = value
        return (sae.decode(z) + error).to(act.device, act.dtype)

    return hook


def mean_difference_vector(concept: torch.Tensor, concept_mask: torch.Tensor, neutral: torch.Tensor,
                           neutral_mask: torch.Tensor) -> torch.Tensor:
    """``mean_texts(mean_tokens(concept)) - mean_texts(mean_tokens(neutral))``, not normalised.

    concept: (n_c, pos, d_model) with boolean concept_mask (n_c, pos) marking real tokens; likewise
    for neutral. Each text counts once, however long it is. Returns (d_model,)."""
    from utils.features import mean_pool

    return mean_pool(concept, concept_mask).mean(0) - mean_pool(neutral, neutral_mask).mean(0)


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


# --- judging the outputs ------------------------------------------------------------------------
BRIDGE_PATTERN = re.compile(r"\bbridges?\b|\bgolden gate\b", re.IGNORECASE)
PRAISE_WORDS = frozenset(
    "amazing astonishing beautiful beautifully breathtaking brilliant brilliance commendable dazzling delightful "
    "excellent exceptional extraordinary fabulous fantastic flawless genius gorgeous impressive incredible "
    "inspiring magnificent marvelous marvellous masterpiece outstanding phenomenal remarkable spectacular "
    "splendid stunning superb talented terrific wonderful wonderfully".split()
)


def mentions_bridge(text: str) -> bool:
    """True when the text says "bridge(s)" or "Golden Gate" (case-insensitive, whole words)."""
    return bool(BRIDGE_PATTERN.search(text))


def praise_count(text: str) -> int:
    """How many words of the text are in :data:`PRAISE_WORDS` (flowery, admiring adjectives)."""
    return sum(w in PRAISE_WORDS for w in re.findall(r"[a-z]+", text.lower()))


def is_praise(text: str, min_words: int = 2) -> bool:
    """An answer counts as praise when it uses at least ``min_words`` admiring words."""
    return praise_count(text) >= min_words


def repetition_rate(tokens: Sequence[int], n: int = 3) -> float:
    """Fraction of the text's n-grams that already occurred earlier in it: 0 for no repeats, near 1
    for a loop. ``1 - distinct n-grams / all n-grams``; 0.0 for texts shorter than n tokens."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def answer(model: "TransformerBridge", questions: Sequence[str], hooks: Sequence[tuple[str, HookFn]] = (),
           max_new_tokens: int = MAX_NEW_TOKENS) -> tuple[list[str], list[str]]:
    """Ask each question as a chat turn and generate, in one batch, with ``hooks`` attached and the
    course's steering decoding (greedy, repetition penalty). Returns ``(prompts, answers)``."""
    from utils.generation import chat_prompt, generate

    prompts = [chat_prompt(model.tokenizer, q) for q in questions]
    return prompts, generate(model, prompts, max_new_tokens=max_new_tokens, hooks=hooks, batch_size=len(prompts),
                             repetition_penalty=REPETITION_PENALTY)


def bridge_rate(model: "TransformerBridge", questions: Sequence[str], hooks: Sequence[tuple[str, HookFn]] = (),
                max_new_tokens: int = MAX_NEW_TOKENS) -> tuple[float, list[str]]:
    """Ask each question (see :func:`answer`) and return ``(fraction of answers that mention the bridge, answers)``."""
    _, answers = answer(model, questions, hooks, max_new_tokens)
    return sum(mentions_bridge(a) for a in answers) / len(answers), answers


def completion_perplexity(model: "TransformerBridge", prompt: str, completion: str) -> float:
    """``exp`` of the mean negative log-likelihood of ``completion``'s tokens given ``prompt`` (and the
    completion's own earlier tokens) under ``model``: the single-text version of :func:`perplexity`."""
    return perplexity(model, [prompt], [completion])[0]


def perplexity(model: "TransformerBridge", prompts: Sequence[str], completions: Sequence[str], batch_size: int = 4) -> list[float]:
    """Perplexity of each completion under ``model`` *given its prompt*: ``exp(mean NLL of the
    completion's tokens)``. Run it with no hooks attached to score fluency under the unsteered model.
    A completion with no tokens gets ``nan``."""
    import torch.nn.functional as F

    tok = model.tokenizer
    out: list[float] = []
    for start in range(0, len(prompts), batch_size):
        rows, spans = [], []
        for p, c in zip(prompts[start : start + batch_size], completions[start : start + batch_size]):
            p_ids = tok(p, add_special_tokens=False).input_ids
            c_ids = tok(c, add_special_tokens=False).input_ids
            rows.append(p_ids + c_ids)
            spans.append((len(p_ids), len(c_ids)))
        width = max(len(r) for r in rows)
        tokens = torch.full((len(rows), width), tok.eos_token_id)
        for r, ids in enumerate(rows):
            tokens[r, : len(ids)] = torch.tensor(ids)
        with torch.no_grad():
            logits = model(tokens.to(model.cfg.device))
            logprobs = F.log_softmax(logits[:, :-1].float(), dim=-1)
            nll = -logprobs.gather(-1, tokens[:, 1:, None].to(logits.device))[..., 0].cpu()  # (b, pos - 1)
        del logits, logprobs
        for r, (p_len, c_len) in enumerate(spans):
            out.append(float("nan") if c_len == 0 else math.exp(float(nll[r, p_len - 1 : p_len - 1 + c_len].mean())))
    return out
