"""Chat formatting and (hooked, batched) text generation on a ``TransformerBridge``.

Every steering experiment in the course runs through :func:`generate`: hooks given as
``[(hook_name, fn), ...]`` are attached for the whole generation, prompt and new tokens alike.
Generation uses TransformerLens' KV cache; ``tests/test_model.py`` checks token for token that it
equals an uncached greedy loop (transformers 5.24 broke exactly this, silently).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformer_lens.model_bridge import TransformerBridge

Hook = tuple[str, Callable[..., Any]]


def chat_prompt(tokenizer: Any, user: str, system: str | None = None, history: Sequence[dict] = ()) -> str:
    """Render one user turn (after optional ``history`` messages) with the model's chat template.

    The string ends with the assistant header (``add_generation_prompt=True``) so the model's next
    token starts its answer. With ``system=None`` the template inserts the model's default system
    prompt (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by Hugging Face").
    """
    if not isinstance(user, str):
        raise TypeError(f"user must be a string, got {type(user).__name__}")
    messages = ([{"role": "system", "content": system}] if system is not None else []) + list(history)
    messages.append({"role": "user", "content": user})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _bos_in_text(model: "TransformerBridge", text: str) -> bool:
    bos = model.tokenizer.bos_token
    return bool(bos) and text.startswith(bos)


def generate(
    model: "TransformerBridge",
    prompts: str | Sequence[str],
    max_new_tokens: int = 60,
    hooks: Sequence[Hook] = (),
    temperature: float = 0.0,
    top_p: float | None = None,
    seed: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> list[str]:
    """Continue each prompt; return only the new text, special tokens removed, one string per prompt.

    Prompts are left-padded into batches of ``batch_size``. ``temperature=0`` is greedy decoding;
    otherwise tokens are sampled from softmax(logits / temperature), restricted to the top-p
    nucleus when ``top_p`` is given, reproducibly when ``seed`` is given. Chat-formatted prompts
    (see :func:`chat_prompt`) already start with the BOS token, so none is prepended to them.
    """
    import torch
    from tqdm.auto import tqdm

    if isinstance(prompts, str):
        prompts = [prompts]
    if not prompts:
        return []
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if seed is not None:
        torch.manual_seed(seed)
    tokenizer = model.tokenizer
    outputs: list[str] = []
    starts = range(0, len(prompts), batch_size)
    for start in tqdm(starts, desc="generating", disable=not progress or len(starts) == 1):
        batch = list(prompts[start : start + batch_size])
        prepend_bos = not all(_bos_in_text(model, p) for p in batch)
        n_prompt = model.to_tokens(batch, prepend_bos=prepend_bos, padding_side="left").shape[1]
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_new_tokens,
            do_sample=temperature > 0,
            verbose=False,
            prepend_bos=prepend_bos,
            padding_side="left",
            return_type="tokens",
            use_past_kv_cache=True,
        )
        if temperature > 0:
            kwargs["temperature"] = temperature
            kwargs["top_p"] = top_p
        with torch.no_grad(), model.hooks(fwd_hooks=list(hooks)):
            tokens = model.generate(batch, **kwargs)
        for row in tokens[:, n_prompt:]:
            ids = row.tolist()
            if tokenizer.eos_token_id in ids:
                ids = ids[: ids.index(tokenizer.eos_token_id)]
            outputs.append(tokenizer.decode(ids, skip_special_tokens=True))
    return outputs


def greedy_uncached(model: "TransformerBridge", tokens: "torch.Tensor", max_new_tokens: int) -> "torch.Tensor":
    """Reference greedy decoding with no KV cache: re-run the full sequence for every new token.

    ``tokens``: (batch, pos) int tensor. Returns (batch, pos + max_new_tokens). Slow (quadratic)
    but obviously correct, which is what the cached generator is tested against.
    """
    import torch

    with torch.no_grad():
        for _ in range(max_new_tokens):
            next_token = model(tokens)[:, -1].argmax(dim=-1, keepdim=True)  # (batch, 1)
            tokens = torch.cat([tokens, next_token], dim=1)
    return tokens
