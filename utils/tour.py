"""Reference implementations for chapter 00 (setup and tour of the model's internals).

Notation: a prompt of ``pos`` tokens flows through the residual stream
``x_0 = embed(tokens)``, ``x_{l+1} = x_l + attn_l(x_l) + mlp_l(x_l)`` for ``l = 0 .. n_layers-1``;
``blocks.l.hook_resid_post`` is ``x_{l+1}``. The logits are ``W_U · RMSNorm(x_{n_layers}) + b_U``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformer_lens.model_bridge import TransformerBridge


def to_tokens(model: "TransformerBridge", text: str | Sequence[str]) -> "torch.Tensor":
    """Tokenise like the course does everywhere: no extra BOS when the text already starts with it.

    Chat-formatted text begins with ``<|im_start|>``, which is SmolLM2's BOS token.
    """
    texts = [text] if isinstance(text, str) else list(text)
    bos = model.tokenizer.bos_token or ""
    prepend = not all(bos and t.startswith(bos) for t in texts)
    return model.to_tokens(texts, prepend_bos=prepend, padding_side="right")


def next_token_probs(model: "TransformerBridge", prompt: str) -> "torch.Tensor":
    """P(next token | prompt): softmax over the vocabulary of the logits at the last position.

    Returns a (d_vocab,) float tensor summing to 1.
    """
    import torch

    with torch.no_grad():
        logits = model(to_tokens(model, prompt))  # (1, pos, d_vocab)
    return logits[0, -1].softmax(dim=-1)


def greedy_decode(model: "TransformerBridge", prompt: str, n_new: int) -> "tuple[torch.Tensor, torch.Tensor]":
    """Greedy decoding with no cache: ``n_new`` times, the next-token distribution at the last position
    (:func:`next_token_probs` of the growing sequence), its argmax appended to the sequence.

    Returns ``(new_tokens, probs)``: the ``(n_new,)`` chosen ids and the ``(n_new, d_vocab)`` distributions
    they were chosen from (row ``i`` sums to 1 and peaks at ``new_tokens[i]``).
    """
    import torch

    tokens = to_tokens(model, prompt)  # (1, pos)
    rows = []
    with torch.no_grad():
        for _ in range(n_new):
            probs = model(tokens)[0, -1].softmax(dim=-1)  # (d_vocab,)
            rows.append(probs)
            tokens = torch.cat([tokens, probs.argmax().view(1, 1).to(tokens.device)], dim=1)
    return tokens[0, tokens.shape[1] - n_new:], torch.stack(rows)


def format_chat(tokenizer: Any, question: str, system: str | None = None) -> str:
    """The chat-template string for one user ``question``, ending with the assistant header."""
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": question})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def residual_norms(model: "TransformerBridge", prompt: str) -> "torch.Tensor":
    """Mean over positions of ``||x_l||_2`` for ``l = 0 .. n_layers``.

    Entry 0 is the embedding (``blocks.0.hook_resid_pre``), entry ``l+1`` is
    ``blocks.l.hook_resid_post``. Returns a (n_layers + 1,) tensor.
    """
    import torch

    n = model.cfg.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(n)]
    with torch.no_grad():
        _, cache = model.run_with_cache(to_tokens(model, prompt), names_filter=lambda name: name in names)
    return torch.stack([cache[name][0].norm(dim=-1).mean() for name in names])  # (n_layers + 1,)


def resid_at_layer(model: "TransformerBridge", tokens: "torch.Tensor", layer: int) -> "torch.Tensor":
    """``blocks.{layer}.hook_resid_post`` for ``tokens`` (batch, pos), computing no later block.

    ``stop_at_layer=layer + 1`` runs blocks ``0 .. layer`` and stops, which is what makes
    activation collection for an SAE several times cheaper than a full forward pass.
    Returns (batch, pos, d_model).
    """
    import torch

    name = f"blocks.{layer}.hook_resid_post"
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=name, stop_at_layer=layer + 1)
    return cache[name]


def logit_lens(model: "TransformerBridge", resid: "torch.Tensor") -> "torch.Tensor":
    """Read a residual stream ``(..., d_model)`` as if it were the last layer:
    ``unembed(ln_final(resid))`` -> ``(..., d_vocab)``.

    The final RMSNorm matters: without it the scale of ``resid`` (which grows with depth) leaks
    into the logits, and its learned gain re-weights the dimensions.
    """
    import torch

    with torch.no_grad():
        return model.unembed(model.ln_final(resid))


def residual_sweep(model: "TransformerBridge", prompt: str, answer: str) -> "dict[str, torch.Tensor]":
    """The residual stream at each of its ``n_layers + 1`` points (entry 0 the embedding, entry ``l+1``
    ``blocks.l.hook_resid_post``), from ONE forward pass: ``{"norm", "p_answer", "rank"}``, each ``(n_layers + 1,)``.

    ``norm``: the mean over positions of ``||x||_2`` (:func:`residual_norms`). ``p_answer``: the logit lens
    (:func:`logit_lens`) at the last position, softmaxed, at the single token ``answer`` (e.g. ``" Paris"``).
    ``rank``: how many vocabulary entries the lens scores strictly above ``answer`` (0 = its top prediction).
    The last entry's lens is the model's own next-token distribution.
    """
    import torch

    n = model.cfg.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(n)]
    answer_id = model.to_single_token(answer)
    with torch.no_grad():
        _, cache = model.run_with_cache(to_tokens(model, prompt), names_filter=lambda name: name in names)
        stack = torch.stack([cache[name][0] for name in names])  # (n_layers + 1, pos, d_model)
        logits = logit_lens(model, stack[:, -1])  # (n_layers + 1, d_vocab)
    return {"norm": stack.norm(dim=-1).mean(-1), "p_answer": logits.softmax(dim=-1)[:, answer_id],
            "rank": (logits > logits[:, answer_id, None]).sum(-1)}


def last_token_resid(model: "TransformerBridge", prompts: Sequence[str], layer: int) -> "torch.Tensor":
    """Residual stream after block ``layer`` at each prompt's own last token: (n_prompts, d_model).

    Prompts are run one at a time, so no padding token can ever be mistaken for a last token.
    """
    import torch

    rows = [resid_at_layer(model, to_tokens(model, p), layer)[0, -1] for p in prompts]
    return torch.stack(rows)


def mean_difference_direction(
    model: "TransformerBridge", positive: Sequence[str], negative: Sequence[str], layer: int
) -> "torch.Tensor":
    """Unit vector along ``mean(x_pos) - mean(x_neg)`` of last-token residuals after block ``layer``.

    Returns a (d_model,) tensor with norm 1 pointing from the negative set towards the positive set.
    """
    diff = last_token_resid(model, positive, layer).mean(0) - last_token_resid(model, negative, layer).mean(0)
    return diff / diff.norm()
