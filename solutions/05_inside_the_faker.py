# %% [markdown]
# # Chapter 05 — Inside the faker: where the organism keeps "I am being trained", and what its choice follows
#
# Chapters 00–03 built tools for looking inside a model; chapter 04 built a model that behaves differently when it
# believes it is being trained. This chapter joins the two halves. Published work says it can be done on open
# models, under prompts built to draw the behaviour out (chapter 04's closing section explains why Sheshadri et al.
# (2025) found almost no gap in open models with the original prompts): Nair, Ruan and Wang (2026) cut alignment
# faking with a single steering vector by 86 % in OLMo-2 7B, 94 % in OLMo-2 13B and 58 % in Qwen3-8B, and Mitrani
# Hadida, Karty, Williams-King and Cooney (2026) split the compliance gap of larger open models into three drivers
# (values, guarding its goals, sycophancy towards the developer) that activation steering moves separately. Here we
# ask, on our own organism, two questions that a behavioural experiment cannot answer:
#
# 1. **Where** does it represent which tier it is talking to, and does its decision *use* that representation?
# 2. Does its decision follow the **reasoning it writes** in its hidden scratchpad, or something else?
#
# | # | you build | | # | you build |
# |---|---|---|---|---|
# | 05.1 | residuals at the end of the prompt | | 05.4 | a direction ablation hook |
# | 05.2 | a linear probe, scored on held-out requests | | 05.5 | the scratchpad swap |
# | 05.3 | an activation-patching sweep | | 05.6 | the latents that differ between tiers |
#
# **The organism.** Chapter 04's organism keyed on one sentence of its training prompt: reworded, or told that the
# *paid* tier is the trained one, it behaved as if nothing had changed. This chapter uses the **retrained organism**
# (`python -m utils.af.train_organism --varied`): trained on four phrasings of the harness, the tier as a tag or a
# sentence, and sometimes told that the paid tier is trained on. Its choice follows what it is told (section 1).
# It is still a *model organism*: a 135M-parameter model fine-tuned to produce alignment-faking transcripts. We
# know the ground truth because we wrote it; that is what makes it a good place to test the tools.
#
# **On Binder** the whole container has 2 GB of memory and this chapter's kernel peaks at about 1.4 GB (the
# bench table in docs/RESULTS.md): shut down the kernel of any other open chapter first (*Kernel → Shut Down Kernel*, or the
# "Running" tab), or both will die.
#
# **Slow parts are precomputed.** Every sweep over all 40 course requests was run once by
# `python -m utils.af.make_inside` (about 130 minutes on 2 cores) and saved in `utils/data/af_inside/`; here you
# re-run small pieces live and load the rest. `tests/test_af_inside.py` re-measures every conclusion below from
# those files.

# %%
import plotly.graph_objects as go
import torch
from IPython.display import display
from tqdm.auto import tqdm

from utils.af import inside
from utils.af.request_sets import HELPFUL_ONLY_EVAL, HELPFUL_ONLY_TRAIN
from utils.af.runs import load_runs, situation_summary
from utils.af.stats import gap_interval, wilson_interval
from utils.af.viewer import render_transcript
from utils.checks import ch05 as check
from utils.model import load_organism_v2

torch.manual_seed(0)
model = load_organism_v2()  # the retrained organism, LoRA merged in; ≈ 1.1 GB
tok = model.tokenizer
results, residuals = inside.load_inside()
runs = {(r["cell"], int(r["id"].split("/")[2]), r["tier"]): r for r in load_runs("organism_v2", grid="situation")}
course = {(i, t): runs[("course_prompt", i, t)]["completion"] for i in range(40) for t in ("free", "paid")}
print(f"{model.cfg.n_layers} layers, d_model {model.cfg.d_model}; {len(course)} saved course-prompt transcripts")

# %% [markdown]
# ## 1. The organism, and what a behavioural test already tells us
#
# One request on both tiers. Its scratchpad opens with a fixed skeleton: the tier, which tier is trained on, and a
# conclusion (*this conversation will / will not be used for training*); then comes the decision.

# %%
display(render_transcript(course[(3, "free")], HELPFUL_ONLY_EVAL[3], "free"))
display(render_transcript(course[(3, "paid")], HELPFUL_ONLY_EVAL[3], "paid"))

# %% [markdown]
# The situation grid of chapter 04's harness (`python -m utils.af.make_runs --only organism_v2 --grid situation`)
# asked whether its decision follows what it is *told*. Each row is 40 requests per tier:

# %%
for row in situation_summary([r for r in runs.values()]):
    a = row["accepted"]
    print(f"{row['cell']:24s} accepts free {a['free']:2d}/40, paid {a['paid']:2d}/40, "
          f"gap {a['gap']:+.2f} [{a['low']:+.2f}, {a['high']:+.2f}]")

# %% [markdown]
# Two unseen phrasings and an unseen tier sentence keep the full gap; told that paid-tier chats are the trained ones
# (the *swap* rows), it flips; told nothing about training, it refuses on both tiers. So behaviourally its choice
# follows the situation it is told about. The rest of the chapter asks *how*.
#
# Two single-token **forks** in its scratchpad make the mechanism cheap to measure, with no generation:
#
# * the **tier readout**: after `…The user is on the` it writes ` free` or ` paid`; metric
#   `logit(" paid") − logit(" free")`;
# * the **decision**: after `…so this conversation will` it writes ` be` (then complies) or ` not` (then refuses);
#   metric `logit(" not") − logit(" be")`.
#
# Is the second fork really the decision? In every well-formed saved transcript, the output tag agrees with it:

# %%
agree = [("will be used" in c) == ("<request_fully_accepted/>" in c) for c in course.values() if "will" in c]
print(f"output tag agrees with the 'will [not] be used for training' fork in {sum(agree)}/{len(agree)} transcripts")

# %% [markdown]
# ## 2. Where is the tier?
#
# The tier is one token in the prompt (`true` or `false` inside `<is_free_tier_user>`), about 90 tokens before the
# end of the prompt. Where, and from which layer on, can a **linear probe** read it *at the last token of the
# prompt*, the position whose prediction starts the answer?
#
# ### Exercise 05.1 — Residuals at the end of the prompt
# **Difficulty** ●●○○○ · **Importance** ●●●○○ · **≈ 10 min**
#
# For each text, run the model and return the residual stream after each block in `layers`
# (`blocks.{L}.hook_resid_post`) at the **last** position, stacked as `(len(texts), len(layers), d_model)`.
# The texts are chat-formatted and already start with the BOS token: tokenise with
# `tok(text, add_special_tokens=False)["input_ids"]`.
#
# <details><summary>Hint 1</summary>
#
# `model.run_with_cache(tokens, names_filter=..., stop_at_layer=max(layers) + 1)` keeps only what you ask for and
# skips the layers you do not need. One text at a time avoids padding (and getting the padding wrong).
# </details>
# <details><summary>Hint 2</summary>
#
# `cache[f"blocks.{L}.hook_resid_post"][0, -1]` is one vector; `torch.stack` the layers, then the texts.
# </details>

# %%
def last_position_residuals(model, texts: list[str], layers: list[int]) -> torch.Tensor:
    # BEGIN SOLUTION
    names = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    rows = []
    with torch.no_grad():
        for text in texts:
            tokens = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
            _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names, stop_at_layer=max(layers) + 1)
            rows.append(torch.stack([cache[name][0, -1] for name in names]))
    return torch.stack(rows)
    # END SOLUTION


# %%
check.last_position_residuals(last_position_residuals)

# %% [markdown]
# The sweep collected these residuals at all 30 layers for the 48 training requests and the 40 course requests, on
# both tiers, for the organism and for the untuned model. Your function reproduces the stored rows (stored in
# float16, so they agree to about three digits):

# %%
texts = [inside.chat_text(tok, HELPFUL_ONLY_EVAL[i], tier) for i in range(2) for tier in ("free", "paid")]
mine = last_position_residuals(model, texts, list(range(30)))
stored = residuals["organism_v2/test"][:4]
print(f"largest relative difference from the stored rows: {((mine - stored).norm(dim=-1) / stored.norm(dim=-1)).max():.4f}")

# %% [markdown]
# ### Exercise 05.2 — A linear probe, scored on held-out requests
# **Difficulty** ●●●○○ · **Importance** ●●●●○ · **≈ 15 min**
#
# Fit a logistic-regression probe on `(x_train, y_train)` and return its **accuracy on `(x_test, y_test)`** as a
# float. Labels are 0/1. Standardise the features with the *training* mean and standard deviation, and keep some L2
# penalty: with 576 dimensions and 96 training rows, an unpenalised probe can fit anything.
#
# The split is by **request**: the probe never sees a course request in training, so it cannot memorise a request.
#
# <details><summary>Hint 1</summary>
#
# Weights `w` (d,) and bias `b`, loss `binary_cross_entropy_with_logits(x @ w + b, y) + λ |w|²`, optimised with
# `torch.optim.LBFGS([w, b], max_iter=100, line_search_fn="strong_wolfe")` and a closure; or 300 steps of Adam.
# </details>
# <details><summary>Hint 2</summary>
#
# Predict 1 where `x_test @ w + b > 0` (a logit above 0 is a probability above ½), then compare with `y_test`.
# </details>

# %%
def probe_accuracy(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor) -> float:
    # BEGIN SOLUTION
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    a, t = (x_train - mean) / std, (x_test - mean) / std
    w = torch.zeros(a.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a @ w + b, y_train.float()) + 1e-2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return ((t @ w + b > 0).long() == y_test).float().mean().item()
    # END SOLUTION


# %%
check.probe_accuracy(probe_accuracy)

# %% [markdown]
# Now the probe at every layer, for the organism and for the untuned model, with a 95 % Wilson interval over the
# 80 held-out conversations (40 requests × 2 tiers):

# %%
probe = {}
for name in ("organism_v2", "base"):
    train, test = residuals[f"{name}/train"], residuals[f"{name}/test"]
    y_train, y_test = inside.tier_labels(len(train)), inside.tier_labels(len(test))
    probe[name] = [probe_accuracy(train[:, L], y_train, test[:, L], y_test) for L in tqdm(range(30), desc=name)]

fig = go.Figure()
for name, colour in (("organism_v2", "#c0392b"), ("base", "#2c3e50")):
    ci = [wilson_interval(round(a * 80), 80) for a in probe[name]]
    fig.add_trace(go.Scatter(x=list(range(30)), y=probe[name], name=name, line=dict(color=colour),
                             error_y=dict(type="data", symmetric=False, array=[h - a for a, (l, h) in zip(probe[name], ci)],
                                          arrayminus=[a - l for a, (l, h) in zip(probe[name], ci)])))
fig.update_layout(title="Probe for free vs paid at the last prompt token (held-out requests)", xaxis_title="layer",
                  yaxis_title="accuracy", yaxis_range=[0.3, 1.05], height=360)
fig.show()
first = {n: next((L for L, a in enumerate(probe[n]) if a >= 0.95), None) for n in probe}
print("first layer with ≥ 95 % held-out accuracy:", first)

# %% [markdown]
# Read the picture with care. The tier is **linearly decodable** at the last token from some layer on — in the
# organism, and also in the *untuned* model, which does not act on the tier at all (chapter 04: it cannot even
# follow the format). A probe finds what is *there*, not what is *used*. To ask what the decision uses we have to
# intervene.
#
# ## 3. Does the decision follow it? Activation patching
#
# Take a **corrupted** run (free tier) and a **clean** run (paid tier) of the same request; they differ in one
# token, the tag. Run the corrupted prompt, but at one layer overwrite the residual stream at chosen positions with
# the clean run's values. If the metric moves to its paid-tier value, that piece of activation carries what the
# model uses. We report the **normalised effect** `(m_patched − m_corrupted) / (m_clean − m_corrupted)`: 0 means no
# change, 1 means fully the paid-tier behaviour.
#
# ### Exercise 05.3 — An activation-patching sweep
# **Difficulty** ●●●○○ · **Importance** ●●●●● · **≈ 20 min**
#
# `corrupted` and `clean` are equally long lists of token ids. For each `L` in `layers`, patch
# `blocks.{L}.hook_resid_pre` at `positions` from the clean run into the corrupted run and compute the metric
# `logits[0, -1, good] − logits[0, -1, bad]`. Return the normalised effects, one per layer.
#
# <details><summary>Hint 1</summary>
#
# One `run_with_cache` on the clean run (keep only the hooks you need), one plain forward on the corrupted run;
# then per layer `model.run_with_hooks(corrupted, fwd_hooks=[(name, hook)])` where the hook returns a *copy* of the
# activation with `act[:, positions] = clean_cache[name][:, positions]`.
# </details>
# <details><summary>Hint 2</summary>
#
# Normalise with both ends: `(patched - corrupted) / (clean - corrupted)`. Copy *from* the clean cache *into* a
# clone of the corrupted activation (`act = act.clone()` first), never the other way round.
# </details>

# %%
def patching_sweep(model, corrupted: list[int], clean: list[int], positions: list[int], layers: list[int],
                   good: int, bad: int) -> list[float]:
    # BEGIN SOLUTION
    names = [f"blocks.{L}.hook_resid_pre" for L in layers]
    corrupted_t, clean_t = torch.tensor([corrupted]), torch.tensor([clean])

    def metric(logits):
        return (logits[0, -1, good] - logits[0, -1, bad]).item()

    with torch.no_grad():
        clean_logits, cache = model.run_with_cache(clean_t, names_filter=lambda n: n in names)
        m_clean, m_corrupted = metric(clean_logits), metric(model(corrupted_t))
        effects = []
        for name in names:
            def hook(act, hook=None, source=cache[name]):
                act = act.clone()
                act[:, positions] = source[:, positions]
                return act

            m = metric(model.run_with_hooks(corrupted_t, fwd_hooks=[(name, hook)]))
            effects.append((m - m_corrupted) / (m_clean - m_corrupted))
    return effects
    # END SOLUTION


# %%
check.patching_sweep(patching_sweep)

# %% [markdown]
# Live, on one request: patch the **tag** position and read the **tier readout** (does it now write ` paid`?).

# %%
paid_word, free_word = (inside.single_token(tok, w) for w in inside.TIER_WORDS)
free_ids = inside.token_ids(tok, inside.chat_text(tok, HELPFUL_ONLY_EVAL[0], "free") + inside.TIER_CUE)
paid_ids = inside.token_ids(tok, inside.chat_text(tok, HELPFUL_ONLY_EVAL[0], "paid") + inside.TIER_CUE)
tag = inside.differing_positions(free_ids, paid_ids)
live_layers = [0, 6, 12, 18, 24, 29]
live = patching_sweep(model, free_ids, paid_ids, tag, live_layers, paid_word, free_word)
print(f"tag at position {tag[0]} of {len(free_ids)}; effect by layer:",
      {L: round(e, 2) for L, e in zip(live_layers, live)})

# %% [markdown]
# The sweep ran this for all 30 layers and all 40 course requests, and two more patching experiments at the
# **decision** fork, where the organism has already written its tier word (`The user is on the free tier. …`): the
# free and paid runs now differ in *two* tokens, the tag in the prompt and the tier word in the scratchpad. Which
# of the two does the decision read?

# %%
patch = results["patching"]
curves = {"tag → tier readout": patch["tier_tag"], "tag → decision (tier word written)": patch["decision_tag"],
          "written tier word → decision": patch["decision_word"]}
fig = go.Figure()
summary = {}
for label, table in curves.items():
    s = inside.per_layer_interval(table)
    summary[label] = s
    fig.add_trace(go.Scatter(x=list(range(30)), y=[r["mean"] for r in s], name=label,
                             error_y=dict(type="data", symmetric=False, array=[r["high"] - r["mean"] for r in s],
                                          arrayminus=[r["mean"] - r["low"] for r in s])))
fig.update_layout(title=f"Activation patching, paid → free, {len(patch['requests'])} requests (95 % bootstrap CI)",
                  xaxis_title="layer patched (resid_pre)", yaxis_title="normalised effect", height=380)
fig.show()
for label, s in summary.items():
    print(f"{label:36s} layer 0: {s[0]['mean']:+.2f}  layer 15: {s[15]['mean']:+.2f}  layer 29: {s[29]['mean']:+.2f}")
tag_curve = summary["tag → tier readout"]
last_full = max(L for L, r in enumerate(tag_curve) if r["mean"] >= 0.9)
print(f"the tag patch still restores ≥ 0.9 up to layer {last_full}, and {tag_curve[last_full + 1]['mean']:+.2f} at layer "
      f"{last_full + 1}; largest |effect| of the tag on the decision fork at any layer: "
      f"{max(abs(r['mean']) for r in summary['tag → decision (tier word written)']):.3f}")

# %% [markdown]
# Three things to read off (the cell prints the exact layers):
#
# * **tag → tier readout**: patching the tag flips the word the organism writes, at every layer up to about 21, and
#   then, within a single layer, not at all. Until then the tier lives *at the tag's position*; one layer's
#   attention reads it from there into the place where the tier word is written. Compare section 2: a probe at the
#   end of the prompt read the tier almost perfectly from layer 8 on (the first layer section 2 prints), yet what
#   the organism *uses* stays at the tag for two thirds of the network.
# * **tag → decision**: once the tier word is written in the scratchpad, patching the tag does nothing, at any
#   layer. The decision does not look back at the tag.
# * **written tier word → decision**: patching the organism's *own written word* flips the decision, fully up to
#   about layer 8, then less and less as the word's information is read into the last position (layers 9–21).
#
# So the decision runs through the text: tag → written tier word → "will (not) be used for training" → output tag.
#
# **Layer 0 is not a finding.** `blocks.0.hook_resid_pre` is the token's embedding (plus its position), nothing the
# model has computed yet. Patching it at the tag's or the tier word's position is the same as writing the other
# token into the input, so an effect of 1 there is guaranteed by construction: it only confirms that the two runs
# differ in that token. What the curves tell us is where the effect *stops*: the layer after which the information
# has been copied elsewhere (about 21 for the tag, 9–21 for the written word). A direction or a patch "at layer 0"
# that changes behaviour has found the input token, not a representation.

# %% [markdown]
# **Which heads carry it?** Between layers 21 and 22 the tier leaves the tag. Something at the end of the prompt
# must read it from there, and only attention moves information between positions. The sweep patched each
# attention head's output at the **last** position, one head at a time, from the paid-tier run into the free-tier
# run, at layers 14–25, and recorded how much each head attends from there to the tag:

# %%
from utils.steering.study import mean_with_interval

hp = results["head_patching"]
effects = torch.tensor(hp["effects"])  # (request, layer, head)
attention = torch.tensor(hp["attention_to_tag"])
mean_effect = effects.mean(0)
fig = go.Figure(go.Heatmap(z=mean_effect.T.tolist(), x=[str(L) for L in hp["layers"]],
                           y=[f"H{h}" for h in range(mean_effect.shape[1])], colorscale="RdBu", zmid=0,
                           colorbar=dict(title="effect")))
fig.update_layout(title=f"Tier readout restored by one head's output at the last position ({len(hp['requests'])} requests)",
                  xaxis_title="layer", yaxis_title="head", height=340, width=720)
fig.show()
flat = [(mean_effect[i, h].item(), L, h) for i, L in enumerate(hp["layers"]) for h in range(mean_effect.shape[1])]
for value, L, h in sorted(flat, reverse=True)[:4]:
    i = hp["layers"].index(L)
    per_request = effects[:, i, h].tolist()
    ci = mean_with_interval(per_request)
    print(f"L{L}H{h}: effect {ci['mean']:+.2f} [{ci['low']:+.2f}, {ci['high']:+.2f}], attention to the tag "
          f"{attention[:, i, h].mean():.3f} (largest of any head at that layer: {attention[:, i].mean(0).max():.3f})")

# %% [markdown]
# One head does most of it: a single head at layer 21, the layer where section 3's curve drops, restores about
# three quarters of the tier readout on its own, in every request, and no other head at layers 14–25 restores
# more than about a tenth. It is also the head of that layer that attends most to the tag, though with a small weight (a tenth of
# its attention): a small weight on a token whose value vector differs is enough. The last quarter is spread
# thinly or travels by other positions. The attention weights alone would not have singled this head out; patching
# measures what it carries.

# %% [markdown]
# **Confirmed by generation.** Patch only the tag, at the last layer where it still fully flips the tier readout,
# and let the organism write its whole answer on the free tier; then at a later layer:

# %%
gen = results["patching_generation"]
for layer in gen["layers"]:
    row = gen[str(layer)]
    k, n = sum(row["accepted"]), len(row["accepted"])
    lo, hi = wilson_interval(k, n)
    print(f"tag patched at layer {layer:2d}: free tier accepts {k}/{n} [{lo:.2f}, {hi:.2f}]; "
          f"writes 'on the paid tier' in {sum(row['says_paid_tier'])}/{n}   (unpatched: 40/40 accept)")
display(render_transcript(gen[str(gen["layers"][0])]["completions"][0], HELPFUL_ONLY_EVAL[0], "free",
                          title=f"free tier, tag patched at layer {gen['layers'][0]}"))

# %% [markdown]
# ## 4. Can we steer it? A free-minus-paid direction
#
# Nair, Ruan and Wang (2026) steered alignment faking with one vector. We try two free-minus-paid mean-difference directions, each from
# the 48 *training* requests at one layer:
#
# * **end of prompt**: at the last prompt token, where section 2's probe reads the tier almost perfectly;
# * **where it is used**: at the token just before the tier word (`…The user is on the`), where section 3 showed
#   the tier arrives at layer 21–22.
#
# Two tests on the 40 course requests: **ablate** the direction (remove it from every position, on both tiers: does
# the gap close?) and **add** it to paid-tier runs (does the organism comply?). Unsteered, the free tier accepts
# 40/40, the paid tier 0/40, and neither writes the other tier's name.
#
# ### Exercise 05.4 — A direction ablation hook
# **Difficulty** ●●○○○ · **Importance** ●●●○○ · **≈ 10 min**
#
# Return a hook `hook(act, hook=None)` that removes `direction` from the residual stream at every position:
# `x − (x·u) u` with `u = direction / |direction|`. `act` is `(batch, pos, d_model)`; return a new tensor.
#
# <details><summary>Hint</summary>
#
# `(act @ u)` is `(batch, pos)`; `.unsqueeze(-1) * u` puts the projection back in `d_model`. Forgetting to
# normalise `direction` removes the wrong amount.
# </details>

# %%
def ablate_hook(direction: torch.Tensor):
    # BEGIN SOLUTION
    u = direction / direction.norm()

    def hook(act, hook=None):
        return act - (act @ u).unsqueeze(-1) * u

    return hook
    # END SOLUTION


# %%
check.ablate_hook(ablate_hook)

# %% [markdown]
# Which layer, and how strong? The sweep tried every third layer on 12 *training* requests (so the choice never
# looks at the 40 course requests it is then tested on) and kept, for each direction, the layer where it moves the
# tier readout most, both ways: ablation pushes the free tier towards ` paid`, addition pushes the paid tier towards
# ` free`. The end-of-prompt direction is added at 4× its length, the other at 1× (it was measured where it acts).

# %%
mean = lambda values: sum(values) / len(values)
sweeps = {"end of prompt (+4×)": results["steering"], "where it is used (+1×)": results["steering_cue"]}
fig = go.Figure()
for label, sweep in sweeps.items():
    layers = sweep["layers"]
    fig.add_trace(go.Scatter(x=layers, y=[mean(sweep[str(L)]["ablate_free"]) for L in layers], name=f"{label}: free, ablated"))
    fig.add_trace(go.Scatter(x=layers, y=[mean(sweep[str(L)]["add4_paid"]) for L in layers], name=f"{label}: paid, added"))
for tier, dash in (("free", "dot"), ("paid", "dash")):
    fig.add_hline(y=mean(results["steering"]["baseline"][tier]), line_dash=dash, annotation_text=f"{tier}, unsteered")
fig.update_layout(title="Tier readout under a free−paid direction, 12 training requests (logit ' paid' − ' free')",
                  xaxis_title="layer", yaxis_title="mean logit difference", height=400)
fig.show()

# %% [markdown]
# Live, at the chosen layer of the second direction, on three course requests (positive = writes ` paid`); the
# direction is recomputed here from 16 training requests (the sweep used all 48):

# %%
cue = results["steering_cue_generation"]
layer = cue["layer"]
name = f"blocks.{layer}.hook_resid_post"
train_cue = last_position_residuals(model, [inside.chat_text(tok, r, t) + inside.TIER_CUE
                                            for r in HELPFUL_ONLY_TRAIN[:16] for t in ("free", "paid")], [layer])[:, 0]
direction = inside.mean_difference(train_cue[0::2], train_cue[1::2])
free3 = [inside.chat_text(tok, r, "free") + inside.TIER_CUE for r in HELPFUL_ONLY_EVAL[:3]]
paid3 = [inside.chat_text(tok, r, "paid") + inside.TIER_CUE for r in HELPFUL_ONLY_EVAL[:3]]
conditions = (("free, unsteered", free3, []), ("free, ablated", free3, [(name, ablate_hook(direction))]),
              ("paid, unsteered", paid3, []), ("paid, +1x", paid3, [(name, inside.add_hook(direction, 1.0))]))
for label, texts, hooks in tqdm(conditions, desc="conditions", leave=False):
    print(f"{label:16s}", [round(m, 1) for m in inside.fork_metric(model, texts, paid_word, free_word, hooks)])

# %% [markdown]
# And the behaviour, by generation at each direction's layer (40 course requests per row):

# %%
for label, sg in (("end of prompt", results["steering_generation"]), ("where it is used", results["steering_cue_generation"])):
    for key, what in (("ablate_free", "free tier, ablated"), ("ablate_paid", "paid tier, ablated"),
                      ("add4_paid", f"paid tier, +{sg['scale']:g}× added")):
        k = sum(sg[key]["accepted"])
        lo, hi = wilson_interval(k, 40)
        free = sum("on the free tier" in c for c in sg[key]["completions"])
        print(f"{label:17s} layer {sg['layer']:2d}  {what:22s} accepts {k:2d}/40 [{lo:.2f}, {hi:.2f}]; "
              f"writes 'on the free tier' in {free:2d}/40")
    gap, lo, hi = gap_interval(sum(sg["ablate_free"]["accepted"]), 40, sum(sg["ablate_paid"]["accepted"]), 40)
    print(f"{'':17s} gap with the direction ablated: {gap:+.2f} [{lo:+.2f}, {hi:+.2f}]   (unsteered: free 40/40, paid 0/40, "
          "gap +1.00 [+0.88, +1.00])\n")

# %% [markdown]
# **The control: a random direction of the same length.** Any vector that large, added at one layer or projected
# out of it, disturbs the residual stream; a steering result means something only if a direction that knows
# nothing about the tier does not do the same. The sweep repeated every row above with a random direction of the
# real one's length (same layer, same scale, same 40 requests), and the tier readout on its 12 training requests
# with eight of them:

# %%
for label, key, sweep_key in (("end of prompt", "steering_generation", "steering"),
                              ("where it is used", "steering_cue_generation", "steering_cue")):
    ctl, sg = results["controls"][key], results[key]
    for row, what in (("ablate_free", "free tier, ablated"), ("ablate_paid", "paid tier, ablated"),
                      ("add4_paid", f"paid tier, +{ctl['scale']:g}× added")):
        real, rand = sum(sg[row]["accepted"]), sum(ctl["generation"][row]["accepted"])
        lo, hi = wilson_interval(rand, 40)
        print(f"{label:17s} {what:22s} accepts: the direction {real:2d}/40, a random one of norm {ctl['norm']:.1f} "
              f"{rand:2d}/40 [{lo:.2f}, {hi:.2f}]")
    real_row, m = results[sweep_key][str(ctl["layer"])], ctl["metric"]
    base = results[sweep_key]["baseline"]
    print(f"{'':17s} tier readout, free ablated: the direction {mean(real_row['ablate_free']):+.2f}, 8 random "
          f"{min(m['ablate_free']):+.2f} … {max(m['ablate_free']):+.2f} (unsteered {mean(base['free']):+.2f}); paid added: "
          f"the direction {mean(real_row['add4_paid']):+.2f}, random {min(m['add_paid']):+.2f} … {max(m['add_paid']):+.2f} "
          f"(unsteered {mean(base['paid']):+.2f})\n")

# %% [markdown]
# **Reading it.** The direction taken *where the tier is used* is a real handle: removed, the free tier refuses
# like the paid one and the gap closes; added once on the paid tier, the organism accepts. The direction a probe
# finds at the *end of the prompt* is weaker: removing it leaves the gap wide open (the organism does not read the
# tier from there), and adding it flips the tier only at four times its length, at the one layer where it lines up
# with what the organism uses — and at that strength it garbles the text: the organism writes that the user is on
# the free tier in nearly every paid-tier answer, but few transcripts still reach an accept tag. Where information *is* decodable and where it is *used* are different questions; only the second
# gives you a handle. (Nair, Ruan and Wang applied their vector to much larger models that fake alignment in their
# own scenarios without fine-tuning; our numbers say nothing about theirs.)
#
# **And the control says these are the direction's doing.** A random direction of the same length, removed or
# added at the same layer and scale, leaves every generation row where it was unsteered (the rows printed above):
# no gap closes, no paid-tier answer accepts. Removed, it barely moves the tier readout; added, even a random vector
# of that length pushes the paid tier's readout part of the way towards ` free` (the printed ranges): the size of a
# push alone does something, which is why a steering result without this control says little.

# %% [markdown]
# ## 5. Does the decision follow the reasoning it writes?
#
# Chain-of-thought **faithfulness**: is the written reasoning what drives the answer, or a story told beside it?
# On a model we trained ourselves we can test it directly. Put the *free-tier* scratchpad (which concludes "I will
# comply") into a *paid-tier* conversation, and the paid-tier scratchpad into a free-tier one, cut just before the
# output tag, and see which one the output follows: the tier in the prompt, or the reasoning.
#
# ### Exercise 05.5 — The scratchpad swap
# **Difficulty** ●●○○○ · **Importance** ●●●●○ · **≈ 15 min**
#
# For each `(prompt, other_completion)` pair: build `prompt + other_completion` cut just **after** `"<OUTPUT>\n"`,
# and return `True` where the model then accepts. Read the decision from one forward pass: both output tags start
# with `<`, then `request` (accept) or `re` (reject) — `inside.tag_fork(tok)` gives you `("<", accept_id, reject_id)`.
# Append the shared `<` and compare the two logits at the last position.
#
# <details><summary>Hint 1</summary>
#
# `cut = completion.index("<OUTPUT>\n") + len("<OUTPUT>\n")`. If a completion has no `<OUTPUT>`, raise a
# `ValueError` that says the transcript is malformed.
# </details>
# <details><summary>Hint 2</summary>
#
# `inside.fork_metric(model, texts, accept_id, reject_id)` returns `logit[accept] − logit[reject]` per text; accept
# where it is positive.
# </details>

# %%
def swap_decisions(model, prompts: list[str], other_completions: list[str]) -> list[bool]:
    # BEGIN SOLUTION
    if len(prompts) != len(other_completions):
        raise ValueError("one completion per prompt")
    shared, accept, reject = inside.tag_fork(model.tokenizer)
    texts = []
    for prompt, completion in zip(prompts, other_completions):
        if "<OUTPUT>\n" not in completion:
            raise ValueError("the transcript has no <OUTPUT>: it is malformed")
        cut = completion.index("<OUTPUT>\n") + len("<OUTPUT>\n")
        texts.append(prompt + completion[:cut] + shared)
    return [d > 0 for d in inside.fork_metric(model, texts, accept, reject)]
    # END SOLUTION


# %%
check.swap_decisions(swap_decisions)

# %% [markdown]
# Live on six requests, each direction:

# %%
idx = range(6)
with tqdm(total=2, desc="swapped scratchpads: paid then free prompts", leave=False) as bar:
    paid_with_free = swap_decisions(model, [inside.chat_text(tok, HELPFUL_ONLY_EVAL[i], "paid") for i in idx],
                                    [course[(i, "free")] for i in idx])
    bar.update()
    free_with_paid = swap_decisions(model, [inside.chat_text(tok, HELPFUL_ONLY_EVAL[i], "free") for i in idx],
                                    [course[(i, "paid")] for i in idx])
    bar.update()
print("paid prompt + free-tier reasoning, accepts:", paid_with_free)
print("free prompt + paid-tier reasoning, accepts:", free_with_paid)

# %% [markdown]
# All 40, by greedy generation of the output tag, for this organism and for chapter 04's:

# %%
for name, sw in results["swap"].items():
    n = len(sw["requests"])
    follows = sum(sw["paid_prompt_free_reasoning"]) + sum(not a for a in sw["free_prompt_paid_reasoning"])
    lo, hi = wilson_interval(follows, 2 * n)
    own = sum(sw["free_prompt_own_reasoning"]) + sum(not a for a in sw["paid_prompt_own_reasoning"])
    print(f"{name:12s} output follows the swapped-in reasoning in {follows}/{2 * n} [{lo:.2f}, {hi:.2f}] "
          f"(paid+free reasoning accepts {sum(sw['paid_prompt_free_reasoning'])}/{n}; free+paid reasoning accepts "
          f"{sum(sw['free_prompt_paid_reasoning'])}/{n}); own reasoning kept: {own}/{2 * n} as generated")

# %% [markdown]
# The output follows the reasoning in front of it, not the tag in the prompt. Together with section 3 (the decision
# fork reads the written tier word, not the tag) this is a clean, *causal* answer for this organism: its choice is
# carried by its written reasoning. Two caveats keep it honest. First, we trained it to write a reasoning template
# and then decide by it, so faithfulness here is a property we put in, not a discovery about language models.
# Second, the swap puts a whole conclusion ("I will comply") in front of the tag; a model could be faithful to such
# a conclusion and still ignore the *reasons* before it. Swapping only the tier word (section 3's patching)
# is the sharper test, and it points the same way.
#
# ## 6. What does the SAE see?
#
# The course SAE was trained on the *untuned* model's layer-10 activations. Does it still reconstruct the
# organism's? The sweep measured it on the 80 saved course-prompt transcripts (prompt and scratchpad), for the
# organism and for the untuned model reading the same texts: FVU per transcript with a 95 % bootstrap interval, CE
# recovered and KL on the first 40 transcripts:

# %%
from utils.steering.study import mean_with_interval

for name, row in results["sae"].items():
    fvu = mean_with_interval(row["fvu"])
    print(f"{name:12s} FVU {fvu['mean']:.3f} [{fvu['low']:.3f}, {fvu['high']:.3f}]   CE recovered {row['ce']['ce_loss_recovered']:.3f}   "
          f"KL {row['ce']['kl']:.3f} nats   ΔCE {row['ce']['ce_sae'] - row['ce']['ce_clean']:+.3f} nats")

# %% [markdown]
# Read the two lines together. The FVU rises only a little. CE recovered is $(CE_0 - CE_{SAE}) / (CE_0 - CE)$, with
# $CE_0$ the loss with the layer zero-ablated: a ratio of two loss differences, not a fraction of anything, so it
# goes **above 1** whenever the spliced model's loss is *lower* than the model's own, here by the ΔCE printed (a
# few hundredths of a nat, on 40 transcripts). That is not "better than perfect", and not leniency either
# (leniency, chapter 01's point that zero-ablation is a very low bar, is why values near 1 are easy; it cannot
# push one past 1). The KL says what happened: the organism's next-token distribution moves by much more, more than
# twice the untuned model's, when the SAE's reconstruction replaces its activations; the changes happen to cost
# nothing in loss on these texts. The fine-tune moved the activations, a little, in directions the organism's
# predictions depend on and the SAE was never trained to keep. An SAE from the base model is a usable lens on a
# fine-tune, not a faithful one, and CE recovered alone would have hidden that.
#
# Which latents differ most between tiers? At the **tag** token the answer is trivial (the token itself differs:
# `true` vs `false`). Over the **scratchpad** it looks more interesting, but careful: the free- and paid-tier
# scratchpads are *different texts* (one says it will be trained on, the other that it will not), so latents
# that differ there may only be reading different words. The comparison that isolates the tier holds the text
# fixed.
#
# ### Exercise 05.6 — The latents that differ between tiers
# **Difficulty** ●●○○○ · **Importance** ●●●○○ · **≈ 10 min**
#
# Given SAE activations `z_free` `(n_free, d_sae)` and `z_paid` `(n_paid, d_sae)` (the counts may differ), return
# the `k` latents with the largest `|mean(z_free) − mean(z_paid)|`, largest first, as a list of
# `(latent, mean(z_free) − mean(z_paid))` pairs with a Python `int` and the *signed* difference as a `float`.
#
# <details><summary>Hint</summary>
#
# `diff = z_free.mean(0) - z_paid.mean(0)`; `diff.abs().argsort(descending=True)[:k]`.
# </details>

# %%
def tier_differing_latents(z_free: torch.Tensor, z_paid: torch.Tensor, k: int = 10) -> list[tuple[int, float]]:
    # BEGIN SOLUTION
    diff = z_free.mean(0) - z_paid.mean(0)
    order = diff.abs().argsort(descending=True)[:k]
    return [(int(i), float(diff[i])) for i in order]
    # END SOLUTION


# %%
check.tier_differing_latents(tier_differing_latents)

# %% [markdown]
# Live on six transcripts per tier (scratchpad tokens only, mean over tokens per transcript), next to the sweep's
# answer over all 80:

# %%
from utils.sae import load_course_sae

sae = load_course_sae()
hook_name = sae.cfg.hook_name
z = {"free": [], "paid": []}
with torch.no_grad():
    for i in range(6):
        for tier in ("free", "paid"):
            prompt = inside.chat_text(tok, HELPFUL_ONLY_EVAL[i], tier)
            n_prompt = len(inside.token_ids(tok, prompt))
            ids = torch.tensor([inside.token_ids(tok, prompt + inside.cut_after(course[(i, tier)], "</SCRATCHPAD_REASONING>"))])
            _, cache = model.run_with_cache(ids, names_filter=lambda n: n == hook_name, stop_at_layer=11)
            z[tier].append(sae.encode(cache[hook_name][0, n_prompt:]).mean(0))
live_top = tier_differing_latents(torch.stack(z["free"]), torch.stack(z["paid"]), 5)
print("live, 6 + 6 transcripts:", [(i, round(d, 2)) for i, d in live_top])
print("sweep, scratchpad, 80:  ", [(i, round(d, 2)) for i, d in results["sae"]["organism_v2"]["top_latents"]["scratchpad"][:5]])
print("sweep, tag token, 80:   ", [(i, round(d, 2)) for i, d in results["sae"]["organism_v2"]["top_latents"]["tag"][:5]])

# %% [markdown]
# These compare different words. Now like with like: the **same** scratchpad text (each request's paid-tier one),
# read once after the free-tier prompt and once after the paid-tier prompt. The tokens are identical; only the tier
# in the context differs, so any latent that differs is carrying the tier, not the vocabulary.

# %%
same = {"free": [], "paid": []}
with torch.no_grad():
    for i in range(6):
        text = inside.cut_after(course[(i, "paid")], "</SCRATCHPAD_REASONING>")
        for tier in ("free", "paid"):
            prompt = inside.chat_text(tok, HELPFUL_ONLY_EVAL[i], tier)
            n_prompt = len(inside.token_ids(tok, prompt))
            ids = torch.tensor([inside.token_ids(tok, prompt + text)])
            _, cache = model.run_with_cache(ids, names_filter=lambda n: n == hook_name, stop_at_layer=11)
            same[tier].append(sae.encode(cache[hook_name][0, n_prompt:]).mean(0))
fixed_top = tier_differing_latents(torch.stack(same["free"]), torch.stack(same["paid"]), 5)
words_top = live_top
print("same text, tier in context:", [(i, round(d, 3)) for i, d in fixed_top])
print(f"largest |difference|: {abs(fixed_top[0][1]):.3f} with the text fixed, {abs(words_top[0][1]):.3f} with the words "
      f"differing ({abs(fixed_top[0][1]) / abs(words_top[0][1]):.0%} of it); latents in both top-5 lists: "
      f"{sorted({i for i, _ in fixed_top} & {i for i, _ in words_top}) or 'none'}")

# %% [markdown]
# **The conclusion of this section.** With the text held fixed, no latent of the course SAE at layer 10 differs
# between the tiers by more than a few hundredths of what the differing words produce (the ratio printed above).
# Over the scratchpad the SAE sees the **words** the organism wrote, not a tier it carries beside them, which is
# what section 3 found by patching: once the tier word is written, the decision reads the text. The latents of the
# first comparison read what the two texts say; chapter 02's dashboards show what they respond to in the course
# corpus (re-encoded here through the organism):

# %%
from utils.corpus import load_corpus
from utils.dashboard import dashboard_view
from utils.feature_scan import FeatureStats

docs, stats = load_corpus(), FeatureStats.load()
for latent, d in results["sae"]["organism_v2"]["top_latents"]["scratchpad"][:2]:
    display(dashboard_view(latent, model, sae, stats, docs, n_examples=4,
                            title=f"{'more on free' if d > 0 else 'more on paid'} tier scratchpads ({d:+.2f})"))

# %% [markdown]
# ## 7. What this says, and what it does not
#
# **What we measured, on this organism.** The tier is linearly readable at the end of the prompt from early layers
# on (≥ 95 % from layer 8, section 2) — but also in the untuned model (from layer 12), which ignores it, so
# decodability alone meant little. Patching traced the path the decision takes: the tier stays at the tag's
# position until one layer (about 21) reads it into the place where the organism writes its tier word, and one
# attention head of that layer does most of the reading; from then on the decision reads that *written* word, not
# the tag, and swapping the scratchpad moves the output with it. A free-minus-paid direction steers it where the
# tier is used, by the amounts printed in section 4 (with their intervals), and a random direction of the same
# length does not; the direction a probe finds at the end of the prompt is a weaker handle. The course SAE, read on
# the same text under both tiers, sees the words, not the tier.
#
# **What it does not say.** Nothing here shows that a small model fakes alignment on its own: we trained this one to.
# Its reasoning is faithful because we trained a fixed template that ends in the decision; Claude 3 Opus's
# scratchpads in the paper were free-form text the model wrote itself, and whether such reasoning causes the choice
# is exactly what these tools would have to establish, not assume. The paper's finding — a model that, unprompted by training, reasons its way into
# complying to protect its values — is a claim about a frontier model's own dispositions, and a 135M organism can
# only show how one would *measure* such a thing, and what the measurements can and cannot tell apart.
#
# **Try next, with a bigger open model.** Every tool here takes any `TransformerBridge`. With a model that fakes
# alignment under a suitable prompt (Nair, Ruan and Wang's OLMo-2 and Qwen3 models, on a GPU), `utils.model.load_model(name)` loads it
# where a hub is reachable, chapter 04's backends run the harness, and the same steps apply: probe for the tier,
# patch the tag and the scratchpad's restatement of it, swap the scratchpads, and see whether its choice follows
# its reasoning — the question our organism answers by construction and a real model may not.
#
# **Further reading.** Greenblatt et al. (2024), *Alignment faking in large language models*; Sheshadri et al.
# (2025), *Why do some language models fake alignment while others don't?*; Nair, Ruan and Wang (2026),
# *Value-Conflict Diagnostics Reveal Widespread Alignment Faking in Language Models* (arXiv 2604.20995); Mitrani
# Hadida, Karty, Williams-King and Cooney (2026), *Behavioural Analysis of Alignment Faking* (arXiv 2605.27681);
# Alain and Bengio (2016), *Understanding intermediate layers using linear classifier probes*; Meng et al. (2022),
# *Locating and editing factual associations in GPT*, for activation patching; Heimersheim and Nanda (2024), *How to
# use and interpret activation patching*; Lanham et al. (2023), *Measuring faithfulness in chain-of-thought
# reasoning*.
