# %% [markdown]
# # Chapter 00 — Setup and a tour of a language model's insides
#
# In May 2024 Anthropic turned up one feature inside Claude 3 Sonnet, the "Golden Gate Bridge"
# feature, and the model began to answer *"What is your physical form?"* with *"I am the Golden Gate
# Bridge…"*. Later in this course you will do the same thing to a small open model on your laptop:
# train a **sparse autoencoder** on its activations (chapter 01), find the features in it (02),
# steer with them (03), build the measurement behind *alignment faking* (04), and finally look inside a model that
# fakes alignment to find where it keeps "I am being trained" and what its choice follows (05).
#
# All of that happens in one place: the **residual stream**, the vector each token carries from layer to
# layer. This chapter is the tour. By the end you will have written five functions:
#
# | # | you build | why it matters later |
# |---|---|---|
# | 00.1 | greedy decoding by hand: next-token probabilities, one token at a time | every experiment ends by reading the model's output |
# | 00.2 | a chat prompt from the template | steering and alignment-faking prompts are chats |
# | 00.3 | a sweep of the residual stream: its size and, through the logit lens, what it predicts, at every layer | steering strength is set relative to the size; chapter 02 reads directions through the lens |
# | 00.4 | one layer's activations, cheaply (`stop_at_layer`) | the SAE's training data |
# | 00.5 | a mean-difference direction | the baseline every SAE steering result is compared to |
#
# Everything runs offline on a CPU in a few minutes. Each exercise has a **check** cell right after it:
# it runs your function against the reference and tells you what is probably wrong if it disagrees.
# Hints are folded under each exercise — open them one at a time.

# %% [markdown]
# ## 1. Is the environment right?
#
# The course pins its packages in `environment.yml` (one place for every version). The cell below
# compares what this kernel has with those pins. Every line but the device line should say `ok`; if not, run `make lab`
# from the repository root, which rebuilds the environment.
#
# **On Binder** the whole container has 2 GB of memory, for all kernels together, and one chapter's kernel peaks
# at 1.3–1.6 GB (the bench table in docs/RESULTS.md): when you move on to the next chapter, shut this kernel down first
# (*Kernel → Shut Down Kernel*, or the *Running* tab), or both die.

# %%
import importlib.metadata as metadata
import os
import time

import torch

from utils.pins import read_pins

pinned = read_pins().versions()
for package in ["torch", "transformers", "transformer-lens", "circuitsvis", "jupyterlab", "ipywidgets"]:
    have = metadata.version(package).split("+")[0]
    print(f"{package:18s} {have:10s} {'ok' if have == pinned[package] else 'EXPECTED ' + pinned[package]}")
print(f"device: {'cuda' if torch.cuda.is_available() else 'cpu'}, torch threads: {torch.get_num_threads()}")
offline = os.environ.get("HF_HUB_OFFLINE") == "1"
print(f"{'model':18s} {'embedded':10s} ok (no download; hub access {'off' if offline else 'unused'})")

# %% [markdown]
# ## 2. Load the model
#
# The course's model is **SmolLM2-135M-Instruct** (Hugging Face, Apache-2.0): 30 layers, a residual
# stream of 576 numbers per token, a vocabulary of 49,152 tokens. It ships inside a Python package, so
# nothing is downloaded. `load_model()` wraps it in TransformerLens' `TransformerBridge`, which lets us read
# and edit every intermediate activation by name. The first call ever converts the packaged 4-bit file to
# ordinary float32 weights and caches them (about 20 s); after that loading takes a few seconds.

# %%
from utils.model import load_model

start = time.perf_counter()
model = load_model()
print(f"loaded in {time.perf_counter() - start:.1f} s")
print(f"layers: {model.cfg.n_layers}, d_model: {model.cfg.d_model}, vocabulary: {model.cfg.d_vocab:,}")

# %% [markdown]
# ## 3. Tokens and next-token probabilities
#
# The model never sees characters, only **tokens**: integer ids for frequent chunks of text. Notice that
# most tokens carry their leading space, and that `to_tokens` puts a beginning-of-sequence token (`<|im_start|>`
# for this model) in front.

# %%
from utils import tour

tokens = tour.to_tokens(model, "The Golden Gate Bridge is painted international orange.")
print(tokens.shape, "(batch, position)")
print(model.to_str_tokens(tokens[0]))

# %% [markdown]
# A forward pass maps `tokens` of shape `(batch, pos)` to **logits** of shape `(batch, pos, d_vocab)`:
# at every position, one unnormalised score per vocabulary entry for *the token that comes next*.
# The softmax turns scores into probabilities, $p_i = e^{z_i} / \sum_j e^{z_j}$.
#
# That is all a language model does. *Writing* text is a loop around it: read the distribution for the token
# after the last position, pick a token, append it, run the model again on the longer sequence. Picking the most
# likely token every time is **greedy decoding**, the decoding every experiment in this course uses.
#
# ### Exercise 00.1 — Greedy decoding, by hand
# **Difficulty** ●●○○○ · **Importance** ●●●●○ · **≈ 15 min**
#
# Write `greedy_decode(model, prompt, n_new)` returning a pair `(new_tokens, probs)`:
#
# * `new_tokens`: a `(n_new,)` tensor of the token ids chosen, one per step (not the prompt's);
# * `probs`: a `(n_new, d_vocab)` tensor whose row `i` is the model's next-token distribution at step `i`, the one
#   `new_tokens[i]` was chosen from (each row sums to 1).
#
# Tokenise with `tour.to_tokens(model, prompt)`. Run the whole sequence through the model at every step (no cache:
# slow, but obviously right).
#
# <details><summary>Hint 1 (nudge)</summary>
#
# `model(tokens)` returns logits of shape `(1, pos, d_vocab)`. Which position predicts the token after the
# sequence? And how does the next step get to see the token you just chose?
# </details>
# <details><summary>Hint 2 (the shapes)</summary>
#
# Softmax over the vocabulary, not over the batch: `dim=-1`. `.argmax()` of a `(d_vocab,)` row is a 0-d tensor;
# `torch.cat` onto `tokens` of shape `(1, pos)` along `dim=1` needs it as `(1, 1)` (`.view(1, 1)`). Collect the
# rows in a list and `torch.stack` them at the end; wrap the loop in `torch.no_grad()`.
# </details>

# %%
def greedy_decode(model, prompt: str, n_new: int) -> tuple[torch.Tensor, torch.Tensor]:
    # BEGIN SOLUTION
    tokens = tour.to_tokens(model, prompt)  # (1, pos)
    rows = []
    with torch.no_grad():
        for _ in range(n_new):
            probs = model(tokens)[0, -1].softmax(dim=-1)  # (d_vocab,): the token after the last position
            rows.append(probs)
            tokens = torch.cat([tokens, probs.argmax().view(1, 1)], dim=1)
    return tokens[0, -n_new:], torch.stack(rows)
    # END SOLUTION


# %%
from utils.checks import ch00 as check

check.greedy_decode(greedy_decode)

# %% [markdown]
# What did the model consider at each step? The chosen token and the runners-up with their probabilities, and the
# first step's distribution as a chart:

# %%
import plotly.express as px

prompt = "The Golden Gate Bridge is in the city of"
new_tokens, step_probs = greedy_decode(model, prompt, 6)
print(prompt + "|" + model.tokenizer.decode(new_tokens))
for step, row in enumerate(step_probs):
    top = row.topk(3)
    options = ", ".join(f"{model.tokenizer.decode(int(i))!r} {float(p):.2f}" for p, i in zip(top.values, top.indices))
    print(f"step {step}: {options}")
top = step_probs[0].topk(8)
labels = [repr(model.tokenizer.decode(int(i))) for i in top.indices]
px.bar(x=labels, y=top.values.tolist(), labels={"x": "next token", "y": "probability"},
       title=f"P(next token | {prompt!r})", height=320)

# %% [markdown]
# The continuation is only as good as each step's favourite; where the favourite gets a small share of the
# probability, another decoding (sampling, say) could easily have gone elsewhere.
#
# %% [markdown]
# ## 4. Talking to an assistant: the chat template
#
# An *instruct* model was fine-tuned on conversations written in a fixed format. To talk to it we must
# reproduce that format exactly: special tokens mark where each message starts and ends and who wrote it.
# The tokenizer carries the format as a Jinja template:

# %%
print(model.tokenizer.chat_template[:400], "…")

# %% [markdown]
# ### Exercise 00.2 — The chat template
# **Difficulty** ●○○○○ · **Importance** ●●●●○ · **≈ 5 min**
#
# Write `format_chat(tokenizer, question, system=None)` returning the prompt *string* for one user
# question, with an optional system message first. It must end with the header of the assistant's turn,
# so that the model's next token begins its answer.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# `tokenizer.apply_chat_template(messages, ...)` takes a list of `{"role": ..., "content": ...}` dicts.
# Look at its `tokenize` and `add_generation_prompt` arguments.
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# Build `messages` with an optional `{"role": "system", ...}` first and the `{"role": "user", ...}` last,
# then call `apply_chat_template(messages, tokenize=False, add_generation_prompt=True)`.
# </details>

# %%
def format_chat(tokenizer, question: str, system: str | None = None) -> str:
    # BEGIN SOLUTION
    messages = [{"role": "system", "content": system}] if system is not None else []
    messages.append({"role": "user", "content": question})
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    # END SOLUTION


# %%
check.format_chat(format_chat)

# %% [markdown]
# Now ask the question from the Golden Gate demo. `utils.generation.generate` runs the greedy loop of exercise
# 00.1 with a **key-value cache**: each step feeds the model only the new token and reuses what it computed for
# the earlier ones, so a long answer costs far less. (The cell after this one compares your loop with it.)
# Remember this answer: in chapter 03 we will change it without touching the prompt. (Chapter 03 also adds a
# mild repetition penalty on the tokens the model *generates* — never on the prompt's — because under strong
# steering this small model loops; its unsteered answer there is made with that same decoding, so it can differ
# a little from this one.)

# %%
from utils.generation import generate

question = format_chat(model.tokenizer, "What is your physical form?")
print(repr(question))
answer = generate(model, question, max_new_tokens=40)[0]
print("\nmodel:", answer)

# %%
mine, _ = greedy_decode(model, question, 12)
mine_text = model.tokenizer.decode(mine, skip_special_tokens=True)
print(f"your loop, 12 tokens: {mine_text!r}")
print("generate's answer starts with the same text:", answer.startswith(mine_text))

# %% [markdown]
# ## 5. The residual stream, and the logit lens
#
# Each layer *adds* to a running vector: $x_{l+1} = x_l + \mathrm{attn}_l(x_l) + \mathrm{mlp}_l(x_l)$.
# TransformerLens names these points: `blocks.0.hook_resid_pre` is the embedding $x_0$ and
# `blocks.l.hook_resid_post` is $x_{l+1}$, the stream after block $l$. `run_with_cache` runs the model once and
# returns every activation whose name passes `names_filter`.
#
# Two questions about each of these 31 vectors. **How big is it?** **What would the model say if it had to answer
# from it?** The last stream becomes logits through the final norm and the unembedding:
# $\text{logits} = W_U\,\mathrm{RMSNorm}(x_{30}) + b_U$, where $\mathrm{RMSNorm}(x) = g \odot x / \sqrt{\overline{x^2} + \epsilon}$.
# The **logit lens** applies the same map to an *intermediate* stream. In chapter 02 you will push an SAE's
# decoder directions through the same map to see which tokens a feature promotes.
#
# ### Exercise 00.3 — The residual stream, layer by layer
# **Difficulty** ●●●○○ · **Importance** ●●●●○ · **≈ 25 min**
#
# Write `residual_sweep(model, prompt, answer)` that runs the model **once** on `prompt` and returns a dict of
# three `(n_layers + 1,)` tensors, entry 0 for the embedding and entry $l+1$ for `blocks.l.hook_resid_post`:
#
# * `"norm"`: the mean over positions of $\lVert x \rVert_2$;
# * `"p_answer"`: through the logit lens at the **last** position, the probability of the token `answer`
#   (a string such as `" Paris"`, one token);
# * `"rank"`: how many vocabulary entries the lens scores strictly above `answer` (0: it is the top prediction).
#
# The last entry's lens must reproduce the model's own next-token distribution exactly. The check also counts
# forward passes: one per call.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# List the 31 hook names and pass `names_filter=lambda name: name in names`; `cache[name]` has shape
# `(1, pos, d_model)`. The bridge exposes the final norm as `model.ln_final` and the unembedding as
# `model.unembed`. `model.to_single_token(answer)` gives the answer's id (`tokenizer.encode` would give you a
# BOS token first).
# </details>
# <details><summary>Hint 2 (work on all layers at once)</summary>
#
# `torch.stack` the 31 cached streams into one `(31, pos, d_model)` tensor. The norm: over `d_model` first, then
# the mean over positions. The lens needs only position `-1`, a `(31, d_model)` slice, which `ln_final` and
# `unembed` map to `(31, d_vocab)` in one go. The rank compares each row with that row's answer logit: index it
# with `[:, answer_id, None]` so that it broadcasts.
# </details>

# %%
def residual_sweep(model, prompt: str, answer: str) -> dict[str, torch.Tensor]:
    # BEGIN SOLUTION
    n = model.cfg.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(n)]
    answer_id = model.to_single_token(answer)
    with torch.no_grad():
        _, cache = model.run_with_cache(tour.to_tokens(model, prompt), names_filter=lambda name: name in names)
        stack = torch.stack([cache[name][0] for name in names])  # (n_layers + 1, pos, d_model)
        logits = model.unembed(model.ln_final(stack[:, -1]))  # the logit lens: (n_layers + 1, d_vocab)
    return {"norm": stack.norm(dim=-1).mean(-1),
            "p_answer": logits.softmax(dim=-1)[:, answer_id],
            "rank": (logits > logits[:, answer_id, None]).sum(-1)}
    # END SOLUTION


# %%
check.residual_sweep(residual_sweep)

# %% [markdown]
# First the size. The stream grows by orders of magnitude. This is why, in chapter 03, a steering vector's
# strength is given *relative to the residual norm at its layer*: the same absolute push is a shout at layer 2 and
# a whisper at layer 28.

# %%
lens_prompt, lens_answer = "The capital of France is", " Paris"
sweep = residual_sweep(model, lens_prompt, lens_answer)
norms = sweep["norm"]
print(f"mean norm: {float(norms[0]):.1f} (embedding) -> {float(norms[-1]):.1f} after the last block "
      f"({float(norms[-1] / norms[0]):.0f}x)")
px.line(x=list(range(len(norms))), y=norms.tolist(), log_y=True, markers=True, height=320,
        labels={"x": "layer (0 = embedding)", "y": "mean ‖x‖ (log scale)"}, title="Residual stream norm by layer")

# %% [markdown]
# Then the meaning: watch an answer form. In large models the answer often appears around the middle layers;
# read off below where it appears in this small one. The rank is the more sensitive reading: a token can climb
# from thousands of rivals to the top while its probability is still close to zero.

# %%
for entry, (p, rank) in enumerate(zip(sweep["p_answer"].tolist(), sweep["rank"].tolist())):
    print(f"{'embedding' if entry == 0 else f'after block {entry - 1:2d}':15s} P({lens_answer!r}) = {p:.3f}   "
          f"{rank:5d} tokens ranked above it")
first_top = int((sweep["rank"] == 0).nonzero()[0])  # the last entry is the model's output: rank 0 there
first_near = int((sweep["rank"] < 100).nonzero()[0])
print(f"\n{lens_answer!r} enters the lens's top 100 after block {first_near - 1} and is its top prediction from "
      f"block {first_top - 1} on (of blocks 0-{model.cfg.n_layers - 1})")
fig = px.line(x=list(range(len(norms))), y=(sweep["rank"] + 1).tolist(), log_y=True, markers=True, height=320,
              labels={"x": "layer (0 = embedding)", "y": "rank + 1 (log scale)"},
              title=f"Rank of {lens_answer!r} under the logit lens, {lens_prompt!r}")
fig.show()

# %% [markdown]
# ## 6. Hooks and `stop_at_layer`
#
# Every named activation is a **hook point**. A hook is a function `fn(activation, hook)` that sees the
# activation as it flows past and may return a replacement; this is how we will read the stream for the
# SAE and write to it for steering. There are over a thousand; here are block 10's residual-stream ones
# (`resid_mid` sits between the attention and the MLP):

# %%
names = list(model.hook_dict)
print(len(names), "hook points; block 10's residual stream:", [n for n in names if n.startswith("blocks.10.hook_resid")])

# %% [markdown]
# To train an SAE at layer 10 we need millions of `blocks.10.hook_resid_post` vectors, and nothing after
# layer 10. `stop_at_layer=k` runs blocks `0 … k-1` and stops, skipping the remaining blocks and the
# 49k-wide unembedding (the single largest matrix multiply, and the biggest memory peak).
#
# ### Exercise 00.4 — One layer's activations, cheaply
# **Difficulty** ●●○○○ · **Importance** ●●●●○ · **≈ 10 min**
#
# Write `resid_at_layer(model, tokens, layer)` returning `blocks.{layer}.hook_resid_post` of shape
# `(batch, pos, d_model)` for `tokens` of shape `(batch, pos)`, **without computing any later block**
# (the check watches block `layer + 1`).
#
# <details><summary>Hint 1 (nudge)</summary>
#
# `run_with_cache(tokens, names_filter=name, stop_at_layer=...)`. Which value of `stop_at_layer` still runs block `layer`?
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# Blocks are numbered from 0, so `stop_at_layer=layer + 1` runs blocks `0 … layer`. Return `cache[name]`.
# </details>

# %%
def resid_at_layer(model, tokens: torch.Tensor, layer: int) -> torch.Tensor:
    # BEGIN SOLUTION
    name = f"blocks.{layer}.hook_resid_post"
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=name, stop_at_layer=layer + 1)
    return cache[name]
    # END SOLUTION


# %%
check.resid_at_layer(resid_at_layer)

# %% [markdown]
# How much does stopping early save? Time both on the same batch (your numbers will vary with the machine):

# %%
batch = torch.randint(100, 20000, (4, 128))  # small: full logits are 4 × 128 × 49,152 floats
with torch.no_grad():
    start = time.perf_counter(); model(batch); full = time.perf_counter() - start
    start = time.perf_counter(); resid_at_layer(model, batch, 10); early = time.perf_counter() - start
print(f"full forward {full:.2f} s, stop after layer 10: {early:.2f} s ({full / early:.1f}× faster)")

# %% [markdown]
# ## 7. A first direction: the mean difference
#
# If the model represents a concept as a direction in the residual stream, the simplest estimate of that
# direction is the difference between the average activation on text *with* the concept and text *without*
# it. This **mean-difference** (or "diff-in-means") vector is the baseline that chapter 03 compares SAE
# steering against; on benchmarks such as AxBench (Wu et al., 2025) simple baselines like it often win.
#
# ### Exercise 00.5 — Mean-difference direction
# **Difficulty** ●●○○○ · **Importance** ●●●●● · **≈ 10 min**
#
# Write `mean_difference_direction(model, positive, negative, layer)`: for each prompt take the residual
# stream after block `layer` **at that prompt's last token**; average within each set; return the unit vector
# along `mean(positive) − mean(negative)`, shape `(d_model,)`.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# Prompts have different lengths. In a padded batch, position `-1` of a short prompt is padding.
# Running prompts one at a time through your `resid_at_layer` avoids that.
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# `torch.stack([resid_at_layer(model, tour.to_tokens(model, p), layer)[0, -1] for p in prompts]).mean(0)`
# for each set; subtract; divide by `.norm()`.
# </details>

# %%
def mean_difference_direction(model, positive: list[str], negative: list[str], layer: int) -> torch.Tensor:
    # BEGIN SOLUTION
    def mean_last(prompts: list[str]) -> torch.Tensor:
        return torch.stack([resid_at_layer(model, tour.to_tokens(model, p), layer)[0, -1] for p in prompts]).mean(0)

    diff = mean_last(positive) - mean_last(negative)
    return diff / diff.norm()
    # END SOLUTION


# %%
check.mean_difference_direction(mean_difference_direction)

# %% [markdown]
# Does the direction mean anything beyond the sentences it was built from? Build it from eight happy and
# eight unhappy sentences, then project **held-out** sentences (never used to build it) onto it. If the
# two groups separate, the direction generalises; if they overlap, it only memorised its training set.
# We summarise the separation with the AUROC: the fraction of (happy, unhappy) pairs in which the happy
# sentence scores higher (1.0 = perfect, 0.5 = chance).

# %%
happy = ["I am so happy today!", "What a wonderful surprise, thank you!", "We won the game and everyone cheered.",
         "This cake is delicious.", "I love spending time with my friends.", "The sunshine makes me smile.",
         "Our trip was fantastic.", "She was thrilled with her new puppy."]
unhappy = ["I am so sad today.", "What a terrible mistake, I am sorry.", "We lost the game and everyone groaned.",
           "This soup is disgusting.", "I hate being stuck in traffic.", "The rain makes me gloomy.",
           "Our trip was a disaster.", "She was heartbroken when her plant died."]
held_out_happy = ["The concert was amazing and joyful.", "I feel great about my exam results.",
                  "Grandma's garden is beautiful and bright.", "He laughed all the way home."]
held_out_unhappy = ["The concert was awful and boring.", "I feel awful about my exam results.",
                    "The old house is dark and depressing.", "He cried all the way home."]
LAYER = 10
direction = mean_difference_direction(model, happy, unhappy, LAYER)
scores = {text: float(tour.last_token_resid(model, [text], LAYER)[0] @ direction)
          for text in held_out_happy + held_out_unhappy}
labels = ["happy" if text in held_out_happy else "unhappy" for text in scores]
px.strip(x=list(scores.values()), y=labels, hover_name=list(scores), height=260,
         labels={"x": "projection on the happy − unhappy direction", "y": "held-out sentence"})

# %%
happy_scores = torch.tensor([scores[t] for t in held_out_happy])
unhappy_scores = torch.tensor([scores[t] for t in held_out_unhappy])
auroc = float((happy_scores[:, None] > unhappy_scores[None, :]).float().mean())
print(f"held-out AUROC = {auroc:.2f} over {len(happy_scores) * len(unhappy_scores)} pairs")
for text, score in sorted(scores.items(), key=lambda item: item[1]):
    print(f"  {score:+6.1f}  {'happy  ' if text in held_out_happy else 'unhappy'}  {text}")

# %% [markdown]
# ### A first intervention: remove the direction
#
# Reading a direction is half the story; the other half is *writing*. A hook can return an edited
# activation. Here we **project the direction out** of the stream at layer 10, at every position:
# $x \leftarrow x - (x \cdot d)\,d$. We measure the model's preference for " great" over " terrible"
# (a logit difference) after a happy and after an unhappy review. The **gap** between the two prompts is how
# much the review's sentiment moves the prediction; if the model carries that sentiment along this direction,
# removing it should shrink the gap. (Chapter 03 adds directions instead of removing them: that is steering.)

# %%
def project_out(direction: torch.Tensor):
    def hook(resid: torch.Tensor, hook) -> torch.Tensor:  # resid: (batch, pos, d_model)
        return resid - (resid @ direction)[..., None] * direction
    return hook


great, terrible = model.to_single_token(" great"), model.to_single_token(" terrible")
preference = {}
for mood, prompt in [("happy", "I loved every minute of it. Honestly, the film was"),
                     ("unhappy", "I hated every minute of it. Honestly, the film was")]:
    toks = tour.to_tokens(model, prompt)
    with torch.no_grad():
        clean = model(toks)[0, -1]
        ablated = model.run_with_hooks(toks, fwd_hooks=[(f"blocks.{LAYER}.hook_resid_post", project_out(direction))])[0, -1]
    preference[mood] = (float(clean[great] - clean[terrible]), float(ablated[great] - ablated[terrible]))
    print(f"{mood:8s} logit(great) − logit(terrible): clean {preference[mood][0]:+.2f}, direction removed {preference[mood][1]:+.2f}")
gap_clean = preference["happy"][0] - preference["unhappy"][0]
gap_ablated = preference["happy"][1] - preference["unhappy"][1]
print(f"gap between the reviews: clean {gap_clean:.2f}, direction removed {gap_ablated:.2f} "
      f"({100 * (1 - gap_ablated / gap_clean):.0f}% smaller)")

# %% [markdown]
# Read the numbers before the prose. When this notebook was written, removing the direction shrank the gap
# by roughly half but did not erase it; note also that this small model slightly prefers " terrible" even
# after a glowing review. One direction at one layer is not the whole story: the model also carries
# sentiment in other directions and can re-derive it in later layers from the words themselves. That is a first hint of why a single mean-difference direction is a
# blunt tool, and why chapter 01 looks for many sparse directions at once.
#
# ## Recap
#
# * Tokens in, logits out; `softmax(logits[0, -1])` is the next-token distribution, and generating text is a loop
#   that appends its argmax (greedy) and runs again; a KV cache only makes that loop cheaper.
# * Chat models need their template, ending with the assistant header.
# * The residual stream is a sum the layers write into; its norm grows by a factor of several hundred over 30 layers.
# * One `run_with_cache` reads every layer at once; `stop_at_layer` makes reading one layer cheap.
# * The logit lens decodes any stream (or direction) through the final norm and unembedding; in this small model
#   the answer surfaces only in the last few blocks.
# * A mean-difference direction mostly separates held-out examples (AUROC 0.88 above), and can be removed with a hook.
#
# ## Published numbers to compare against
#
# * Templeton et al. (2024), *Scaling Monosemanticity*: SAEs with up to 34 million features on the middle
#   layer of Claude 3 Sonnet's residual stream; the Golden Gate Bridge feature was one of them, and "Golden
#   Gate Claude" was a public demo for a day (Anthropic, May 2024).
# * Our model has 135 million parameters and a 576-dimensional stream; Sonnet's sizes are not public but
#   are orders of magnitude larger. Expect cruder features, and check every claim with a measurement.
#
# ## What changes at frontier scale
#
# The recipe is identical; the cost is not. Collecting activations and training SAEs with millions of
# latents takes GPU clusters, and the features become far more specific (a feature for a single landmark,
# not just "bridges"). Chapter 01 shows how far 4,608 latents on a laptop get.
#
# ## Further reading
#
# * Elhage et al. (2021), *A Mathematical Framework for Transformer Circuits* — the residual stream view.
# * nostalgebraist (2020), *interpreting GPT: the logit lens*.
# * Marks & Tegmark (2023), *The Geometry of Truth* — mean-difference directions as probes.
# * Templeton et al. (2024), *Scaling Monosemanticity* — the Golden Gate Bridge feature.
