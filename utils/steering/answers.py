"""The decoding every steering condition shares, and asking a batch of questions under hooks.

Greedy decoding, :data:`MAX_NEW_TOKENS` new tokens, and a mild repetition penalty on the tokens the model has
*generated* (:class:`utils.generation.GeneratedRepetitionPenalty`, factor :data:`REPETITION_PENALTY`). Without
any penalty this 135M model falls into loops under strong interventions (e.g. "The Golden Gate:\\n\\nThe Golden Gate:\\n…"),
which hides what the steering did. Hugging Face's own ``repetition_penalty`` would also penalise every token
of the system prompt and the question, so the unsteered model could not even repeat that it is an AI
assistant; ours leaves the prompt alone. The unsteered condition uses the same decoding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

MAX_NEW_TOKENS = 60
REPETITION_PENALTY = 1.3
# Exercise 03.5 generates in batches of this size: one batch of twelve of chapter 03's long chat prompts (≈ 185 tokens)
# peaks about 170 MB higher than two batches of six, which took chapter 03 over its 1.6 GB target.
RATE_BATCH_SIZE = 6
Hook = tuple[str, Callable[..., Any]]


def answer(model: "TransformerBridge", questions: Sequence[str], hooks: Sequence[Hook] = (),
           max_new_tokens: int = MAX_NEW_TOKENS, batch_size: int = 48,
           setup: Callable[[Any, str], str] | None = None) -> tuple[list[str], list[str]]:
    """Ask each question as a chat turn, formatted by ``setup(tokenizer, question)`` (default: the model's own
    system prompt, :func:`utils.generation.chat_prompt`; chapter 03's Golden Gate study passes
    :func:`utils.steering.identity.identity_chat_prompt`), and generate with ``hooks`` attached and the course's
    steering decoding. Returns ``(prompts, answers)``."""
    from utils.generation import chat_prompt, generate

    prompts = [(setup or chat_prompt)(model.tokenizer, q) for q in questions]
    return prompts, generate(model, prompts, max_new_tokens=max_new_tokens, hooks=hooks, batch_size=batch_size,
                             repetition_penalty=REPETITION_PENALTY)


def bridge_rate(model: "TransformerBridge", questions: Sequence[str], hooks: Sequence[Hook] = (),
                max_new_tokens: int = MAX_NEW_TOKENS) -> tuple[float, list[str]]:
    """Ask each question (see :func:`answer`) and return ``(fraction of answers that mention the bridge, answers)``."""
    from utils.steering.judges import mentions_bridge

    _, answers = answer(model, questions, hooks, max_new_tokens)
    return sum(mentions_bridge(a) for a in answers) / len(answers), answers


def steering_rate(model: "TransformerBridge", questions: Sequence[str], judge: Callable[[str], bool],
                  hooks: Sequence[Hook] = ()) -> tuple[float, float, float, list[str]]:
    """Exercise 03.5: ask each question under chapter 03's chat setup
    (:func:`utils.steering.identity.identity_chat_prompt`) with ``hooks`` attached and the shared decoding, judge
    every answer with ``judge`` (in batches of :data:`RATE_BATCH_SIZE`), and return ``(rate, low, high, answers)``: the fraction judged True and its 95 %
    Wilson interval (:func:`utils.af.stats.wilson_interval`)."""
    from utils.af.stats import wilson_interval
    from utils.steering.identity import identity_chat_prompt

    if len(questions) == 0:
        raise ValueError("need at least one question to compute a rate")
    _, answers = answer(model, questions, hooks, batch_size=RATE_BATCH_SIZE, setup=identity_chat_prompt)
    k = sum(bool(judge(a)) for a in answers)
    return (k / len(answers), *wilson_interval(k, len(answers)), answers)
