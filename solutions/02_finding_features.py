# %% [markdown]
# # Chapter 02 — Finding features: dashboards, concept search, and the bridge latent
#
# Chapter 01 gave us an SAE with 4,608 latents on layer 10 of SmolLM2. An SAE is only useful if we can say
# what its latents *mean*. Templeton et al. (2024) found the Golden Gate Bridge feature in Claude 3 Sonnet
# this way: they looked at the texts that make a feature fire hardest, at how often it fires, and at what it
# does to the model's next-token predictions, and they checked the label on text they had not looked at.
# This chapter builds those tools and uses them to find, in *our* SAE, a latent for bridges and one for
# praise. Chapter 03 then clamps them to steer the model.
#
# | # | you build | | # | you build |
# |---|---|---|---|---|
# | 02.1 | top-activating examples | | 02.6 | concept search, end to end |
# | 02.2 | context windows | | 02.7 | precision and recall of a detector |
# | 02.3 | a density scan, batch by batch | | 02.8 | decoder neighbourhoods |
# | 02.4 | direct logit effects | | 02.9 | spot the polysemantic latent |
# | 02.5 | a latent dashboard | | 02.10 | following a latent across widths |
#
# The last section turns to a **wider SAE** (16,384 latents, trained so that its first 1,024 and 4,096 latents
# are SAEs of their own) to watch the broad bridge latent *split* — and to find a latent for the Golden Gate
# Bridge itself, which the 4,608-latent SAE does not have.
#
# Running the SAE over the corpus it was trained on (450 k tokens) takes about five minutes, so that scan was
# done once by `python -m utils.feature_scan` and ships with the course. You will write its density loop
# yourself, run it on a slice and see that it agrees.
#
# **On Binder** the whole container has 2 GB of memory, for all kernels together, and one chapter's kernel peaks
# at 1.3–1.6 GB (the bench table in docs/RESULTS.md): shut down the kernel of any other open chapter first (*Kernel →
# Shut Down Kernel*, or the *Running* tab), or both die.

# %%
import plotly.express as px
import torch
from IPython.display import display

from utils.checks import ch02 as check
from utils.corpus import load_corpus
from utils.dashboard import Dashboard
from utils.feature_scan import FeatureStats, encode_batch, padded_batches, tokenize_texts
from utils.model import load_model
from utils.sae import load_course_sae

torch.manual_seed(0)
model = load_model()
sae = load_course_sae()
tok = model.tokenizer
docs = load_corpus()
stats = FeatureStats.load()  # the cached corpus scan
print(f"SAE: {sae.cfg.d_sae} latents on {sae.cfg.hook_name}, k = {sae.cfg.k}")
print(f"corpus scan: {stats.n_tokens:,} tokens in the {len(stats.doc_ids)} training documents of the course SAE "
      f"({len(docs)} documents in the corpus)")

# %% [markdown]
# ## 1. What makes a latent fire?
#
# We encode a slice of held-out documents: run the model to layer 10, apply the SAE, and keep every latent on
# every token. `z[d, t, i]` is latent `i` on token `t` of document `d` (zero on padding).

# %%
sample = [d for d in docs if d["split"] == "val"][:32]
rows = tokenize_texts(tok, [d["text"] for d in sample], max_len=128)
order, tokens, mask = next(padded_batches(rows, batch_size=len(rows), pad_id=tok.eos_token_id))
sample = [sample[i] for i in order]  # padded_batches sorts documents by length
z = encode_batch(model, sae, tokens) * mask[..., None]  # (docs, pos, d_sae); BOS and padding zeroed
str_tokens = [[tok.decode([t]) for t in row] for row in tokens.tolist()]
print(f"z: {tuple(z.shape)}; {int(mask.sum())} real tokens; mean active latents per token "
      f"{(z[mask] > 0).sum(-1).float().mean():.1f}")

# %% [markdown]
# ### Exercise 02.1 — Top-activating examples
# **Difficulty** ●●○○○ · **Importance** ●●●●● · **≈ 10 min**
#
# Given one latent's activations `latent_acts` of shape `(batch, pos)`, return the `k` largest as three
# tensors `(values, batch_idx, pos_idx)`, largest first, over the *whole* matrix (two top examples may
# come from the same document).
#
# <details><summary>Hint 1 (nudge)</summary>
#
# Flatten, take `topk`, then turn each flat index back into a (row, column) pair.
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# `values, flat = latent_acts.flatten().topk(k)`; the row is `flat // n_pos` and the column `flat % n_pos`,
# where `n_pos = latent_acts.shape[1]`.
# </details>

# %%
def top_activating_examples(latent_acts: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # BEGIN SOLUTION
    values, flat = latent_acts.flatten().topk(min(k, latent_acts.numel()))
    n_pos = latent_acts.shape[1]
    return values, flat // n_pos, flat % n_pos
    # END SOLUTION


# %%
check.top_activating_examples(top_activating_examples)

# %% [markdown]
# A token on its own says little; we want the **context** that led up to it. The latent is computed from
# the prefix only (attention is causal), so most of the window should come *before* the token.
#
# ### Exercise 02.2 — Context windows
# **Difficulty** ●○○○○ · **Importance** ●●●○○ · **≈ 5 min**
#
# Return the tokens from `pos - before` to `pos + after` *inclusive*, clipped to the sequence, and the index
# of `pos` inside that window.
#
# <details><summary>Hint</summary>
#
# `start = max(0, pos - before)`; the window is `str_tokens[start : pos + after + 1]` and the index is
# `pos - start`. Without the `max`, a negative start would wrap around to the end of the list.
# </details>

# %%
def context_window(str_tokens: list[str], pos: int, before: int = 10, after: int = 3) -> tuple[list[str], int]:
    # BEGIN SOLUTION
    start = max(0, pos - before)
    return list(str_tokens[start : pos + after + 1]), pos - start
    # END SOLUTION


# %%
check.context_window(context_window)

# %% [markdown]
# Now put the two together. We print each example with the peak token in **[[ ]]**. We start with the latent
# that fires hardest anywhere in the slice (it turns out to fire on a word said twice in a row, "bright,
# bright"); change `latent` to explore others.

# %%
def show_examples(latent: int, k: int = 6) -> None:
    values, doc_idx, pos_idx = top_activating_examples(z[:, :, latent], k)
    for v, d, p in zip(values.tolist(), doc_idx.tolist(), pos_idx.tolist()):
        if v <= 0:
            break
        window, i = context_window(str_tokens[d], p)
        text = "".join(window[:i]) + "[[" + window[i] + "]]" + "".join(window[i + 1 :])
        print(f"{v:5.2f}  {text!r}")


latent = int(z.amax(dim=(0, 1)).argmax())
print(f"latent {latent}:")
show_examples(latent)

# %% [markdown]
# The cached corpus scan keeps, for every latent, its 20 strongest documents. Its top examples come from
# over a hundred times more text, so they are usually stronger and more typical than the slice's:

# %%
for doc, pos, value in zip(stats.top_docs[latent, :4].tolist(), stats.top_pos[latent, :4].tolist(),
                           stats.top_values[latent, :4].tolist()):
    ids = tokenize_texts(tok, [docs[doc]["text"]], stats.max_len)[0]
    window, i = context_window([tok.decode([t]) for t in ids], pos)
    print(f"{value:5.2f}  {''.join(window[:i]) + '[[' + window[i] + ']]' + ''.join(window[i + 1:])!r}")

# %% [markdown]
# ## 2. How often does a latent fire?
#
# The **activation density** of latent $i$ is the fraction of tokens on which it is non-zero,
# $p_i = \frac{1}{T}\sum_t [z_{t,i} > 0]$. With $k = 32$ of $4{,}608$ latents active per token the average is
# $32 / 4608 \approx 0.7\,\%$. Densities are best read on a log scale: a latent firing on 30 % of tokens is
# probably not a clean concept, and one that never fires is dead.
#
# A density needs many tokens: a latent that fires once in 10,000 tokens may not fire at all in our slice. So it
# is computed by a **scan**: encode the corpus one batch at a time, add to running counts, and throw each batch's
# latents away (`z` for every token of the corpus at once would not fit in memory; the cell after the exercise
# prints how much it would take). That is what `python -m utils.feature_scan` did, and what you build now.
#
# ### Exercise 02.3 — A density scan, batch by batch
# **Difficulty** ●●●○○ · **Importance** ●●●●○ · **≈ 15 min**
#
# Write `scan_density(model, sae, texts, batch_size, max_len)`, returning the fraction of the texts' **real
# tokens** on which each latent fires, shape `(d_sae,)`. The pieces are the ones section 1 used:
#
# * `tokenize_texts(model.tokenizer, texts, max_len)` gives one list of token ids per text, BOS first;
# * `padded_batches(rows, batch_size, pad_id=model.tokenizer.eos_token_id)` yields `(row_indices, tokens, mask)`:
#   `tokens` is `(b, pos)`, padded on the right, and `mask` is `True` on the real tokens only — not on padding
#   (the pad id is an ordinary token, so the SAE encodes it like any other) and not on BOS at position 0 (its
#   residual is one huge vector, the same in every text, that fires the same latents every time);
# * `encode_batch(model, sae, tokens)` gives the latents, `(b, pos, d_sae)`.
#
# The densities must not depend on `batch_size`: the check runs your scan with batches of different sizes.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# A density is a count divided by a count. Which two numbers must you carry from one batch to the next? Averaging
# each batch's density instead would give a short last batch as much weight as a full one.
# </details>
# <details><summary>Hint 2 (closer)</summary>
#
# Boolean indexing with the mask, `z[mask]`, keeps the real tokens of a batch as a `(n_real, d_sae)` matrix.
# Count firings on that, add to a running total (start it at `torch.zeros(sae.cfg.d_sae)`), and divide only after
# the loop.
# </details>

# %%
def scan_density(model, sae, texts: list[str], batch_size: int = 16, max_len: int = 128) -> torch.Tensor:
    # BEGIN SOLUTION
    rows = tokenize_texts(model.tokenizer, texts, max_len)
    fires, n_tokens = torch.zeros(sae.cfg.d_sae), 0
    for _, batch, batch_mask in padded_batches(rows, batch_size, pad_id=model.tokenizer.eos_token_id):
        z_batch = encode_batch(model, sae, batch).cpu()  # (b, pos, d_sae)
        fires += (z_batch[batch_mask] > 0).sum(0)
        n_tokens += int(batch_mask.sum())
    return fires / max(n_tokens, 1)
    # END SOLUTION


# %%
check.scan_density(scan_density)

# %% [markdown]
# Run your scan on the slice of section 1 (the same 32 documents). In one batch, section 1's `z` holds all of
# them; your scan, in batches of 16, must give the same densities. Then compare the slice (4 k tokens) with the
# corpus scan (450 k tokens): densities line up well for common latents, while rare latents are noisy on a small
# slice — one of the reasons we scan the corpus.

# %%
slice_density = scan_density(model, sae, [d["text"] for d in sample], batch_size=16, max_len=128)  # (d_sae,)
print(f"scan in batches vs section 1's one batch: max difference "
      f"{float((slice_density - (z[mask] > 0).float().mean(0)).abs().max()):.1e}")
print(f"z for all {stats.n_tokens:,} corpus tokens at once, in float32: "
      f"{stats.n_tokens * sae.cfg.d_sae * 4 / 2**30:.1f} GiB")
corpus_density = stats.density.float()
log_slice = torch.log10(slice_density + 1e-5)
log_corpus = torch.log10(corpus_density + 1e-7)
fig = px.histogram(x=log_corpus.numpy(), nbins=60, title="Latent density over the corpus",
                   labels={"x": "log10 fraction of tokens the latent fires on"})
fig.add_vline(x=float(torch.log10(torch.tensor(32 / 4608))), line_dash="dash", annotation_text="k / d_sae")
fig.show()
both = slice_density > 0
print(f"never fire on the corpus (dead): {int((stats.fire_counts == 0).sum())} latents; "
      f"fire on > 10 % of tokens: {int((corpus_density > 0.1).sum())}")
print(f"correlation of log densities, slice vs corpus, latents that fire on the slice: "
      f"{torch.corrcoef(torch.stack([log_slice[both], log_corpus[both]]))[0, 1]:.2f}")

# %% [markdown]
# ### What do the dense latents do?
#
# A few latents fire on more than 10 % of all tokens. What are they for? Their top-activating examples are the
# obvious place to look, but they are the few tokens where a latent fires *hardest*, not the thousands where it
# usually fires. Compare the two for the five densest latents: the tokens each one peaks on in its top corpus
# documents, and the tokens it fires on most often in the slice. Before you run the cell, guess what a latent
# that fires this often could be reading.

# %%
from collections import Counter

for i in corpus_density.topk(5).indices.tolist():
    fires_on = Counter(str_tokens[d][p] for d, p in (z[:, :, i] > 0).nonzero().tolist())
    peaks = [tok.decode([tokenize_texts(tok, [docs[d]["text"]], stats.max_len)[0][p]])
             for d, p in zip(stats.top_docs[i, :6].tolist(), stats.top_pos[i, :6].tolist())]
    print(f"latent {i:4d}  density {corpus_density[i]:5.1%}  peaks on {peaks}")
    print(f"{'':28}fires most often on {[t for t, _ in fires_on.most_common(8)]}")

# %% [markdown]
# Dense latents fire on the glue of text: " the", " a", commas, full stops, line breaks. Their top examples tell a
# different story — rare words, bits of code — and a label read off those examples would describe a sliver of
# what the latent does. Dense latents need not be noise (they may carry syntax, position or formatting that the
# reconstruction needs), but they make poor concept labels, and they can win a naive concept search (section 5). When a latent is dense, read where it *usually* fires, not only where it peaks.

# %% [markdown]
# ## 3. What does a latent do to the next token?
#
# Each latent $i$ writes its decoder row $d_i = W_\text{dec}[i]$ into the residual stream. The most direct
# thing $d_i$ can do is change the logits through the final RMSNorm and the unembedding, skipping the 19
# later blocks:
#
# $$\Delta\text{logits} = (d_i \odot \gamma)\,W_U,$$
#
# where $\gamma$ is the final norm's weight. (RMSNorm also divides by the norm of the whole residual vector;
# that is one positive number per token, so it does not change *which* tokens move most.) The top and
# bottom tokens of this vector are the latent's **direct logit effects**.
#
# ### Exercise 02.4 — Direct logit effects
# **Difficulty** ●●○○○ · **Importance** ●●●●○ · **≈ 5 min**
#
# `direction` is `(d_model,)`, `ln_final_weight` is `(d_model,)`, `W_U` is `(d_model, d_vocab)`; return
# `(d_vocab,)`.
#
# <details><summary>Hint</summary>
#
# An element-wise product, then a matrix product. Use the *decoder* row: it is what the latent writes. The
# encoder column is what it *reads*.
# </details>

# %%
def logit_effects(direction: torch.Tensor, ln_final_weight: torch.Tensor, W_U: torch.Tensor) -> torch.Tensor:
    # BEGIN SOLUTION
    return (direction * ln_final_weight) @ W_U
    # END SOLUTION


# %%
check.logit_effects(logit_effects)


# %%
def top_logit_tokens(latent: int, k: int = 8) -> tuple[list[str], list[str]]:
    with torch.no_grad():
        effects = logit_effects(sae.W_dec[latent].to(model.W_U.device), model.ln_final.weight, model.W_U)
    return ([tok.decode([i]) for i in effects.topk(k).indices],
            [tok.decode([i]) for i in (-effects).topk(k).indices])


for probe in (latent, 2801, 3175):
    promotes, suppresses = top_logit_tokens(probe)
    print(f"latent {probe}: promotes {promotes}\n{'':13}suppresses {suppresses}")

# %% [markdown]
# Most of these lists look like noise: rare word pieces such as "ptomatic" or "acerb". Latent 3175 (you
# will meet it again) fires on the word *bridge*, yet its direct effect promotes none of the words you would
# expect after "bridge". That is no contradiction. At layer 10 of 30, a latent mostly feeds the 19 *later
# layers*, not the logits directly, and directions that barely touch the common tokens end up ranking rare
# tokens (whose unembeddings are poorly trained) at the top. Direct logit effects become readable for latents
# near the last layers; here they are one piece of
# evidence, never the whole story; chapter 03 measures what a latent really does by intervening on it.
#
# ## 4. A latent dashboard
#
# A dashboard puts the evidence side by side: coloured top-activating examples from the whole corpus (one per
# document), the logit effects, and a histogram of the latent's non-zero activations. The coloured tokens are
# plain HTML (`utils.dashboard.token_spans_html`: the background's opacity is the activation; hover a token to
# read it), so a dashboard shows the same everywhere: here, in the feature browser of section 8, and in the
# static reference pages.
#
# ### Exercise 02.5 — A latent dashboard
# **Difficulty** ●●●○○ · **Importance** ●●●●○ · **≈ 20 min**
#
# Return a `Dashboard` for `latent` with:
# * `examples`: for each of the first `n_examples` documents in `stats.top_docs[latent]` (skip `-1`, which
#   means "no more documents"), tokenize the document with `tokenize_texts(tok, [text], stats.max_len)[0]`,
#   encode it with `encode_batch`, take the `context_window` around `stats.top_pos[latent, j]`, and pair the
#   window's tokens (decode each id with `tok.decode([id])`) with the latent's activation on each of them;
# * `top_logits` / `bottom_logits`: `n_logits` `(token, effect)` pairs, largest effects first / most
#   negative first, from `logit_effects` of the decoder row;
# * `hist`: `stats.hist[latent]` as a list, with `hist_edges=HIST_EDGES.tolist()` (from `utils.feature_scan`);
#   `density`: `stats.density[latent]` as a float.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# Compute `start = max(0, pos - before)` once and slice the activations with the *same* start and length as
# the tokens, or the colours land one token off.
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# ```python
# acts = encode_batch(model, sae, torch.tensor([ids]))[0, :, latent]
# window, _ = context_window([tok.decode([i]) for i in ids], pos, before, after)
# start = max(0, pos - before)
# examples.append((window, acts[start : start + len(window)].tolist()))
# ```
# and `top = effects.topk(n_logits)`, `bottom = (-effects).topk(n_logits)` (negate the values back).
# </details>

# %%
from utils.feature_scan import HIST_EDGES


def build_dashboard(latent: int, model, sae, stats: FeatureStats, docs: list[dict], n_examples: int = 6,
                    n_logits: int = 8, before: int = 10, after: int = 3, title: str = "") -> Dashboard:
    # BEGIN SOLUTION
    tok = model.tokenizer
    examples = []
    for doc, pos in zip(stats.top_docs[latent].tolist(), stats.top_pos[latent].tolist()):
        if doc < 0 or len(examples) == n_examples:
            break
        ids = tokenize_texts(tok, [docs[doc]["text"]], stats.max_len)[0]
        acts = encode_batch(model, sae, torch.tensor([ids]))[0, :, latent]
        window, _ = context_window([tok.decode([i]) for i in ids], pos, before, after)
        start = max(0, pos - before)
        examples.append((window, acts[start : start + len(window)].tolist()))
    with torch.no_grad():  # (.to: the SAE stays on the CPU when the model runs on a GPU)
        effects = logit_effects(sae.W_dec[latent].to(model.W_U.device), model.ln_final.weight, model.W_U).cpu()
    top, bottom = effects.topk(n_logits), (-effects).topk(n_logits)
    return Dashboard(
        latent=latent, examples=examples,
        top_logits=[(tok.decode([i]), v) for i, v in zip(top.indices.tolist(), top.values.tolist())],
        bottom_logits=[(tok.decode([i]), -v) for i, v in zip(bottom.indices.tolist(), bottom.values.tolist())],
        hist=stats.hist[latent].tolist(), hist_edges=HIST_EDGES.tolist(), density=float(stats.density[latent]),
        title=title,
    )
    # END SOLUTION


# %%
check.build_dashboard(build_dashboard)

# %%
display(build_dashboard(latent, model, sae, stats, docs, title="the slice's strongest latent"))
display(build_dashboard(2801, model, sae, stats, docs, title="found while browsing"))

# %% [markdown]
# For a closer look at a few rows, [circuitsvis](https://github.com/TransformerLensOrg/CircuitsVis) draws the
# same activations interactively (hover a token for its value). `utils.dashboard.colored_tokens_html` renders it
# from the JavaScript bundle inside the Python package, so it works offline; the bundle is 1.3 MB, which is why
# the dashboards themselves do without it.

# %%
from IPython.display import HTML

from utils.dashboard import colored_tokens_html

dash = build_dashboard(2801, model, sae, stats, docs, n_examples=2)
display(HTML(colored_tokens_html(dash.examples, labels=dash.example_labels)))

# %% [markdown]
# ## 5. Concept search: which latent is the bridge?
#
# 4,608 dashboards are too many to read. **Concept search** turns the question around: write a few texts that
# are about the concept and a few that are not, encode both, and rank latents by how much more they fire on
# the concept texts. `utils.concepts` has 16 bridge sentences, 16 praise sentences and 16 neutral ones, all
# written for the course.
#
# The score of a latent is a difference of two averages. Each text first becomes one vector: every latent's
# **mean over the text's real tokens**, $\bar z_i(x) = \frac{1}{|x|}\sum_{t \in x} z_{t,i}$ (BOS and padding
# left out, as in your scan), so that every text counts once, however long it is. The **concept score** of
# latent $i$ is then the mean of $\bar z_i$ over the concept texts $C$ minus its mean over the neutral texts $N$:
#
# $$s_i = \frac{1}{|C|}\sum_{x \in C} \bar z_i(x) \;-\; \frac{1}{|N|}\sum_{x \in N} \bar z_i(x).$$
#
# ### Exercise 02.6 — Concept search, end to end
# **Difficulty** ●●●○○ · **Importance** ●●●●● · **≈ 20 min**
#
# Write `concept_search(model, sae, concept_texts, neutral_texts, n, batch_size, max_len)`: encode both sets of
# texts (with the pieces of your scan: `tokenize_texts`, `padded_batches`, `encode_batch`), compute every
# latent's concept score $s_i$, and return `(latents, scores)`: the `n` latents with the highest scores, best
# first, and their scores, both of shape `(n,)`. The two sets need not have the same number of texts.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# Write a small inner function that turns a list of texts into a `(texts, d_sae)` matrix of per-text means, and
# call it once per set. Within a batch, a text's padding and BOS are exactly where `mask` is `False`.
# `padded_batches` reorders the texts by length; since you only average over texts, the order does not matter.
# </details>
# <details><summary>Hint 2 (closer)</summary>
#
# With `m = mask[..., None].float()`, a batch's per-text means are `(z * m).sum(1) / m.sum(1)`. After both sets
# are pooled, `.mean(0)` each, subtract, and `topk` gives the latents and their scores — mind the order in
# which `topk` returns them.
# </details>

# %%
def concept_search(model, sae, concept_texts: list[str], neutral_texts: list[str], n: int = 8, batch_size: int = 16,
                   max_len: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    # BEGIN SOLUTION
    def per_text_means(texts: list[str]) -> torch.Tensor:
        rows = tokenize_texts(model.tokenizer, texts, max_len)
        means = []
        for _, batch, batch_mask in padded_batches(rows, batch_size, pad_id=model.tokenizer.eos_token_id):
            m = batch_mask[..., None].float()  # (b, pos, 1)
            means.append((encode_batch(model, sae, batch).cpu() * m).sum(1) / m.sum(1).clamp_min(1))
        return torch.cat(means)  # (texts, d_sae), in padded_batches' order

    scores = per_text_means(concept_texts).mean(0) - per_text_means(neutral_texts).mean(0)
    top = scores.topk(n)
    return top.indices, top.values
    # END SOLUTION


# %%
check.concept_search(concept_search)

# %% [markdown]
# Now search. For each of the top 8 candidates we also print its density and its **purity**: the fraction of
# its 20 top corpus documents whose topic (from the corpus plan) is about the concept.

# %%
from utils import concepts
from utils.named_latents import concept_topics, purity

candidates = {}
for concept in ("bridge", "praise"):
    latents, scores = concept_search(model, sae, concepts.CONCEPTS[concept], concepts.NEUTRAL, n=8)
    candidates[concept] = latents.tolist()
    print(f"\n{concept}: latent   score  density  purity  peak tokens in the corpus")
    for i, score in zip(latents.tolist(), scores.tolist()):
        peaks = []
        for doc, pos in zip(stats.top_docs[i, :3].tolist(), stats.top_pos[i, :3].tolist()):
            peaks.append(tok.decode([tokenize_texts(tok, [docs[doc]["text"]], stats.max_len)[0][pos]]))
        print(f"{'':8}{i:6d}  {score:5.2f}  {100 * stats.density[i]:5.2f} %  "
              f"{purity(stats, docs, i, concept_topics(concept)):5.2f}   {peaks}")

# %% [markdown]
# The raw score is not the whole story. Look at the bridge list: the top-scoring latent fires on 5 % of *all*
# tokens, and its corpus examples ("crunch", "fog", "weight") have nothing to do with bridges — it fires a
# little more on descriptive text in general. A latent that fires often collects a large mean on any text with a
# little more of what it reads: the density warning of section 2 again. The latents with high purity are the specific ones.
# Purity is only as good as the corpus's topic labels, though: the model-written corpus gushes about almost
# everything, so few documents are *labelled* praise, and even the best praise candidate has a purity of 0.35.
#
# Let us read the dashboards of the three best bridge candidates by purity.

# %%
by_purity = sorted(candidates["bridge"], key=lambda i: -purity(stats, docs, i, concept_topics("bridge")))
for i in by_purity[:3]:
    display(build_dashboard(i, model, sae, stats, docs, n_examples=5, title="bridge candidate"))

# %% [markdown]
# The course keeps the outcome of this search in a small **registry** (`utils/named_latents.py`, rebuilt by
# `python -m utils.named_latents build`). Its rule is the one you just applied by eye: among the 8 concept-search
# candidates, take the one with the highest purity (ties broken by the score).

# %%
from utils.named_latents import load_registry

registry = load_registry()
for name, entry in registry.items():
    print(f"{name:15s} latent {entry.latent:5d}  {'verified' if entry.verified else 'browsed '}  {entry.label}")
bridge, praise = registry["bridge"], registry["praise"]
print("\nbridge search in the registry:", bridge.evidence["search"]["candidates"][:4])

# %% [markdown]
# ## 6. Does the label hold on text we did not look at?
#
# We chose the latents with the concept sentences and the corpus. A fair test needs *other* text:
# `utils/data/concept_eval.jsonl` holds short texts written for the course and labelled by hand (the cell below
# counts them) — Golden Gate texts, other bridges, **hard negatives** (the card game *bridge*, a dental bridge,
# San Francisco without its bridge, "golden" and "gate" in other senses), praise, near-misses of praise (balanced reviews, polite corrections) and everyday text.
# A latent flags a text when its **maximum** over the text's tokens exceeds a threshold — one third of its
# largest activation on the corpus, fixed before looking at these texts.
#
# ### Exercise 02.7 — Precision and recall of a detector
# **Difficulty** ●●○○○ · **Importance** ●●●●○ · **≈ 10 min**
#
# Return a `DetectorReport` (from `utils.features`) for the rule `score > threshold` against boolean `labels`:
# precision $= TP / (TP + FP)$ (define it as 1.0 when nothing is flagged), recall $= TP / (TP + FN)$, and the
# four counts.
#
# <details><summary>Hint</summary>
#
# `pred = scores > threshold`; `tp = (pred & labels).sum()`, `fp = (pred & ~labels).sum()`,
# `fn = (~pred & labels).sum()`, `tn = (~pred & ~labels).sum()`; convert counts with `int(...)`.
# </details>

# %%
from utils.features import DetectorReport


def detector_report(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> DetectorReport:
    # BEGIN SOLUTION
    pred, truth = scores > threshold, labels.bool()
    tp, fp = int((pred & truth).sum()), int((pred & ~truth).sum())
    fn, tn = int((~pred & truth).sum()), int((~pred & ~truth).sum())
    return DetectorReport(threshold=float(threshold), precision=tp / (tp + fp) if tp + fp else 1.0,
                          recall=tp / (tp + fn) if tp + fn else 0.0, true_positives=tp, false_positives=fp,
                          false_negatives=fn, true_negatives=tn)
    # END SOLUTION


# %%
check.detector_report(detector_report)

# %%
from utils.feature_scan import pooled_latents  # your concept search's pooling, also giving each text's max
from utils.features import auroc
from utils.named_latents import load_eval_texts

eval_texts = load_eval_texts()
_, eval_max = pooled_latents(model, sae, [t["text"] for t in eval_texts], progress=True)  # (texts, d_sae)
print(f"{len(eval_texts)} held-out texts")
for entry, concept in ((bridge, "bridge"), (praise, "praise")):
    labels = torch.tensor([t[concept] for t in eval_texts])
    scores = eval_max[:, entry.latent]
    r = detector_report(scores, labels, entry.threshold)
    print(f"{concept}: latent {entry.latent}, threshold {entry.threshold:.2f}: precision {r.precision:.2f}, "
          f"recall {r.recall:.2f} ({r.true_positives} TP, {r.false_positives} FP, {r.false_negatives} FN); "
          f"AUROC {auroc(scores, labels):.2f}")

# %% [markdown]
# Where do the mistakes come from? Each dot is one held-out text; the dashed line is the threshold.

# %%
for entry, concept in ((bridge, "bridge"), (praise, "praise")):
    fig = px.strip(x=eval_max[:, entry.latent].numpy(), y=[t["category"] for t in eval_texts],
                   hover_name=[t["text"][:80] for t in eval_texts],
                   title=f"latent {entry.latent} ({concept}): max activation per held-out text",
                   labels={"x": "max activation over the text", "y": ""})
    fig.add_vline(x=entry.threshold, line_dash="dash")
    fig.show()

# %% [markdown]
# Read the plots before you trust the numbers:
#
# * The **bridge** latent separates bridge texts from everything else almost perfectly (AUROC close to 1).
#   Its false positives are nearly all in `bridge_word_other_sense`: the card game, a dental bridge, the bridge
#   of a violin. So it is a latent for the *word* "bridge" that fires most on the *structure* — a detector of a
#   word more than of a landmark. A Golden Gate text that never says "bridge" ("the big orange span") is where
#   it misses. This 4,608-latent SAE has no latent for the Golden Gate Bridge alone; section 7 finds one in a
#   wider SAE trained on a corpus with almost four times as many mentions of it (the last cell of section 7
#   counts them).
# * The **praise** latent fires on admiring adjectives ("brilliant", "remarkable"). It ranks praise above
#   non-praise well, but it also fires, more weakly, on everyday adjectives in factual text ("castling is a
#   special move", "the Great Pyramid"), so its precision is lower: it tracks the *vocabulary* of flattery.
#   Whether clamping it makes the model flatter is a different, causal question, which chapter 03 answers by
#   experiment.
#
# The exact numbers are recorded in the registry and re-measured by `tests/test_named_latents.py`:

# %%
for name in ("bridge", "praise"):
    print(name, registry[name].evidence["detector"])

# %% [markdown]
# ## 7. Feature splitting: a wider SAE, and the Golden Gate Bridge itself
#
# The bridge latent fires on the *word*. Anthropic's Golden Gate feature came from a far wider SAE: as a
# dictionary grows, broad features **split** into specific ones (Bricken et al., 2023, watched one "base64"
# feature become several; Templeton et al., 2024, found the Golden Gate feature among 34 M). Open replications
# meet the same wall on small models: the specific landmark only appears in a much wider SAE than ours.
#
# The course ships a second, wider SAE for this section: **16,384 latents**, trained as a *Matryoshka* SAE
# (Bussmann et al., 2025): one training run in which the first 1,024 latents, the first 4,096 and all 16,384
# must each reconstruct the activations on their own (each prefix keeps its own top k = 32). So the narrow
# prefix holds broad latents and the later latents add detail, and `load_matryoshka_sae(width)` gives any of the
# three SAEs. Its corpus was extended for this purpose with model-written text about the Golden Gate Bridge,
# other named bridges, the other senses of "bridge", and the near misses ("golden", "gate", San Francisco).
# How good is each width on held-out text? (Recorded when it was trained; `tests/test_matryoshka_sae.py`
# re-measures it.)

# %%
from utils.feature_scan import matryoshka_stats_path
from utils.sae import load_matryoshka_sae

wide = load_matryoshka_sae()
widths = wide.cfg.nested_widths
print(f"{'width':>6}  {'held-out text':28s} {'FVU':>6} {'KL':>6} {'ΔCE':>6} {'CE rec.':>7} {'L0':>5}")
for w in widths:
    for name, m in wide.cfg.extra["nested_metrics"][str(w)].items():
        print(f"{w:6d}  {name:28s} {m['fvu']:6.3f} {m['kl']:6.3f} {m['delta_ce']:6.3f} {m['ce_loss_recovered']:7.3f} {m['l0']:5.1f}")
course = sae.cfg.extra["metrics"]["human_everyday_text"]
print(f"\ncourse SAE (4,608 latents) on human everyday text: FVU {course['fvu']:.3f}, KL {course['kl']:.3f}, "
      f"ΔCE {course['delta_ce']:.3f}")

# %% [markdown]
# ### Exercise 02.8 — Decoder neighbourhoods
# **Difficulty** ●●○○○ · **Importance** ●●●○○ · **≈ 10 min**
#
# A latent *writes* its decoder row into the residual stream. Latents whose rows point the same way write
# nearly the same thing: duplicates, parents and children of a split, or a polysemantic latent next to the
# concept it shares. Write `decoder_neighbours(W_dec, latent, n)` returning `(indices, cosines)`: the `n`
# latents with the largest **cosine similarity** between their decoder row and latent `latent`'s, largest first,
# the latent itself excluded. Rows need not have unit norm (a learner's SAE, or a model's weights, may not).
#
# <details><summary>Hint 1 (nudge)</summary>
#
# Cosine similarity is a dot product of unit vectors. Which axis of `W_dec` (d_sae, d_in) holds one latent?
# </details>
# <details><summary>Hint 2 (almost)</summary>
#
# Normalise the rows (`dim=-1`), multiply the whole matrix by the one row to get a `(d_sae,)` vector, and make
# sure the latent cannot pick itself before `topk`.
# </details>

# %%
def decoder_neighbours(W_dec: torch.Tensor, latent: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    # BEGIN SOLUTION
    rows = W_dec / W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)  # (d_sae, d_in)
    cosines = rows @ rows[latent]  # (d_sae,)
    cosines[latent] = -float("inf")
    values, indices = cosines.topk(n)
    return indices, values
    # END SOLUTION


# %%
check.decoder_neighbours(decoder_neighbours)

# %% [markdown]
# The bridge latent's neighbourhood in the course SAE. Which of these would you have called "bridge"?

# %%
idx, cos = decoder_neighbours(sae.W_dec.detach(), bridge.latent, 6)
for i, c in zip(idx.tolist(), cos.tolist()):
    name = next((n for n, e in registry.items() if e.latent == i), "")
    print(f"latent {i:5d}  cosine {c:.2f}  {name}")

# %% [markdown]
# ### Exercise 02.9 — Spot the polysemantic latent
# **Difficulty** ●●○○○ · **Importance** ●●●●○ · **≈ 15 min**
#
# The registry's browsed latents were first labelled by someone reading dashboards. A label is a claim about the
# latent's top examples, so check it the way a reviewer would: for each of the latent's `n` top documents, which
# token does it peak on? Write `peak_token_counts(tokenizer, stats, docs, latent, n)` returning a
# `collections.Counter` of those token strings. `stats.top_docs[latent, j]` is a document index (**-1** when the
# latent fired in fewer than `n` documents) and `stats.top_pos[latent, j]` the position of the peak *in the
# scanned sequence* — built by `tokenize_texts(tokenizer, [text], stats.max_len)[0]`, BOS first.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# Walk the first `n` pairs `(doc, pos)` together; skip the empty slots; tokenise the document exactly as the
# scan did, then decode one token id.
# </details>
# <details><summary>Hint 2 (almost)</summary>
#
# `ids = tokenize_texts(tokenizer, [docs[doc]["text"]], stats.max_len)[0]`, then
# `counts[tokenizer.decode([ids[pos]])] += 1`.
# </details>

# %%
from collections import Counter


def peak_token_counts(tokenizer, stats: FeatureStats, docs: list[dict], latent: int, n: int) -> Counter:
    # BEGIN SOLUTION
    counts: Counter = Counter()
    for doc, pos in zip(stats.top_docs[latent, :n].tolist(), stats.top_pos[latent, :n].tolist()):
        if doc < 0:
            continue
        ids = tokenize_texts(tokenizer, [docs[doc]["text"]], stats.max_len)[0]
        counts[tokenizer.decode([ids[pos]])] += 1
    return counts
    # END SOLUTION


# %%
check.peak_token_counts(peak_token_counts)

# %% [markdown]
# Here are the labels as they were first written, with the peak tokens each label predicts. Audit them: a label
# whose predicted tokens are fewer than half of the latent's peaks is contradicted by its own examples.

# %%
FIRST_LABELS = {  # latent: (first label, tokens that label predicts)
    2801: ("colosseum: the Colosseum in Rome", {"col", "osse", "um", "colosseum"}),
    631: ("tacoma_narrows: the Tacoma Narrows Bridge", {"narrow", "narrows", "tacoma"}),
    2066: ("phone: telephones", {"phone", "phones", "cell", "mobile"}),
    2000: ("elegance: elegance and beauty", {"elegance", "beauty", "elegant"}),
}
for latent, (label, predicted) in FIRST_LABELS.items():
    counts = peak_token_counts(tok, stats, docs, latent, 20)
    support = sum(c for t, c in counts.items() if t.strip().lower() in predicted) / sum(counts.values())
    verdict = "CONTRADICTED" if support < 0.5 else "supported"
    print(f"{latent:5d} {label:42s} support {support:4.0%}  {verdict:12s} {counts.most_common(4)}")
    neighbours, cosines = decoder_neighbours(sae.W_dec.detach(), latent, 3)
    print(f"{'':6}nearest decoder neighbours: {[(i, round(c, 2)) for i, c in zip(neighbours.tolist(), cosines.tolist())]}")

# %% [markdown]
# The "colosseum" latent peaks on " Bridge" more often than on the Colosseum, and it sits in the bridge latent's
# neighbourhood: it is **polysemantic** (landmark names, Roman and bridged alike). The "Tacoma Narrows" latent is
# a latent for names of waterways (" Narrow", " Harbour", " Strait", " Bay", "Wharf"). The registry now carries
# the corrected labels, and its build marks any browsed label whose support falls under one half:

# %%
for name, entry in registry.items():
    if not entry.verified:
        print(f"{name:22s} latent {entry.latent:5d}  support {entry.evidence['label_support']:4.0%}  {entry.label}")

# %% [markdown]
# ### Exercise 02.10 — Who takes over? Following a latent across widths
# **Difficulty** ●●●○○ · **Importance** ●●●●○ · **≈ 20 min**
#
# In the 1,024-latent prefix, one broad latent fires on bridges. When the SAE grows to 4,096 latents, on each
# token where that parent fired, some *new* latent (index ≥ 1,024) may now be the one that carries the specific
# meaning. Write `split_shares(parent_acts, wide_idx, wide_val, new_from)`: `parent_acts` is the parent's
# activation on every token `(n_tokens,)`; the wider SAE's codes are stored sparsely, as TopK gives them:
# `wide_idx` and `wide_val` `(n_tokens, k)` are the indices and values of its active latents. On each token where
# the parent fires, the **winner** is the new latent with the largest value (no winner if no new latent fires).
# Return `{latent: share}` where the share is the winner's count divided by the number of tokens where the parent
# fires, largest first.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# Select the parent's tokens first. Then make the old latents ineligible (set their values to 0) and take the
# largest remaining value per row.
# </details>
# <details><summary>Hint 2 (almost)</summary>
#
# `values.max(-1)` gives the best value and its column; `wide_idx.gather(-1, column[:, None])` turns the column
# into a latent index. Keep rows whose best value is > 0; `torch.bincount` or a `Counter` counts the winners.
# </details>

# %%
def split_shares(parent_acts: torch.Tensor, wide_idx: torch.Tensor, wide_val: torch.Tensor, new_from: int) -> dict[int, float]:
    # BEGIN SOLUTION
    fires = parent_acts > 0
    n_parent = int(fires.sum())
    if n_parent == 0:
        return {}
    idx, val = wide_idx[fires], wide_val[fires].clone()  # (n_parent, k)
    val[idx < new_from] = 0  # latents of the narrow SAE cannot be children
    best_val, best = val.max(-1)
    winners = idx.gather(-1, best[:, None])[:, 0][best_val > 0]
    counts = Counter(winners.tolist())
    return {latent: c / n_parent for latent, c in counts.most_common()}
    # END SOLUTION


# %%
check.split_shares(split_shares)

# %% [markdown]
# Now follow the broad bridge latent of the 1,024-latent prefix (found by the same search rule as before, at that
# width) on every token of 240 corpus passages about bridges — the Golden Gate, other named bridges, bridges in
# general and the other senses of the word. Each new latent is
# labelled by the tokens it peaks on in the corpus (your `peak_token_counts`, on each width's own corpus scan).

# %%
from utils.dashboard import split_sankey
from utils.feature_scan import topk_codes
from utils.named_latents import load_registry as load_any_registry

wide_registry = load_any_registry("matryoshka_sae")
broad, golden = wide_registry["bridge"], wide_registry["golden_gate"]
wide_stats = {w: FeatureStats.load(matryoshka_stats_path(w)) for w in widths}
import random

bridge_docs = [d for d in docs if d["kind"] == "model" and ("ridge" in d["topic"] or "Golden Gate" in d["topic"])]
bridge_docs = random.Random(0).sample(bridge_docs, 240)  # passages about bridges of every kind, and the word's other senses
codes = topk_codes(model, wide, [d["text"] for d in bridge_docs], widths, max_len=96, progress=True)


def acts_of(width: int, latent: int) -> torch.Tensor:
    """One latent's activation on every token, from the sparse codes at ``width``."""
    idx, val = codes[width]
    return (val * (idx == latent)).sum(-1)


def label(width: int, latent: int) -> str:
    """The latent's most common peak token and the most common corpus topic of its 20 top documents."""
    token = peak_token_counts(tok, wide_stats[width], docs, latent, 20).most_common(1)[0][0]
    topics = Counter(docs[d]["topic"] for d in wide_stats[width].top_docs[latent].tolist() if d >= 0)
    topic, count = topics.most_common(1)[0]
    return f"{width}: #{latent} {token!r} · {topic} ({count}/20)"


edges = []
for child, share in list(split_shares(acts_of(widths[0], broad.latent), *codes[widths[1]], widths[0]).items())[:5]:
    edges.append(((widths[0], broad.latent), (widths[1], child), share))
    for grandchild, sub in list(split_shares(acts_of(widths[1], child), *codes[widths[2]], widths[1]).items())[:3]:
        edges.append(((widths[1], child), (widths[2], grandchild), share * sub))
labels = {node: label(*node) for e in edges for node in e[:2]}
won = sum(share for (w, _), _, share in edges if w == widths[0])
print(f"the five largest children at width {widths[1]} win {won:.0%} of the parent's {int((acts_of(widths[0], broad.latent) > 0).sum())} tokens")
split_sankey(edges, labels, title=f"How the broad bridge latent #{broad.latent} splits (share of its tokens)")

# %% [markdown]
# Hover over the links for the shares. What the picture says, and what it does not:
#
# * The broad latent fires on the word "bridge" in every sense. At 4,096 latents, new latents take over parts of
#   its tokens, but each is still mostly a "bridge" latent in some context (their top documents mix topics). At
#   16,384, some children are specific: look for the Brooklyn Bridge, Tower Bridge, the Rialto, a dental bridge.
#   This is feature splitting, on a small scale.
# * The five largest children win only about a third of the parent's tokens (printed above): on most bridge tokens
#   no new latent outcompetes the parent. The parent keeps the general meaning; the children add detail where the
#   corpus gave them enough examples.
# * The Golden Gate is **not** among the children. Where is it? The registry answers.
#
# ### The Golden Gate latent
#
# The registry's `golden_gate` entry was found by the same documented rule as the bridge latent, with a harder
# contrast: its concept sentences are about the Golden Gate Bridge, and the sentences it must beat are other named
# bridges, San Francisco without its bridge, and "golden" and "gate" in other senses (`utils/concepts.py`). The
# search ran at every width; here is where a Golden Gate candidate appears, judged on the held-out texts:

# %%
for w, row in golden.evidence["by_width"].items():
    print(f"width {int(w):6d}: wide-SAE latent {row['latent']:5d}  AUROC vs everything {row['auroc']:.2f}, vs other bridges "
          f"{row['auroc_vs_other_bridge']:.2f}; precision {row['precision']:.2f}, recall {row['recall']:.2f}")
display(build_dashboard(golden.latent, model, wide, wide_stats[widths[-1]], docs, n_examples=6, title="golden_gate"))

# %% [markdown]
# Re-measure it here, on the held-out texts (never used in the search), category by category:

# %%
_, wide_max = pooled_latents(model, wide, [t["text"] for t in eval_texts], progress=True)
gg_scores = wide_max[:, golden.latent]
gg_labels = torch.tensor([t["golden_gate"] for t in eval_texts])
r = detector_report(gg_scores, gg_labels, golden.threshold)
vs_bridges = torch.tensor([t["golden_gate"] or t["category"] == "other_bridge" for t in eval_texts])
print(f"golden_gate: wide-SAE latent {golden.latent}: precision {r.precision:.2f}, recall {r.recall:.2f}; "
      f"AUROC vs everything {auroc(gg_scores, gg_labels):.2f}, vs other bridges "
      f"{auroc(gg_scores[vs_bridges], gg_labels[vs_bridges]):.2f}")
fig = px.strip(x=gg_scores.numpy(), y=[t["category"] for t in eval_texts], hover_name=[t["text"][:80] for t in eval_texts],
               title=f"wide-SAE latent {golden.latent} (golden_gate): max activation per held-out text",
               labels={"x": "max activation over the text", "y": ""})
fig.add_vline(x=golden.threshold, line_dash="dash")
fig.show()

# %% [markdown]
# Read the evidence before the label:
#
# * The latent peaks on **" Gate" after "Golden"** in every one of its top documents. It is a latent for the
#   *name* of the Golden Gate: the Golden Gate texts it misses are the ones that never name the bridge ("the big
#   orange span at the mouth of the bay"), and its false positive is Golden Gate Park. Its separation from other
#   named bridges is what the bridge latent of the 4,608-latent SAE could not do at all.
# * It is the **same latent at every width**, inside the first 1,024. It did not come from splitting the bridge
#   latent: read the labels in the Sankey above. No child peaks on " Gate"; they peak on the *word* "bridge" (or a
#   neighbour such as "engineering") in particular contexts — a song, a dental bridge, a few named bridges. What
#   earned the Golden Gate a latent, in our runs, was frequency: the cell below counts the name in the corpus
#   each SAE was trained on. One run of each SAE is suggestive, not a controlled experiment: a wider SAE on the
#   base corpus alone would be the test.

# %%
from utils.corpus import load_corpus as _load

for name, part in (("course SAE (4,608 latents): base corpus", ["base"]), ("wide SAE: base + golden_gate parts", None)):
    train = _load(split="train", parts=part)
    mentions = sum(d["text"].count("Golden Gate") for d in train)
    print(f"{name:45s} {mentions:5d} mentions of 'Golden Gate' in {len(train)} training documents")

# %% [markdown]
# ## 8. A feature browser
#
# Pick a latent by number or by name, or type a word and press Enter to jump to the best latent for its last
# token. Try "What a brilliant", "phone", "We walked across the bridge", and "Golden Gate Bridge": this
# 4,608-latent SAE has no Golden Gate latent (section 7), so the last one lands on the word *bridge*.
#
# "Best" is not "strongest". Ranked by raw activation, "Golden Gate Bridge" lands on a dense latent that fires on
# 18 % of all tokens, and a bare word like "phone" on a latent for *the first word of a document* (a query typed
# on its own sits right after `<|im_start|>`). The browser therefore reads your text after the lead-in "Text: "
# and ranks latents by activation × specificity, where specificity $= \log_{10}(1/\text{density})/2$: 1 for a
# latent that fires on 1 % of tokens, 0.37 at 18 %. `tests/test_features.py` pins both claims. To browse the
# wide SAE of section 7 instead, pass `wide` and `wide_stats[16384]`.

# %%
from utils.browser import feature_browser

feature_browser(model, sae, stats, docs, names={n: e.latent for n, e in registry.items()}, build=build_dashboard)

# %% [markdown]
# ## Recap
#
# * **Top-activating examples** with context, **density** and **direct logit effects** are the three basic views
#   of a latent; a **dashboard** shows them together.
# * **Concept search** ranks latents by contrast between concept and neutral texts; dense, generic latents
#   can win the raw ranking, so read the candidates' examples (purity) before naming one.
# * A name is a claim. We tested ours as **detectors on held-out, hand-labelled text** with hard negatives:
#   the bridge latent (AUROC ≈ 0.98) is a word-level "bridge" latent, the praise latent is a
#   praise-vocabulary latent with lower precision.
# * **Decoder neighbourhoods** and a **label audit** (do a latent's own top examples support its label?) catch
#   polysemantic latents: two of the registry's first labels did not survive it.
# * In a **Matryoshka SAE** the narrow prefix holds broad latents and later latents add detail: the broad bridge
#   latent splits into contexts and a few named bridges. The **Golden Gate latent** (peaks on " Gate" after
#   "Golden") was found by the documented rule and verified on held-out text with hard negatives; in our runs it
#   appeared with enough data, already at 1,024 latents, rather than with width.
#
# **Published numbers to compare with.** Templeton et al. (2024, *Scaling Monosemanticity*) trained SAEs with
# about 1 M, 4 M and 34 M features on a middle layer of Claude 3 Sonnet; in the 34 M SAE about 65 % of the
# features were dead (we have none dead of 4,608, in a far smaller dictionary). Their Golden Gate Bridge
# feature responded to the bridge in several languages and in images, and they also reported features for
# sycophantic praise; clamping the bridge feature produced "Golden Gate Claude", public for a day in May 2024.
#
# Bussmann et al. (2025, *Learning Multi-Level Features with Matryoshka Sparse Autoencoders*) introduced the nested
# objective used here to reduce feature absorption and splitting artefacts; open replications of the Golden Gate
# feature on small models report needing much wider SAEs than the 4× and 8× ones that give only sub-word and
# word-level features.
#
# **What changes at frontier scale.** Bigger dictionaries split concepts finely ("feature splitting"): our one
# "bridge" latent would become many — the Golden Gate, suspension bridges, the card game — and a landmark's
# feature would respond to descriptions that never name it, which ours does not. Labelling millions of
# latents is done with an LLM that reads the top examples and writes an explanation, scored by how well a second
# model predicts activations from it (Bills et al., 2023). The evidence you built here — examples, density,
# logit effects, held-out detection — is what those pipelines automate.
#
# **Further reading.** Bricken et al. (2023), *Towards Monosemanticity* (the first dashboards, and feature
# splitting); Bussmann et al. (2025), *Learning Multi-Level Features with Matryoshka Sparse Autoencoders*;
# Templeton et al. (2024), *Scaling Monosemanticity*; Gao et al. (2024), *Scaling and evaluating sparse
# autoencoders* (TopK); Bills et al. (2023), *Language models can explain neurons in language models*.
