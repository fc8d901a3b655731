"""Chat formatting and (hooked, batched) text generation on a ``TransformerBridge``.

Every steering experiment in the course runs through :func:`generate`: hooks given as
``[(hook_name, fn), ...]`` are attached for the whole generation, prompt and new tokens alike.
Generation uses a KV cache; ``tests/test_model.py`` checks token for token that it equals an
uncached greedy loop through the bridge (transformers 5.24 + TransformerLens 4.3 broke exactly
this kind of equality, silently, in ``TransformerBridge.generate``).
"""

from __future__ import annotations

import contextlib
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
    repetition_penalty: float = 1.0,
) -> list[str]:
    """Continue each prompt; return only the new text, special tokens removed, one string per prompt.

    Prompts are left-padded into batches of ``batch_size``. ``temperature=0`` is greedy decoding;
    otherwise tokens are sampled from softmax(logits / temperature), restricted to the top-p nucleus
    when ``top_p`` is given, reproducibly when ``seed`` is given. ``repetition_penalty`` > 1 penalises tokens
    the model has already *generated* (CTRL-style, see :class:`GeneratedRepetitionPenalty`; 1.0 = off); tokens
    that occur only in the prompt are left alone. Prompts are tokenised as they are
    (chat-formatted prompts, see :func:`chat_prompt`, already start with the BOS token).

    Decoding runs Hugging Face's ``generate`` (with its KV cache) on the model the bridge wraps. The
    bridge's components *replace* that model's modules, so every TransformerLens hook in ``hooks``
    fires — on the whole prompt at the first step, then on each new token (positions of shape
    ``(batch, 1, d_model)``). This is about 3x faster than ``TransformerBridge.generate`` on a CPU.
    (Do not wrap the bridge in a bfloat16 autocast: its left-padded rows then produce NaNs.)
    """
    return _generate(model.original_model, model.tokenizer, prompts, max_new_tokens, temperature, top_p, seed,
                     batch_size, progress, lambda: model.hooks(fwd_hooks=list(hooks)), repetition_penalty)


def generate_plain(
    hf_model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 60, temperature: float = 0.0,
    top_p: float | None = None, seed: int | None = None, batch_size: int = 8, progress: bool = False,
) -> list[str]:
    """:func:`generate` on a plain Hugging Face model (no bridge, no hooks), for bulk sampling such as
    the course corpus; it may run under ``torch.autocast("cpu", dtype=torch.bfloat16)``."""
    return _generate(hf_model, tokenizer, prompts, max_new_tokens, temperature, top_p, seed, batch_size, progress,
                     contextlib.nullcontext)


def _generate(
    hf: Any, tokenizer: Any, prompts: str | Sequence[str], max_new_tokens: int, temperature: float,
    top_p: float | None, seed: int | None, batch_size: int, progress: bool, context: Callable[[], Any],
    repetition_penalty: float = 1.0,
) -> list[str]:
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
    if repetition_penalty < 1:
        raise ValueError(f"repetition_penalty must be >= 1 (1 = off), got {repetition_penalty}")
    if seed is not None:
        torch.manual_seed(seed)
    sampling: dict[str, Any] = (
        dict(do_sample=True, temperature=temperature, top_p=top_p or 1.0, top_k=0)
        if temperature > 0 else dict(do_sample=False)
    )
    outputs: list[str] = []
    starts = range(0, len(prompts), batch_size)
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    bar = tqdm(total=len(starts) * max_new_tokens, desc=f"generating {len(prompts)} answer(s), tokens",
               disable=not progress)
    try:
        for i, start in enumerate(starts):
            batch = list(prompts[start : start + batch_size])
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(hf.device)
            processors = penalty_processors(enc.input_ids.shape[1], repetition_penalty)
            processors.append(StepCounter(bar))
            with torch.no_grad(), context():
                tokens = hf.generate(
                    **enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id, **sampling, logits_processor=processors,
                )
            bar.update((i + 1) * max_new_tokens - bar.n)  # a batch that stopped early (every row at EOS) is done
            for row in tokens[:, enc.input_ids.shape[1]:]:
                ids = row.tolist()
                if tokenizer.eos_token_id in ids:
                    ids = ids[: ids.index(tokenizer.eos_token_id)]
                outputs.append(tokenizer.decode(ids, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = padding_side
        bar.close()
    return outputs


class StepCounter:
    """A logits processor that changes nothing and advances a progress bar by one per generation step."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def __call__(self, input_ids: "torch.Tensor", scores: "torch.Tensor") -> "torch.Tensor":
        self.bar.update(1)
        return scores


class GeneratedRepetitionPenalty:
    """A CTRL-style repetition penalty that looks only at the tokens generated so far.

    Hugging Face's ``repetition_penalty`` penalises every token already in the sequence, *the prompt
    included*: the system prompt and the question then become words the model avoids (SmolLM2 can no longer
    say it is an "AI assistant" when the system prompt said so). This processor sees only positions
    ``>= prompt_length`` (the left-padded prompt width): for each token id ``t`` generated earlier in the
    row, its logit ``l_t`` becomes ``l_t / penalty`` if ``l_t > 0`` and ``l_t * penalty`` otherwise, which
    lowers its probability in both cases. ``penalty = 1`` changes nothing.

    Called by ``generate`` as ``processor(input_ids (batch, pos), scores (batch, vocab))``.
    """

    def __init__(self, prompt_length: int, penalty: float):
        if penalty < 1:
            raise ValueError(f"penalty must be >= 1 (1 = off), got {penalty}")
        self.prompt_length = prompt_length
        self.penalty = penalty

    def __call__(self, input_ids: "torch.Tensor", scores: "torch.Tensor") -> "torch.Tensor":
        import torch

        generated = input_ids[:, self.prompt_length:]  # (batch, new)
        if generated.shape[1] == 0 or self.penalty == 1:
            return scores
        seen = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, generated, True)  # (batch, vocab)
        penalised = torch.where(scores > 0, scores / self.penalty, scores * self.penalty)
        return torch.where(seen, penalised, scores)


def penalty_processors(prompt_length: int, repetition_penalty: float) -> Any:
    """The ``logits_processor`` list :func:`generate` hands to Hugging Face: empty when the penalty is off."""
    from transformers import LogitsProcessorList

    if repetition_penalty == 1:
        return LogitsProcessorList()
    return LogitsProcessorList([GeneratedRepetitionPenalty(prompt_length, repetition_penalty)])


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
