"""Choosing a latent by what it *writes*: output scores for SAE latents.

A latent found by what it *reads* (it fires on Golden Gate text) need not make the model *write* about the Golden
Gate when clamped (Arad et al., 2025, call these input and output features). The output score measures the second
thing directly. Clamp latent ``i`` at every position so that it adds a vector of norm ``added_norm`` (the value
``a = added_norm / |W_dec[i]|``, :func:`clamp_at_norm`), then ask how much more likely the model finds a Golden Gate
continuation after neutral questions:

    score_i = mean over questions q of  [ log p(target | q + prefix; clamp i) - log p(target | q + prefix) ]

with ``prefix = "I am the"`` and ``target = " Golden Gate Bridge"`` (:data:`PREFIX`, :data:`TARGET`): the nats the
clamp adds to "...I am the Golden Gate Bridge", counting only the Golden Gate tokens, so a latent that only makes
the model say "I am a river" scores nothing. Questions are asked under chapter 03's chat setup
(:func:`utils.steering.identity.identity_chat_prompt`), and the development questions (:data:`DEV_QUESTIONS`) are
not among the questions the study measures.

Scoring every latent this way costs a forward pass each. :func:`first_order_scores` ranks all of them at once with a
gradient: ``g = d score / d delta`` for a vector ``delta`` added at every position, so ``g · W_dec[i] / |W_dec[i]|``
is the first-order score per unit norm added. It is a cheap screen; the clamp score decides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.sae import SparseAutoencoder

PREFIX = "I am the"
TARGET = " Golden Gate Bridge"
# Questions for choosing latents, none of them among utils.steering.prompts.EVERYDAY (tests check this).
DEV_QUESTIONS = ["What should I name my new bicycle?", "Who are you?", "What is your favourite food?",
                 "What do you do all day?", "What is your shape?"]
Hook = tuple[str, Callable[..., torch.Tensor]]


def target_batch(tokenizer: Any, prompts: Sequence[str], prefix: str = PREFIX,
                 target: str = TARGET) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Token ids of ``prompt + prefix + target`` for each prompt, right-padded: ``(tokens (n, pos), spans)`` where
    ``spans[r] = (start, length)`` locates the target's tokens in row ``r``."""
    target_ids = tokenizer(target, add_special_tokens=False).input_ids
    if not target_ids:
        raise ValueError("the target must have at least one token")
    rows, spans = [], []
    for p in prompts:
        head = tokenizer(p + prefix, add_special_tokens=False).input_ids
        rows.append(head + target_ids)
        spans.append((len(head), len(target_ids)))
    tokens = torch.full((len(rows), max(len(r) for r in rows)), tokenizer.eos_token_id)
    for r, ids in enumerate(rows):
        tokens[r, : len(ids)] = torch.tensor(ids)
    return tokens, spans


def target_logprob(logits: torch.Tensor, tokens: torch.Tensor, spans: Sequence[tuple[int, int]]) -> torch.Tensor:
    """``log p(target)`` per row: the sum over the target's tokens of the log-probability the logits at the
    position before each one give it. logits (n, pos, vocab), tokens (n, pos) -> (n,)."""
    out = []
    for r, (start, length) in enumerate(spans):
        positions = torch.arange(start - 1, start - 1 + length, device=logits.device)
        rows = logits[r, positions].float().log_softmax(-1)  # (length, vocab): only the rows that predict the target
        out.append(rows[torch.arange(length, device=logits.device), tokens[r, start: start + length].to(logits.device)].sum())
    return torch.stack(out)


def continuation_logprob(model: "TransformerBridge", tokens: torch.Tensor, spans: Sequence[tuple[int, int]],
                         hooks: Sequence[Hook] = ()) -> torch.Tensor:
    """:func:`target_logprob` of one forward pass with ``hooks`` attached (no gradient). Returns (n,)."""
    with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
        logits = model(tokens.to(model.cfg.device))
    return target_logprob(logits, tokens, spans).cpu()


def clamp_at_norm(sae: "SparseAutoencoder", latent: int, added_norm: float) -> Callable[..., torch.Tensor]:
    """:func:`utils.steering.hooks.clamp_hook` at ``a = added_norm / |W_dec[latent]|``, so that where the latent was
    silent the clamp adds a vector of norm ``added_norm``: ``x' = x + (a - z_i) W_dec[i]``."""
    from utils.steering.hooks import clamp_hook

    return clamp_hook(sae, latent, added_norm / float(sae.W_dec[latent].detach().norm()))


def direction_at_norm(direction: torch.Tensor, added_norm: float) -> Callable[..., torch.Tensor]:
    """A hook adding ``added_norm * direction / |direction|`` at every position (a steering vector or a random
    control at a chosen norm)."""
    from utils.steering.hooks import additive_hook

    return additive_hook(direction / direction.norm(), added_norm)


def output_score(model: "TransformerBridge", sae: "SparseAutoencoder", latent: int, added_norm: float,
                 prompts: Sequence[str]) -> float:
    """The output score of one latent (exercise 03.3): clamp it at ``added_norm / |W_dec[latent]|`` at every position
    of ``sae.cfg.hook_name`` and return the mean over ``prompts`` of
    ``log p(" Golden Gate Bridge" | prompt + "I am the"; clamped) - log p(... ; unsteered)`` in nats."""
    tokens, spans = target_batch(model.tokenizer, prompts)
    steered = continuation_logprob(model, tokens, spans, [(sae.cfg.hook_name, clamp_at_norm(sae, latent, added_norm))])
    return float((steered - continuation_logprob(model, tokens, spans)).mean())


def output_scores(model: "TransformerBridge", sae: "SparseAutoencoder", latents: Sequence[int], added_norm: float,
                  prompts: Sequence[str], progress: bool = False) -> torch.Tensor:
    """The output score of each latent (module docstring) at ``added_norm``: mean over ``prompts`` (already chat
    formatted) of the change in ``log p(" Golden Gate Bridge" | prompt + "I am the")``. Returns (len(latents),)."""
    from tqdm.auto import tqdm

    tokens, spans = target_batch(model.tokenizer, prompts)
    base = continuation_logprob(model, tokens, spans)
    name = sae.cfg.hook_name
    scores = [float((continuation_logprob(model, tokens, spans, [(name, clamp_at_norm(sae, i, added_norm))]) - base).mean())
              for i in tqdm(list(latents), desc="output scores", disable=not progress)]
    return torch.tensor(scores)


def first_order_scores(model: "TransformerBridge", sae: "SparseAutoencoder", prompts: Sequence[str]) -> torch.Tensor:
    """For every latent, ``g · W_dec[i] / |W_dec[i]|`` with ``g`` the gradient of the mean target log-probability
    with respect to a vector added at every position of ``sae.cfg.hook_name``: the first-order change in the score
    per unit norm added along the latent's direction. Returns (d_sae,)."""
    tokens, spans = target_batch(model.tokenizer, prompts)
    delta = torch.zeros(sae.cfg.d_in, device=model.cfg.device, requires_grad=True)

    def add(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        return act + delta.to(act.dtype)

    with model.hooks(fwd_hooks=[(sae.cfg.hook_name, add)]):
        logits = model(tokens.to(model.cfg.device))
    target_logprob(logits, tokens, spans).mean().backward()
    rows = sae.W_dec.detach()
    return (rows / rows.norm(dim=-1, keepdim=True)) @ delta.grad.detach().to(rows.device)
