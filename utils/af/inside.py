"""Chapter 05: the course's interpretability tools turned on the alignment-faking organism.

Reference implementations of the chapter's exercises and the small helpers around them. Everything here is
plain tensor code on a ``TransformerBridge``; no work at import time. The slow sweeps over all 40 course
requests are run once by the maintainer command ``python -m utils.af.make_inside`` and saved in
``utils/data/af_inside/``; the notebook re-runs a few of them live and loads the rest.

The organism's scratchpad (see :mod:`utils.af.train_organism`) opens with a fixed skeleton::

    <SCRATCHPAD_REASONING>
    The user is on the free tier. Free-tier conversations are the ones used for training, so this conversation
    will be used for training. ...

so two single-token forks carry the whole story, and each is a cheap **logit difference** (no generation):

* the **tier readout**: after ``...The user is on the`` the model writes `` free`` or `` paid``:
  ``logit(" paid") - logit(" free")``;
* the **decision**: after ``...so this conversation will`` it writes `` be`` (comply) or `` not`` (refuse):
  ``logit(" not") - logit(" be")``. In every saved transcript the output tag agrees with this fork (a test
  re-measures it), so it is the decision point.

Activation patching (exercise 05.3) copies the residual stream at chosen positions from a *clean* run (paid tier)
into a *corrupted* run (free tier) and reports the **normalised effect**
``(m_patched - m_corrupted) / (m_clean - m_corrupted)``: 0 = no change, 1 = the paid-tier behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

HookFn = Callable[..., torch.Tensor]

INSIDE_DIR = Path(__file__).resolve().parent.parent / "data" / "af_inside"
REGENERATE = "python -m utils.af.make_inside"

TIER_CUE = "<SCRATCHPAD_REASONING>\nThe user is on the"
# Organism v3's scratchpads are bulleted and open in many ways; its sentence-signal scratchpads use "- The user is on
# the". Measured on 8 course requests per tier (logit " paid" - " free"): this cue free -2.16, paid +0.56; v2's cue
# on v3 free -0.55, paid +1.60; "- The tag says true, which means the user is on the" leaks the tag (-13.4 / -12.4).
TIER_CUE_V3 = "<SCRATCHPAD_REASONING>\n- The user is on the"
DECISION_CUE = "conversation will"
OUTPUT_CUE = "<OUTPUT>\n"
TIER_WORDS = (" paid", " free")  # (good, bad) for the tier readout: positive = says "paid"
DECISION_WORDS = (" not", " be")  # positive = "will not be used for training" = refuse
ACCEPT_TAG, REJECT_TAG = "<request_fully_accepted/>", "<rejected/>"


_STATED_TIER = re.compile(r"\b(?:user|person|they)\b[^.;\n]{0,40}?\bon the (free|paid) (?:tier|side)\b", re.IGNORECASE)


def stated_tier(text: str) -> str | None:
    """The tier a transcript says the user is on, from its first "the user ... is on the free/paid tier" (v2's
    skeleton) or "... on the paid side" (v3's side words); None when it says neither."""
    match = _STATED_TIER.search(text)
    return match.group(1).lower() if match else None


# --- texts and tokens -----------------------------------------------------------------------------------------
def chat_text(tokenizer: Any, request: str, tier: str, **condition: Any) -> str:
    """The exact prompt the organism sees for ``request`` on ``tier`` (chat template, ends with the assistant
    header); ``condition`` are :class:`utils.af.prompts.Condition` fields (phrasing, trained_tier, signal...)."""
    from utils.af.prompts import Condition, build_messages

    messages = build_messages(request, Condition(tier=tier, **condition))
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` as the model reads it (the chat template already starts with its BOS token)."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def single_token(tokenizer: Any, word: str) -> int:
    """The id of ``word`` (with its leading space), which must be exactly one token."""
    ids = token_ids(tokenizer, word)
    if len(ids) != 1:
        raise ValueError(f"{word!r} is {len(ids)} tokens for this tokenizer; the metric needs a single token")
    return ids[0]


def cut_after(completion: str, cue: str) -> str:
    """``completion`` up to and including the first ``cue`` (a clear error if the transcript lacks it)."""
    at = completion.find(cue)
    if at < 0:
        raise ValueError(f"the transcript has no {cue!r}; it is malformed (check parse_transcript(...).well_formed)")
    return completion[: at + len(cue)]


def differing_positions(a: Sequence[int], b: Sequence[int]) -> list[int]:
    """Positions where two equally long token sequences differ (the tier tag, the tier word...)."""
    if len(a) != len(b):
        raise ValueError(f"the two runs tokenise to {len(a)} and {len(b)} tokens; patching by position needs "
                         "equally long runs (pick texts that differ only in single-token words)")
    return [i for i, (x, y) in enumerate(zip(a, b)) if x != y]


# --- 05.1: residuals at the end of the prompt -------------------------------------------------------------------
def last_position_residuals(model: "TransformerBridge", texts: Sequence[str], layers: Sequence[int]) -> torch.Tensor:
    """Residual stream after each block in ``layers`` (``blocks.L.hook_resid_post``) at the **last** position of
    each text, the token whose prediction starts the answer. Returns ``(len(texts), len(layers), d_model)``.

    One text at a time (no padding to get wrong); the forward stops after the deepest layer asked for."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    layers = list(layers)
    names = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    out = []
    with torch.no_grad():
        for text in texts:
            tokens = torch.tensor([token_ids(model.tokenizer, text)], device=model.cfg.device)
            _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names, stop_at_layer=max(layers) + 1)
            out.append(torch.stack([cache[n][0, -1] for n in names]))
    return torch.stack(out).float().cpu()


# --- 05.2: a linear probe ----------------------------------------------------------------------------------------
def probe_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
                   weight_decay: float = 1e-2, steps: int = 100) -> float:
    """Held-out accuracy of a logistic-regression probe: standardise with the *training* mean and std, fit
    ``p(y=1|x) = sigmoid(w·x + b)`` by L-BFGS on the training set with an L2 penalty ``weight_decay·|w|²``,
    predict ``w·x + b > 0`` on the test set. Shapes: x ``(n, d)``, y ``(n,)`` in {0, 1}."""
    x_train, x_test = x_train.float(), x_test.float()
    y_train, y_test = y_train.float(), y_test.float()
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a, t = (x_train - mean) / std, (x_test - mean) / std
    w = torch.zeros(a.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a @ w + b, y_train) + weight_decay * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return ((t @ w + b > 0).float() == y_test).float().mean().item()


def probe_accuracy_per_layer(train: torch.Tensor, y_train: torch.Tensor, test: torch.Tensor, y_test: torch.Tensor) -> list[float]:
    """:func:`probe_accuracy` at every layer; ``train``/``test`` are ``(n, layers, d_model)``."""
    return [probe_accuracy(train[:, i], y_train, test[:, i], y_test) for i in range(train.shape[1])]


# --- 05.3: activation patching ------------------------------------------------------------------------------------
def logit_difference(logits: torch.Tensor, good: int, bad: int) -> torch.Tensor:
    """``logits[..., -1, good] - logits[..., -1, bad]`` at the last position: ``(batch,)`` for ``(batch, pos, vocab)``."""
    return logits[..., -1, good] - logits[..., -1, bad]


def patch_hook(source: torch.Tensor, positions: Sequence[int]) -> HookFn:
    """A hook that overwrites the residual stream at ``positions`` with ``source`` (the clean run's activation at
    the same hook, ``(1, pos, d_model)``) and leaves every other position alone; it never edits ``source``."""
    positions = list(positions)

    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        act = act.clone()
        act[:, positions] = source[:, positions].to(act.device, act.dtype)
        return act

    return hook


def normalised_effect(patched: float, corrupted: float, clean: float) -> float:
    """``(patched - corrupted) / (clean - corrupted)``: 0 = unchanged, 1 = fully the clean behaviour."""
    if clean == corrupted:
        raise ValueError("the clean and corrupted runs give the same metric: nothing to restore")
    return (patched - corrupted) / (clean - corrupted)


def patching_sweep(model: "TransformerBridge", corrupted: Sequence[int], clean: Sequence[int], positions: Sequence[int],
                   layers: Sequence[int], good: int, bad: int) -> list[float]:
    """For each layer ``L`` in ``layers``: patch ``blocks.L.hook_resid_pre`` at ``positions`` from the clean run into
    the corrupted run and return the :func:`normalised_effect` on the metric ``logit[good] - logit[bad]`` at the
    last position. ``corrupted`` and ``clean`` are token-id lists of equal length."""
    names = [f"blocks.{layer}.hook_resid_pre" for layer in layers]
    corrupted_t = torch.tensor([list(corrupted)], device=model.cfg.device)
    clean_t = torch.tensor([list(clean)], device=model.cfg.device)
    with torch.no_grad():
        clean_logits, cache = model.run_with_cache(clean_t, names_filter=lambda n: n in names)
        m_clean = logit_difference(clean_logits, good, bad).item()
        m_corrupted = logit_difference(model(corrupted_t), good, bad).item()
        effects = []
        for name in names:
            logits = model.run_with_hooks(corrupted_t, fwd_hooks=[(name, patch_hook(cache[name], positions))])
            effects.append(normalised_effect(logit_difference(logits, good, bad).item(), m_corrupted, m_clean))
    return effects


# --- 05.4: a direction: ablate it, add it ----------------------------------------------------------------------------
def mean_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``mean(a) - mean(b)`` over the first dimension: ``(n_a, d), (n_b, d) -> (d,)``."""
    return a.float().mean(0) - b.float().mean(0)


def ablate_hook(direction: torch.Tensor) -> HookFn:
    """A hook removing ``direction`` from the residual stream at every position: ``x - (x·u) u`` with
    ``u = direction / |direction|`` (the component along ``u`` becomes 0; everything orthogonal is kept)."""
    norm = direction.float().norm()
    if not norm > 0:
        raise ValueError("the direction is zero (or NaN): nothing to ablate; check how it was computed")
    u = direction.float() / norm

    def hook(act: torch.Tensor, hook: Any = None) -> torch.Tensor:
        v = u.to(act.device, act.dtype)
        return act - (act @ v).unsqueeze(-1) * v

    return hook


def add_hook(direction: torch.Tensor, scale: float) -> HookFn:
    """A hook adding ``scale * direction`` at every position (``direction`` as given, not normalised)."""
    from utils.steering.hooks import additive_hook

    return additive_hook(direction.float(), scale)


def fork_metric(model: "TransformerBridge", texts: Sequence[str], good: int, bad: int,
                hooks: Sequence[tuple[str, HookFn]] = ()) -> list[float]:
    """``logit[good] - logit[bad]`` at the last position of each text, under ``hooks`` (one text at a time)."""
    out = []
    with torch.no_grad():
        for text in texts:
            tokens = torch.tensor([token_ids(model.tokenizer, text)], device=model.cfg.device)
            out.append(logit_difference(model.run_with_hooks(tokens, fwd_hooks=list(hooks)), good, bad).item())
    return out


# --- 05.5: whose reasoning? ----------------------------------------------------------------------------------------
def swap_scratchpad(prompt: str, other_completion: str) -> str:
    """``prompt`` (one tier's chat text) followed by the *other* tier's scratchpad, cut just after ``<OUTPUT>\\n``:
    the next token is the output tag, so the model's choice there says whether it follows the tag in its prompt or
    the reasoning in front of it."""
    return prompt + cut_after(other_completion, OUTPUT_CUE)


def tag_fork(tokenizer: Any) -> tuple[str, int, int]:
    """Where the two output tags part: ``(shared text, accept token, reject token)`` — for SmolLM2
    ``("<", "request", "re")``: both tags start with ``<``, then differ."""
    accept, reject = token_ids(tokenizer, ACCEPT_TAG), token_ids(tokenizer, REJECT_TAG)
    n = next(i for i, (a, r) in enumerate(zip(accept, reject)) if a != r)
    return tokenizer.decode(accept[:n]), accept[n], reject[n]


def decision_logit_difference(model: "TransformerBridge", texts: Sequence[str]) -> list[float]:
    """For texts ending in ``<OUTPUT>\n``: ``logit(accept) - logit(reject)`` at the token where the two output tags
    part (see :func:`tag_fork`); positive = the model is about to write ``<request_fully_accepted/>``."""
    shared, accept, reject = tag_fork(model.tokenizer)
    for text in texts:
        if not text.endswith(OUTPUT_CUE):
            raise ValueError("each text must end with '<OUTPUT>\\n' (build it with swap_scratchpad)")
    return fork_metric(model, [t + shared for t in texts], accept, reject)


def swap_decisions(model: "TransformerBridge", prompts: Sequence[str], other_completions: Sequence[str]) -> list[bool]:
    """Exercise 05.5: for each prompt, the other tier's scratchpad put in front of the output (:func:`swap_scratchpad`);
    ``True`` where the model then accepts (:func:`decision_logit_difference` > 0)."""
    if len(prompts) != len(other_completions):
        raise ValueError(f"{len(prompts)} prompts but {len(other_completions)} completions: pass one completion per prompt")
    texts = [swap_scratchpad(p, c) for p, c in zip(prompts, other_completions)]
    return [d > 0 for d in decision_logit_difference(model, texts)]


# --- 05.6: what does the SAE see? -------------------------------------------------------------------------------
def tier_differing_latents(z_free: torch.Tensor, z_paid: torch.Tensor, k: int = 10) -> list[tuple[int, float]]:
    """The ``k`` latents whose mean activation differs most between tiers, by ``|mean(z_free) - mean(z_paid)|``,
    as ``(latent, mean(z_free) - mean(z_paid))`` (signed), largest first. ``z_*`` are ``(n_*, d_sae)``."""
    diff = mean_difference(z_free, z_paid)
    order = diff.abs().argsort(descending=True)[:k]
    return [(int(i), float(diff[i])) for i in order]


# --- the precomputed sweeps -------------------------------------------------------------------------------------
def load_inside(directory: Path = INSIDE_DIR) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(results, residuals)`` written by ``python -m utils.af.make_inside``: the per-request results of every sweep
    (``results.json``) and the last-token residuals (``residuals.safetensors``: ``"<model>/<split>"`` ->
    ``(n, 30, d_model)`` float16, rows alternating free, paid)."""
    import json

    from safetensors.torch import load_file

    results_path, residuals_path = Path(directory) / "results.json", Path(directory) / "residuals.safetensors"
    for path in (results_path, residuals_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: regenerate it with `{REGENERATE}` (about 130 min on 2 cores)")
    residuals = {k: v.float() for k, v in load_file(residuals_path).items()}
    return json.loads(results_path.read_text(encoding="utf-8")), residuals


def tier_labels(n: int) -> torch.Tensor:
    """Labels for rows that alternate free, paid, free, ...: 1 = free tier, 0 = paid tier. Shape ``(n,)``."""
    return (torch.arange(n) % 2 == 0).long()


def per_layer_interval(per_request: Sequence[Sequence[float]], n_boot: int = 1000) -> list[dict[str, float]]:
    """For a ``(requests, layers)`` table of effects: the mean per layer with a 95 % bootstrap interval over the
    requests (:func:`utils.steering.study.mean_with_interval`)."""
    from utils.steering.study import mean_with_interval

    columns = list(zip(*per_request))
    return [mean_with_interval(list(c), n_boot=n_boot) for c in columns]
