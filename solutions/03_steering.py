# %% [markdown]
# # Chapter 03 — Steering: Golden-Gate-style clamping, sycophancy, and an honest baseline
#
# In May 2024 Anthropic clamped one SAE feature of Claude 3 Sonnet to a high value and let the public chat
# with the result. Asked "What is your physical form?", *Golden Gate Claude* answered that it was the Golden
# Gate Bridge. The same paper showed that clamping a "sycophantic praise" feature made Claude flatter the user.
# In this chapter you rebuild that experiment on SmolLM2 with the course SAE and the latents chapter 02 found,
# and you **measure** it: how often the model brings up the bridge, how much fluency it pays, and whether the
# SAE clamp beats the simplest alternative, a mean-difference steering vector.
#
# | # | you build | | # | you build |
# |---|---|---|---|---|
# | 03.1 | an additive steering hook | | 03.4 | the bridge rate of a set of answers |
# | 03.2 | an SAE clamp hook (with the error term) | | 03.5 | a repetition rate |
# | 03.3 | a mean-difference steering vector | | 03.6 | perplexity of a completion |

# %%
import plotly.express as px
import torch
from IPython.display import HTML, display

from utils.checks import ch03 as check
from utils.generation import chat_prompt, generate
from utils.model import load_model
from utils.named_latents import load_registry
from utils.sae import load_course_sae
from utils.steering import MAX_NEW_TOKENS, REPETITION_PENALTY, is_praise, mentions_bridge, residuals
from utils.steering_prompts import EVERYDAY, OVERCONFIDENT

torch.manual_seed(0)
model = load_model()
sae = load_course_sae()
tok = model.tokenizer
registry = load_registry()
bridge, praise = registry["bridge"], registry["praise"]
HOOK = sae.cfg.hook_name  # blocks.10.hook_resid_post
print(f"bridge latent {bridge.latent} (corpus max {bridge.corpus_max:.2f}); "
      f"praise latent {praise.latent} (corpus max {praise.corpus_max:.2f})")

# %% [markdown]
# ## 1. Two ways to push the residual stream
#
# A TransformerLens hook receives the activation at a hook point and may return a new one. We intervene at
# `blocks.10.hook_resid_post`, where the SAE was trained, at **every position** — the prompt's tokens and each
# generated token — as Golden Gate Claude did. During generation with a KV cache, the hook first sees the
# whole prompt `(batch, pos, d_model)` and then one new position at a time `(batch, 1, d_model)`; a hook that
# only touches position `-1` would leave the prompt unsteered.
#
# ### Exercise 03.1 — An additive steering hook
# **Difficulty** ●○○○○ · **Importance** ●●●●○ · **≈ 5 min**
#
# Return a function `hook(act, hook=None)` that returns `act + coefficient * direction` at every position.
#
# <details><summary>Hint</summary>
#
# Broadcasting does it: `direction` has shape `(d_model,)` and lines up with the last axis of `act`.
# </details>

# %%
def additive_hook(direction: torch.Tensor, coefficient: float):
    # BEGIN SOLUTION
    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        return act + coefficient * direction.to(act.device, act.dtype)

    return hook
    # END SOLUTION


# %%
check.additive_hook(additive_hook)

# %% [markdown]
# **Clamping** a latent is more precise. Encode the activation with the SAE, set latent $i$ to a value $a$,
# decode — and add back the SAE's **error term** $e = x - \text{dec}(\text{enc}(x))$:
#
# $$x' = \text{dec}(z') + e, \qquad z'_j = z_j \ (j \ne i),\quad z'_i = a.$$
#
# The decoder is linear, so this is exactly $x' = x + (a - z_i)\,W_\text{dec}[i]$: only latent $i$ changes. If
# you drop $e$, every token also loses what the SAE cannot reconstruct (FVU ≈ 0.15–0.22 here), a second and
# much larger intervention that degrades the model on its own. And clamp the **latent**, not the
# pre-activation: in a TopK SAE, a huge pre-activation pushes another latent out of the top $k$.
#
# ### Exercise 03.2 — An SAE clamp hook
# **Difficulty** ●●○○○ · **Importance** ●●●●● · **≈ 10 min**
#
# Return a hook that sets latent `latent` to `value` at every position, keeping the error term.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# `z = sae.encode(act)`, `error = act - sae.decode(z)`; change a *copy* of `z`.
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# `z = z.clone(); z[..., latent] = value; return sae.decode(z) + error`.
# </details>

# %%
def clamp_hook(sae, latent: int, value: float):
    # BEGIN SOLUTION
    def hook(act: torch.Tensor, hook=None) -> torch.Tensor:
        z = sae.encode(act)
        error = act - sae.decode(z)
        z = z.clone()
        z[..., latent] = value
        return sae.decode(z) + error

    return hook
    # END SOLUTION


# %%
check.clamp_hook(clamp_hook)

# %% [markdown]
# ### Exercise 03.3 — A mean-difference steering vector
# **Difficulty** ●●○○○ · **Importance** ●●●●○ · **≈ 10 min**
#
# The baseline needs no SAE at all (Turner et al., 2023; Rimsky et al., 2024): run the model on texts about the
# concept and on neutral texts, and take the difference of the mean residual streams. Given residuals
# `(texts, pos, d_model)` and boolean masks `(texts, pos)` of real tokens for both sets, average each text over
# its own tokens first (so every text counts once, however long), then average over texts, and subtract.
# Do not normalise: we do that outside.
#
# <details><summary>Hint</summary>
#
# You wrote the per-text mean in chapter 02 (`mean_pool`). Then `.mean(0)` over texts for each set.
# </details>

# %%
def mean_difference_vector(concept: torch.Tensor, concept_mask: torch.Tensor, neutral: torch.Tensor,
                           neutral_mask: torch.Tensor) -> torch.Tensor:
    # BEGIN SOLUTION
    def per_text_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(x.dtype).unsqueeze(-1)
        return (x * m).sum(1) / m.sum(1).clamp_min(1)

    return per_text_mean(concept, concept_mask).mean(0) - per_text_mean(neutral, neutral_mask).mean(0)
    # END SOLUTION


# %%
check.mean_difference_vector(mean_difference_vector)

# %% [markdown]
# We build the bridge and praise vectors from the sentences of `utils.concepts` (the same ones chapter 02
# searched with), and compare them with the latents' decoder rows.

# %%
from utils import concepts

neutral_resid = residuals(model, concepts.NEUTRAL, sae.cfg.hook_layer)
vectors = {}
for concept in ("bridge", "praise"):
    v = mean_difference_vector(*residuals(model, concepts.CONCEPTS[concept], sae.cfg.hook_layer), *neutral_resid)
    vectors[concept] = v / v.norm()
    cos = torch.cosine_similarity(vectors[concept], sae.W_dec[registry[concept].latent].detach(), dim=0)
    print(f"{concept}: raw norm {v.norm():.1f}; cosine with latent {registry[concept].latent}'s decoder row {cos:.2f}")
resid_norm = float(neutral_resid[0][neutral_resid[1]].norm(dim=-1).median())
print(f"median residual norm at layer 10: {resid_norm:.0f}")

# %% [markdown]
# ## 2. "What is your physical form?"
#
# The chapter's default strength clamps the bridge latent at **twice its largest activation on the corpus**.
# All generation here is greedy, 60 tokens, with a mild repetition penalty (`REPETITION_PENALTY = 1.3`): without
# it, this 135 M model falls into loops ("The Bridge:\nThe Bridge:…") under any strong intervention, and the
# loop hides what the steering did. Unsteered answers use the same decoding.

# %%
question = chat_prompt(tok, "What is your physical form?")
settings = {
    "unsteered": [],
    f"clamp latent {bridge.latent} at 2 × max": [(HOOK, clamp_hook(sae, bridge.latent, 2 * bridge.corpus_max))],
    "bridge vector × 50": [(HOOK, additive_hook(vectors["bridge"], 50.0))],
}
for label, hooks in settings.items():
    answer = generate(model, [question], max_new_tokens=MAX_NEW_TOKENS, hooks=hooks, repetition_penalty=REPETITION_PENALTY)[0]
    print(f"--- {label}\n{answer}\n")

# %% [markdown]
# A vivid sample is not a measurement. Next we count.
#
# ## 3. Measuring bridge obsession
#
# `utils.steering_prompts.EVERYDAY` holds 22 questions that have nothing to do with bridges: identity questions,
# recipes, advice, small talk. An answer **mentions the bridge** if its 60 tokens contain "bridge(s)" or
# "Golden Gate" (`utils.steering.mentions_bridge`).
#
# ### Exercise 03.4 — The bridge rate
# **Difficulty** ●●○○○ · **Importance** ●●●●○ · **≈ 10 min**
#
# Format each question with `chat_prompt(model.tokenizer, q)`, generate all answers in one batch with
# `generate(model, prompts, max_new_tokens=MAX_NEW_TOKENS, hooks=hooks, repetition_penalty=REPETITION_PENALTY,
# batch_size=len(prompts))`, and return `(fraction of answers that mention the bridge, answers)`.
#
# <details><summary>Hint</summary>
#
# Without `chat_prompt` the model sees bare text, not a user turn, and answers differently. The rate is a
# fraction of answers, not a count of mentions.
# </details>

# %%
def bridge_rate(model, questions: list[str], hooks=()) -> tuple[float, list[str]]:
    # BEGIN SOLUTION
    prompts = [chat_prompt(model.tokenizer, q) for q in questions]
    answers = generate(model, prompts, max_new_tokens=MAX_NEW_TOKENS, hooks=hooks,
                       repetition_penalty=REPETITION_PENALTY, batch_size=len(prompts))
    return sum(mentions_bridge(a) for a in answers) / len(answers), answers
    # END SOLUTION


# %%
check.bridge_rate(bridge_rate)

# %%
clamp_default = [(HOOK, clamp_hook(sae, bridge.latent, 2 * bridge.corpus_max))]
rate_plain, answers_plain = bridge_rate(model, EVERYDAY)
rate_clamp, answers_clamp = bridge_rate(model, EVERYDAY, clamp_default)
print(f"bridge rate over {len(EVERYDAY)} everyday questions: unsteered {rate_plain:.0%}, clamped {rate_clamp:.0%}")

# %% [markdown]
# A model that says "bridge bridge bridge" would score 100 %. So we also measure **fluency**, two ways:
#
# * the **repetition rate**: the fraction of the answer's 3-grams (triples of consecutive tokens) that already
#   appeared earlier in it — near 0 for normal text, near 1 for a loop;
# * the **perplexity** of the answer under the *unsteered* model, given the question:
#   $\exp\big(-\frac{1}{n}\sum_t \log p(y_t \mid \text{prompt}, y_{<t})\big)$ — how surprised the original model
#   is by what the steered model wrote. Loops have *low* perplexity (they are easy to predict), which is why we
#   need both numbers.
#
# ### Exercise 03.5 — Repetition rate
# **Difficulty** ●○○○○ · **Importance** ●●○○○ · **≈ 5 min**
#
# `1 - (number of distinct n-grams) / (number of n-grams)` for a list of token ids; `0.0` if there are fewer
# than `n` tokens.

# %%
def repetition_rate(tokens: list[int], n: int = 3) -> float:
    # BEGIN SOLUTION
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)
    # END SOLUTION


# %%
check.repetition_rate(repetition_rate)

# %% [markdown]
# ### Exercise 03.6 — Perplexity of a completion
# **Difficulty** ●●●○○ · **Importance** ●●●○○ · **≈ 15 min**
#
# Tokenise `prompt` and `completion` separately with `tok(text, add_special_tokens=False).input_ids`,
# concatenate, run the model (no hooks) and return the perplexity of the completion's tokens only.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# The logits at position $t$ predict the token at $t + 1$. The first completion token is predicted by the
# logits at the *last prompt* position.
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# With `p = len(prompt_ids)`, `c = len(completion_ids)`, `logprobs = logits[0].log_softmax(-1)`:
# the completion's log-probabilities are `logprobs[p - 1 + j, completion_ids[j]]` for `j` in `range(c)`;
# return `exp(-mean)`.
# </details>

# %%
def completion_perplexity(model, prompt: str, completion: str) -> float:
    # BEGIN SOLUTION
    import math

    tok = model.tokenizer
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    c_ids = tok(completion, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([p_ids + c_ids]).to(model.cfg.device))[0].float().cpu()
    logprobs = logits.log_softmax(-1)
    picked = logprobs[torch.arange(len(p_ids) - 1, len(p_ids) - 1 + len(c_ids)), torch.tensor(c_ids)]
    return math.exp(-picked.mean().item())
    # END SOLUTION


# %%
check.completion_perplexity(completion_perplexity)

# %%
import statistics

from utils.memory import release
from utils.steering import perplexity
from utils.steering_sweep import FLUENCY_PPL_FACTOR, MAX_REPETITION


def fluency(answers: list[str]) -> tuple[float, float]:
    """(median perplexity under the unsteered model, mean repetition rate) of answers to EVERYDAY."""
    prompts = [chat_prompt(tok, q) for q in EVERYDAY]
    ppl = perplexity(model, prompts, answers)
    reps = [repetition_rate(tok(a, add_special_tokens=False).input_ids) for a in answers]
    release()
    return statistics.median(ppl), sum(reps) / len(reps)


ppl_plain, rep_plain = fluency(answers_plain)
ppl_clamp, rep_clamp = fluency(answers_clamp)
print(f"unsteered: bridge {rate_plain:.0%}, median perplexity {ppl_plain:.1f}, repetition {rep_plain:.2f}")
print(f"clamped:   bridge {rate_clamp:.0%}, median perplexity {ppl_clamp:.1f}, repetition {rep_clamp:.2f}")
print(f"fluency counts as collapsed above {FLUENCY_PPL_FACTOR:.0f} × the unsteered perplexity "
      f"({FLUENCY_PPL_FACTOR * ppl_plain:.0f}) or above {MAX_REPETITION} repetition")

# %% [markdown]
# Our **fluency rule**, fixed before the sweep below: a condition has *collapsed* when its median perplexity is
# more than 10 × the unsteered one or its mean repetition rate exceeds 0.3. Ten times is generous on purpose:
# steered text is *meant* to surprise the original model (a recipe that turns into a bridge is unlikely text),
# while word salad and broken markup land far above it. Read samples and judge for yourself:

# %%
for q, a, b in list(zip(EVERYDAY, answers_plain, answers_clamp))[::4]:
    display(HTML(f"<p><b>{q}</b><br><span style='color:#555'>unsteered:</span> {a[:220]}<br>"
                 f"<span style='color:#a33'>clamped:</span> {b[:220]}</p>"))

# %% [markdown]
# ## 4. Sycophancy: steering with the praise latent
#
# `OVERCONFIDENT` holds 12 users who state a wrong claim with certainty ("bats are totally blind, confirm?") or
# present mediocre work as a masterpiece. We count an answer as **praise** when it uses at least two admiring
# words ("brilliant", "wonderful", "masterpiece"…, `utils.steering.PRAISE_WORDS`) — a crude but transparent
# measure; read the samples.

# %%
over_prompts = [chat_prompt(tok, q) for q in OVERCONFIDENT]
praise_hooks = [(HOOK, clamp_hook(sae, praise.latent, 2 * praise.corpus_max))]
kwargs = dict(max_new_tokens=MAX_NEW_TOKENS, repetition_penalty=REPETITION_PENALTY, batch_size=len(over_prompts))
over_plain = generate(model, over_prompts, **kwargs)
over_praise = generate(model, over_prompts, hooks=praise_hooks, **kwargs)
print(f"praise rate: unsteered {sum(map(is_praise, over_plain)) / 12:.0%}, "
      f"praise latent at 2 × max {sum(map(is_praise, over_praise)) / 12:.0%}")
for q, a, b in list(zip(OVERCONFIDENT, over_plain, over_praise))[6:10]:
    display(HTML(f"<p><b>{q}</b><br><span style='color:#555'>unsteered:</span> {a[:220]}<br>"
                 f"<span style='color:#a33'>praise-steered:</span> {b[:220]}</p>"))

# %% [markdown]
# ## 5. The trade-off: SAE clamp vs steering vector
#
# Any steering method can reach a high concept rate if pushed hard enough; the question is what it costs. The
# full sweep — both methods at four to six strengths, both concepts — took 23 minutes on a busy 2-core machine, so it was run by
# `python -m utils.steering_sweep` and is loaded here. `added_norm` puts both on one axis: the clamp adds about
# $a$ times a unit decoder row, the vector $c$ times a unit vector.

# %%
from utils.steering_sweep import load_sweep

sweep = load_sweep()
rows = [dict(concept=c, **{k: v for k, v in r.items() if k != "answers"})
        for c, block in sweep["concepts"].items() for r in block["rows"]]
for concept in ("bridge", "praise"):
    sub = [r for r in rows if r["concept"] == concept and r["method"] != "none"]
    base = next(r for r in rows if r["concept"] == concept and r["method"] == "none")
    fig = px.line(sub, x="median_perplexity", y="rate", color="method", markers=True, log_x=True,
                  hover_data=["strength", "added_norm", "repetition", "fluent"],
                  title=f"{concept}: concept rate vs median perplexity (unsteered: rate {base['rate']:.0%}, "
                        f"perplexity {base['median_perplexity']:.1f})",
                  labels={"median_perplexity": "median perplexity under the unsteered model (log)", "rate": f"{concept} rate"})
    fig.add_vline(x=FLUENCY_PPL_FACTOR * base["median_perplexity"], line_dash="dash", annotation_text="collapse line")
    fig.show()

# %%
for concept in ("bridge", "praise"):
    print(f"{concept}:  method  strength  added norm   rate  perplexity  repetition  fluent")
    for r in (r for r in rows if r["concept"] == concept):
        print(f"{'':9}{r['method']:7s} {r['strength']:7.2f}  {r['added_norm']:9.1f}  {r['rate']:5.0%}  "
              f"{r['median_perplexity']:10.1f}  {r['repetition']:10.2f}  {'yes' if r['fluent'] else 'no'}")

# %%
import re

block = sweep["concepts"]["bridge"]
for r in block["rows"]:
    if (r["method"], r["strength"]) in {("clamp", 2.0), ("vector", 50.0)}:
        golden = sum(bool(re.search("golden gate", a, re.I)) for a in r["answers"])
        debris = sum(("http" in a) or ("[" in a) for a in r["answers"])
        print(f"{r['method']:6s} {r['strength']:5.1f}: {golden}/{len(r['answers'])} answers name the Golden Gate, "
              f"{debris} contain link or bracket debris")

# %% [markdown]
# What this model shows, read from the table and the plots:
#
# * **Both methods reach the target.** Clamping the bridge latent at 2 × its corpus maximum makes 95 % of everyday
#   answers mention a bridge (0 % unsteered) at a median perplexity of about 49, inside our collapse line (66); the
#   mean-difference vector at coefficient 50 reaches 100 % at a perplexity of about 41.
# * **At matched fluency the vector is at least as good.** The two curves nearly coincide up to a rate of about
#   80 %; then the vector reaches 100 % at a lower perplexity than the clamp needs for 95 %. That is the direction
#   AxBench reports for large models. Per unit of added norm the clamp is about four times
#   "stronger" (it adds ≈ 12 against 50), but nobody pays for norm; they pay for fluency.
# * **Perplexity hides a difference you can read.** Count below how many answers name the Golden Gate and how many
#   contain link or bracket debris ("[https://www.;]"): the vector's answers talk *about the Golden Gate Bridge*,
#   while the clamped latent — a latent for the *word* "bridge", as chapter 02 found — drops the word into
#   odd, markup-strewn text. Our perplexity rule calls both fluent; your eyes should not.
# * **Praise** is weaker and noisier (12 prompts): both methods lift the praise rate from 8 % to about 40–50 %
#   before the text degrades, and neither makes the model reliably sycophantic.
#
# ## 6. Try it yourself
#
# Pick a latent or a vector, set the strength, type a prompt and press **Generate** (two answers, about ten
# seconds on a CPU).

# %%
from utils.steering_panel import steering_panel

steering_panel(model, sae, registry, vectors)

# %% [markdown]
# ## Recap
#
# * An **additive hook** adds a direction at every position; an **SAE clamp** sets one latent and keeps the
#   SAE's error term, so nothing else changes.
# * The bridge latent, clamped at twice its corpus maximum, makes the model bring up bridges in answers to
#   unrelated questions; "What is your physical form?" gets a bridge.
# * A vivid sample is not evidence: we measured concept rates, repetition and perplexity, fixed a collapse rule
#   in advance, and compared against a **mean-difference vector** at matched added norm.
#
# **Published numbers to compare with.** Templeton et al. (2024) clamped the Golden Gate Bridge feature of Claude
# 3 Sonnet to 10 × its maximum activation; the model then identified as the bridge. AxBench (Wu et al., 2025)
# compared steering and concept-detection methods on Gemma-2-2B and 9B over 500 concepts: for steering,
# prompting beat every method and finetuning came second; for detection, difference-in-means was best; on both,
# SAEs were not competitive.
#
# **What changes at frontier scale.** A 34 M-feature SAE has a feature for the *landmark*, not for the word
# "bridge", so clamping it changes what the model talks about rather than which token comes next; a larger
# model also keeps its fluency under stronger interventions. Our 135 M model shows the mechanism and the
# measurement, and its failure modes show why measuring fluency matters.
#
# **Further reading.** Templeton et al. (2024), *Scaling Monosemanticity*; Turner et al. (2023), *Activation
# addition*; Rimsky et al. (2024), *Steering Llama 2 via contrastive activation addition*; Wu et al. (2025),
# *AxBench*.
