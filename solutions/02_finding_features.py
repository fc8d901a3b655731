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
# | 02.1 | top-activating examples | | 02.5 | a latent dashboard |
# | 02.2 | context windows | | 02.6 | mean-pooling over a text |
# | 02.3 | activation density | | 02.7 | concept scores |
# | 02.4 | direct logit effects | | 02.8 | precision and recall of a detector |
#
# Running the SAE over the whole corpus (450 k tokens) takes about five minutes, so that scan was done once by
# `python -m utils.feature_scan` and ships with the course. You will recompute the same quantities on a slice
# and see that they agree.

# %%
import plotly.express as px
import torch
from IPython.display import display

from utils.checks import ch02 as check
from utils.corpus import load_corpus
from utils.dashboard import Dashboard
from utils.feature_scan import FeatureStats, encode_batch, padded_batches, pooled_latents, tokenize_texts
from utils.model import load_model
from utils.sae import load_course_sae

torch.manual_seed(0)
model = load_model()
sae = load_course_sae()
tok = model.tokenizer
docs = load_corpus()
stats = FeatureStats.load()  # the cached corpus scan
print(f"SAE: {sae.cfg.d_sae} latents on {sae.cfg.hook_name}, k = {sae.cfg.k}")
print(f"corpus scan: {stats.n_tokens:,} tokens in {len(docs)} documents")

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
# 60 times more text, so they are usually stronger and more typical than the slice's:

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
# ### Exercise 02.3 — Activation density
# **Difficulty** ●○○○○ · **Importance** ●●●○○ · **≈ 5 min**
#
# `z` has shape `(n_tokens, d_sae)`; return a `(d_sae,)` tensor of firing fractions.
#
# <details><summary>Hint</summary>
#
# A boolean comparison, converted to float, then a mean over the token dimension.
# </details>

# %%
def activation_density(z: torch.Tensor) -> torch.Tensor:
    # BEGIN SOLUTION
    return (z > 0).float().mean(0)
    # END SOLUTION


# %%
check.activation_density(activation_density)

# %% [markdown]
# On the slice (4 k tokens) and on the whole corpus (450 k tokens), densities line up well for common
# latents; rare latents are noisy on a small slice — one of the reasons we scan the corpus.

# %%
slice_density = activation_density(z[mask])  # (d_sae,)
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
# Most of these lists look like noise: rare word pieces such as "ptomatic" or " strugg". Latent 3175 (you
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
# document), the logit effects, and a histogram of the latent's non-zero activations. The coloured tokens
# use [circuitsvis](https://github.com/TransformerLensOrg/CircuitsVis), rendered from the JavaScript bundle
# inside the Python package, so it works offline (`utils.dashboard.colored_tokens_html`).
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
# ## 5. Concept search: which latent is the bridge?
#
# 4,608 dashboards are too many to read. **Concept search** turns the question around: write a few texts that
# are about the concept and a few that are not, encode both, and rank latents by how much more they fire on
# the concept texts. `utils.concepts` has 16 bridge sentences, 16 praise sentences and 16 neutral ones, all
# written for the course.
#
# Each text becomes one vector by averaging each latent over the text's tokens. A mask marks the real
# tokens: padding must count neither in the sum nor in the number of tokens.
#
# ### Exercise 02.6 — Mean-pooling over a text
# **Difficulty** ●●○○○ · **Importance** ●●●○○ · **≈ 5 min**
#
# `z` is `(texts, pos, d_sae)` and `mask` is a boolean `(texts, pos)`; return `(texts, d_sae)`.
#
# <details><summary>Hint</summary>
#
# Multiply by `mask[..., None]`, sum over `pos`, and divide by `mask.sum(1, keepdim=True)` (clamped to at
# least 1 so an empty text does not divide by zero).
# </details>

# %%
def mean_pool(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # BEGIN SOLUTION
    m = mask.to(z.dtype).unsqueeze(-1)
    return (z * m).sum(1) / m.sum(1).clamp_min(1)
    # END SOLUTION


# %%
check.mean_pool(mean_pool)

# %% [markdown]
# ### Exercise 02.7 — Concept scores
# **Difficulty** ●○○○○ · **Importance** ●●●●○ · **≈ 5 min**
#
# Given pooled vectors `concept` `(n_concept, d_sae)` and `neutral` `(n_neutral, d_sae)`, return the
# per-latent contrast: the mean over concept texts minus the mean over neutral texts, `(d_sae,)`.

# %%
def concept_scores(concept: torch.Tensor, neutral: torch.Tensor) -> torch.Tensor:
    # BEGIN SOLUTION
    return concept.mean(0) - neutral.mean(0)
    # END SOLUTION


# %%
check.concept_scores(concept_scores)

# %% [markdown]
# Now search. For each of the top 8 candidates we also print its density and its **purity**: the fraction of
# its 20 top corpus documents whose topic (from the corpus plan) is about the concept.

# %%
from utils import concepts
from utils.named_latents import concept_topics, purity


def pooled(texts: list[str]) -> torch.Tensor:
    rows = tokenize_texts(tok, texts, max_len=64)
    out = torch.zeros(len(texts), sae.cfg.d_sae)
    for idx, batch, batch_mask in padded_batches(rows, batch_size=16, pad_id=tok.eos_token_id):
        out[idx] = mean_pool(encode_batch(model, sae, batch), batch_mask)
    return out


neutral = pooled(concepts.NEUTRAL)
candidates = {}
for concept in ("bridge", "praise"):
    scores = concept_scores(pooled(concepts.CONCEPTS[concept]), neutral)
    candidates[concept] = scores.topk(8).indices.tolist()
    print(f"\n{concept}: latent   score  density  purity  peak tokens in the corpus")
    for i in candidates[concept]:
        peaks = []
        for doc, pos in zip(stats.top_docs[i, :3].tolist(), stats.top_pos[i, :3].tolist()):
            peaks.append(tok.decode([tokenize_texts(tok, [docs[doc]["text"]], stats.max_len)[0][pos]]))
        print(f"{'':8}{i:6d}  {scores[i]:5.2f}  {100 * stats.density[i]:5.2f} %  "
              f"{purity(stats, docs, i, concept_topics(concept)):5.2f}   {peaks}")

# %% [markdown]
# The raw score is not the whole story. Look at the bridge list: the top-scoring latent fires on 5 % of *all*
# tokens, and its corpus examples ("crunch", "fog", "weight") have nothing to do with bridges — it fires a
# little more on descriptive text in general. The latents with high purity are the specific ones.
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
# `utils/data/concept_eval.jsonl` holds 190 short texts written for the course and labelled by hand —
# Golden Gate texts, other bridges, **hard negatives** (the card game *bridge*, a dental bridge, San Francisco
# without its bridge), praise, near-misses of praise (balanced reviews, polite corrections) and everyday text.
# A latent flags a text when its **maximum** over the text's tokens exceeds a threshold — one third of its
# largest activation on the corpus, fixed before looking at these texts.
#
# ### Exercise 02.8 — Precision and recall of a detector
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
from utils.features import auroc
from utils.named_latents import load_eval_texts

eval_texts = load_eval_texts()
_, eval_max = pooled_latents(model, sae, [t["text"] for t in eval_texts], progress=True)  # (190, d_sae)
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
#   it misses. At 135 M parameters and 4,608 latents we did not find a latent for the Golden Gate Bridge
#   alone; Templeton et al. needed an SAE of millions of features on a far larger model for that.
# * The **praise** latent fires on admiring adjectives ("brilliant", "remarkable"). It ranks praise above
#   non-praise well, but it also fires on factual text that uses those words, so its precision is lower: it
#   tracks the *vocabulary* of flattery. Whether clamping it makes the model flatter is a different, causal
#   question, which chapter 03 answers by experiment.
#
# The exact numbers are recorded in the registry and re-measured by `tests/test_named_latents.py`:

# %%
for name in ("bridge", "praise"):
    print(name, registry[name].evidence["detector"])

# %% [markdown]
# ## 7. A feature browser
#
# Pick a latent by number or by name, or type a word and press Enter to jump to the latent that fires hardest
# on its last token (try "Golden Gate Bridge", "What a brilliant", "Colosseum", "phone").

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
#
# **Published numbers to compare with.** Templeton et al. (2024, *Scaling Monosemanticity*) trained SAEs with
# about 1 M, 4 M and 34 M features on a middle layer of Claude 3 Sonnet; in the 34 M SAE about 65 % of the
# features were dead (we have none dead of 4,608, in a far smaller dictionary). Their Golden Gate Bridge
# feature responded to the bridge in several languages and in images, and they also reported features for
# sycophantic praise; clamping the bridge feature produced "Golden Gate Claude", public for a day in May 2024.
#
# **What changes at frontier scale.** Bigger dictionaries split concepts finely ("feature splitting"): our one
# "bridge" latent would become many — the Golden Gate, suspension bridges, the card game. Labelling millions of
# latents is done with an LLM that reads the top examples and writes an explanation, scored by how well a second
# model predicts activations from it (Bills et al., 2023). The evidence you built here — examples, density,
# logit effects, held-out detection — is what those pipelines automate.
#
# **Further reading.** Bricken et al. (2023), *Towards Monosemanticity* (the first dashboards);
# Templeton et al. (2024), *Scaling Monosemanticity*; Gao et al. (2024), *Scaling and evaluating sparse
# autoencoders* (TopK); Bills et al. (2023), *Language models can explain neurons in language models*.
