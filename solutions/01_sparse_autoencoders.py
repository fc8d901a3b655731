# %% [markdown]
# # Chapter 01 — Sparse autoencoders from scratch
#
# The Golden Gate Bridge feature was not found by reading neurons. Single neurons in a language model
# respond to many unrelated things, because the model stores **more concepts than it has dimensions**:
# *superposition*. Templeton et al. (2024) undid the superposition with a **sparse autoencoder** (SAE): a
# wide, one-layer network trained to rebuild the residual stream from a few active "latents" at a time.
# Each latent has a decoder direction; the bridge feature was one of those directions.
#
# In this chapter you build an SAE twice:
#
# 1. on **toy data** whose true features we planted, so we can score whether the SAE found them;
# 2. on the **residual stream of SmolLM2** at layer 10, where no ground truth exists and we judge it by
#    reconstruction, sparsity and how much of the model's behaviour survives when we swap in the SAE.
#
# | # | you build |
# |---|---|
# | 01.1 | the recovery score: did an SAE find the planted features? |
# | 01.2 | a ReLU SAE's loss the April-2024 way: free decoder norms, L1 weighted by them |
# | 01.3 | the TopK encoder |
# | 01.4 | one whole training step of a TopK SAE: forward, loss, backward, the decoder constraint |
# | 01.5 | the evaluation of an SAE: input scale, MSE, FVU, L0, dead latents |
# | 01.6 | the SAE spliced into the model: CE loss recovered and KL |
#
# The notebook trains small SAEs in seconds. The **course SAE** that chapters 02–03 use was trained by the
# same code for longer (`python -m utils.train_sae`; section 6 prints how long it took, from its recorded
# config) and ships with the course; we compare the two at the end.
#
# **On Binder** the whole container has 2 GB of memory, for all kernels together, and one chapter's kernel peaks
# at 1.3–1.6 GB (the bench table in docs/RESULTS.md): shut down the kernel of any other open chapter first (*Kernel →
# Shut Down Kernel*, or the *Running* tab), or both die.

# %%
import json
import time

import plotly.express as px
import plotly.graph_objects as go
import torch
from tqdm.auto import tqdm, trange

from utils import toy
from utils.checks import ch01 as check
from utils.memory import release
from utils.sae import SAEConfig, SparseAutoencoder, load_course_sae

_ = torch.manual_seed(0)  # it returns the generator: `_ =` keeps its repr off the screen

# %% [markdown]
# ## 1. Superposition on toy data
#
# We plant 64 feature directions $f_1 \dots f_{64}$ (unit vectors) in a 32-dimensional space: twice as many
# features as dimensions, so they cannot all be orthogonal. Each sample switches on each feature independently
# with probability 3 % and a random strength, and adds up the active ones: $x = \sum_i c_i f_i$.
# About two features are active at a time — sparse, like concepts in text.

# %%
threads = torch.get_num_threads()
torch.set_num_threads(1)  # the toy matrices are tiny: one thread beats two that wait for each other (restored in section 3)
cfg = toy.ToyConfig()
features = toy.true_features(cfg)  # (64, 32)
x_toy, coefficients = toy.sample_toy_batch(cfg, features, 4096, torch.Generator().manual_seed(0))
print(f"features {tuple(features.shape)}, data {tuple(x_toy.shape)}, "
      f"active features per sample: {(coefficients > 0).sum(-1).float().mean():.2f}")
overlap = (features @ features.T - torch.eye(64)).abs()
print(f"features are not orthogonal: mean |cos| between two features = {overlap.sum() / (64 * 63):.2f}")

# %% [markdown]
# An SAE with decoder rows $d_j$ has **recovered** feature $f_i$ if some row points the same way. We score a
# whole dictionary by the mean, over the true features, of the best cosine similarity:
# $\text{recovery} = \frac{1}{n}\sum_i \max_j \cos(f_i, d_j)$. Use the signed cosine: SAE latents are
# non-negative, so a row pointing at $-f_i$ can never add $+f_i$.
#
# ### Exercise 01.1 — Recovery score
# **Difficulty** ●●○○○ · **Importance** ●●●○○ · **≈ 10 min**
#
# Write `recovery_score(W_dec, features)` for `W_dec` of shape `(d_sae, d_model)` and `features` of shape
# `(n_features, d_model)`; return a Python float.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# Normalise the rows of both matrices; then one matrix product gives every cosine at once.
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# `torch.nn.functional.normalize(..., dim=-1)` scales rows to unit norm. Arrange the product so the cosine
# matrix is `(n_features, d_sae)`: one row per true feature. Each feature keeps its best latent (a max along
# which axis?), and the score is the average of those bests. `.item()` turns a 0-d tensor into a float.
# </details>

# %%
def recovery_score(W_dec: torch.Tensor, features: torch.Tensor) -> float:
    # BEGIN SOLUTION
    from torch.nn.functional import normalize

    cos = normalize(features.float(), dim=-1) @ normalize(W_dec.float(), dim=-1).T  # (n_features, d_sae)
    return cos.max(dim=-1).values.mean().item()
    # END SOLUTION


# %%
check.recovery_score(recovery_score)

# %% [markdown]
# A random dictionary is the baseline to beat — with 128 random rows the best match is far from 1:

# %%
print(f"random 128-row dictionary: recovery = {recovery_score(torch.randn(128, 32), features):.2f}")

# %% [markdown]
# ## 2. The SAE, and how to train it
#
# An SAE with $d_\text{sae}$ latents has an encoder $W_\text{enc}$ (d_in × d_sae), a decoder $W_\text{dec}$
# (d_sae × d_in, one **row** per latent: latent $i$ writes the direction $W_\text{dec}[i]$), and two biases:
#
# $$z = \sigma\big((x - b_\text{dec})\,W_\text{enc} + b_\text{enc}\big), \qquad \hat x = z\,W_\text{dec} + b_\text{dec}.$$
#
# (Papers that store the decoder as d_in × d_sae call these the decoder's *columns*.) Two choices of
# $\sigma$ give the two architectures of this chapter. The **ReLU** SAE uses $\sigma=\mathrm{ReLU}$ and buys
# sparsity with an L1 penalty on $z$. The **TopK** SAE (Gao et al., 2024) keeps only the $k$ largest
# pre-activations, so every token uses at most $k$ latents and no penalty is needed.
#
# **The L1 penalty can be cheated.** Divide latent $i$'s activation by $c$ and multiply its decoder row by
# $c$: $\hat x$ does not change, but a plain L1 penalty $\sum_i z_i$ falls by a factor $c$. Left alone, the
# optimiser grows the decoder rows and shrinks $z$, paying less and less penalty without becoming any
# sparser. There are two cures:
#
# * **fix the norms**: *Towards Monosemanticity* (Bricken et al., 2023) kept every decoder row at unit norm,
#   renormalising after each step. Then plain L1 cannot be cheated, and weighting it by the row norms would
#   change nothing: every weight is exactly 1.
# * **price the norms**: Anthropic's *Circuits Updates – April 2024* dropped the unit-norm constraint. The
#   decoder rows are free, and the penalty weights each latent by the norm of its decoder row,
#   $\lambda \sum_i z_i \lVert W_\text{dec}[i] \rVert_2$. The product $z_i \lVert W_\text{dec}[i]\rVert$ is
#   the size of latent $i$'s contribution to $\hat x$, and it does not change under the rescaling above,
#   so the cheat buys nothing. (That update also scales the inputs to a fixed mean squared norm, which
#   you will meet in exercise 01.5.)
#
# The weighting matters *because* the rows are free. Your ReLU SAE below uses the April-2024 recipe.
#
# ### Exercise 01.2 — A ReLU SAE's loss, the April-2024 way
# **Difficulty** ●●○○○ · **Importance** ●●●●○ · **≈ 15 min**
#
# Write `relu_sae_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient)` for a batch `x` of shape
# `(batch, d_in)`. Encode with the ReLU, decode, and return the scalar tensor
#
# $$\mathcal L = \frac1B\sum_b \lVert x_b - \hat x_b\rVert_2^2 \;+\; \lambda\,\frac1B\sum_b\sum_i z_{b,i}\,\lVert W_\text{dec}[i]\rVert_2 .$$
#
# Do not renormalise anything: the rows are free. Gradients must flow through every term, the decoder norms
# included (they are what makes growing a row expensive).
#
# <details><summary>Hint 1 (nudge)</summary>
#
# Three steps: the latents, the reconstruction, then the two terms. Each term is an average over the batch of
# a per-token sum (over `d_in` for the error, over latents for the penalty).
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# The row norms, `W_dec.norm(dim=-1)`, form a `(d_sae,)` vector that broadcasts against `z` of shape
# `(batch, d_sae)`. Square the error before summing it over the last axis. Keep everything a tensor: no
# `.item()`, `.detach()` or `torch.no_grad()` anywhere in the loss.
# </details>

# %%
def relu_sae_loss(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor,
                  b_dec: torch.Tensor, l1_coefficient: float) -> torch.Tensor:
    # BEGIN SOLUTION
    z = torch.relu((x - b_dec) @ W_enc + b_enc)  # (batch, d_sae)
    x_hat = z @ W_dec + b_dec  # (batch, d_in)
    reconstruction = (x - x_hat).pow(2).sum(-1).mean()
    sparsity = (z * W_dec.norm(dim=-1)).sum(-1).mean()
    return reconstruction + l1_coefficient * sparsity
    # END SOLUTION


# %%
check.relu_sae_loss(relu_sae_loss)

# %% [markdown]
# Train a ReLU SAE on the toy data with your loss and Adam, decoder rows free. The encoder starts as the
# decoder's transpose, a standard initialisation. Then train the same SAE with the *unweighted* L1 penalty
# and watch the cheat happen: the decoder rows grow, the loss falls, and the SAE is no sparser for it.

# %%
def plain_l1_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    """The cheatable penalty: L1 on z alone, decoder norms ignored."""
    z = torch.relu((x - b_dec) @ W_enc + b_enc)
    return (x - z @ W_dec - b_dec).pow(2).sum(-1).mean() + l1_coefficient * z.sum(-1).mean()


def train_relu_toy(loss_fn, l1: float = 0.2, d_sae: int = 128, steps: int = 1500, seed: int = 0):
    torch.manual_seed(seed)
    W_dec = torch.nn.functional.normalize(torch.randn(d_sae, cfg.d_model), dim=-1).requires_grad_()
    W_enc = W_dec.detach().T.clone().requires_grad_()
    b_enc = torch.zeros(d_sae, requires_grad=True)
    b_dec = torch.zeros(cfg.d_model, requires_grad=True)
    optimiser = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for _ in trange(steps, desc="ReLU SAE", leave=False):
        x, _ = toy.sample_toy_batch(cfg, features, 1024, generator)
        loss = loss_fn(x, W_enc, b_enc, W_dec, b_dec, l1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    with torch.no_grad():
        l0 = (torch.relu((x_toy - b_dec) @ W_enc + b_enc) > 0).sum(-1).float().mean().item()
    return W_dec.detach(), losses, l0


toy_results = {}
for name, loss_fn in [("weighted L1 (yours)", relu_sae_loss), ("plain L1", plain_l1_loss)]:
    start = time.perf_counter()
    W_dec_relu, losses, l0 = train_relu_toy(loss_fn)
    norms = W_dec_relu.norm(dim=-1)
    print(f"{name:19s}: recovery {recovery_score(W_dec_relu, features):.3f}, L0 {l0:.1f}, final loss {losses[-1]:.3f}, "
          f"decoder row norms median {norms.median():.2f} max {norms.max():.2f} ({time.perf_counter() - start:.1f} s)")
    toy_results[f"ReLU, {name}"] = losses

# %% [markdown]
# With the plain penalty the rows keep growing (they started at norm 1, and they would go on growing with
# more steps), the final loss is lower only because the penalty is being dodged, and each sample uses about
# twice as many latents as with the weighted penalty. Weighting by the decoder norm removes the cheat without
# any constraint on the rows.
#
# ### Exercise 01.3 — The TopK encoder
# **Difficulty** ●●○○○ · **Importance** ●●●●● · **≈ 10 min**
#
# Write `topk_encode(x, W_enc, b_enc, b_dec, k)`: compute the pre-activations **including** `b_enc`, keep the
# `k` largest per row, apply ReLU to them, and set every other latent to 0.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# `pre.topk(k, dim=-1)` returns `values` and `indices`; `Tensor.scatter(dim, index, src)` writes values back
# at given indices.
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# Start from a `(batch, d_sae)` tensor of zeros shaped like the pre-activations and scatter into it, along
# the last axis, the kept values after a ReLU. Why the ReLU: when fewer than `k` pre-activations of a token
# are positive, some of its top `k` are negative, and a latent never fires negatively.
# </details>

# %%
def topk_encode(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor, k: int) -> torch.Tensor:
    # BEGIN SOLUTION
    pre = (x - b_dec) @ W_enc + b_enc  # (batch, d_sae)
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
    # END SOLUTION


# %%
check.topk_encode(topk_encode)

# %% [markdown]
# ### Exercise 01.4 — One training step of a TopK SAE
# **Difficulty** ●●●●○ · **Importance** ●●●●● · **≈ 30 min**
#
# TopK needs no penalty (sparsity is $k$), so its loss is the reconstruction alone. We use the **normalised
# MSE**: the batch's mean squared error divided by the batch's variance around its mean,
#
# $$\mathcal L = \frac{\frac1B\sum_b \lVert x_b - \hat x_b\rVert^2}{\frac1B\sum_b \lVert x_b - \bar x\rVert^2},$$
#
# which is scale-free (1 = no better than predicting the mean), so one learning rate suits any layer.
#
# The course's TopK SAEs keep every decoder row at unit norm, as Gao et al. (2024) do: there is no penalty
# to cheat here, but fixed norms put each latent's size entirely in its activation, so activations of
# different latents are comparable. Two operations keep the constraint:
#
# * **before** the optimiser step, remove from each row's gradient its component along the row,
#   $g_i \leftarrow g_i - (g_i\cdot u_i)\,u_i$ with $u_i = W_\text{dec}[i]/\lVert W_\text{dec}[i]\rVert$: the
#   rows live on the unit sphere, and only the gradient tangent to it is meaningful;
# * **after** the step, rescale every row back to unit norm.
#
# Write `training_step(sae, optimiser, x)` that does one step on the batch `x` `(batch, d_in)` and returns
# the loss (computed before the step) as a Python float. `sae` is a `SparseAutoencoder` with parameters
# `sae.W_enc`, `sae.b_enc`, `sae.W_dec`, `sae.b_dec` and `sae.cfg.k`; `optimiser` updates those parameters.
# The forward pass is yours: use your `topk_encode`, then decode. (The class has methods that do the two
# constraint operations; write them yourself.)
#
# The check runs three steps from a fixed seed, with SGD and with Adam, and compares the returned losses and
# every parameter after each step with the reference; it recognises the usual slips (gradients that
# accumulate, columns renormalised instead of rows, ...).
#
# <details><summary>Hint 1 (nudge)</summary>
#
# The order: forward, loss, clear the old gradients, backward, fix up `W_dec.grad`, `optimiser.step()`,
# renormalise. PyTorch *adds* each backward's gradient into `.grad`: which call stops one step's gradient
# leaking into the next?
# </details>
# <details><summary>Hint 2 (the in-place rules)</summary>
#
# Changing a parameter or its gradient by hand must happen inside `with torch.no_grad():`, and it must be
# *in place* (`-=`, `/=`, `.copy_(...)`): the optimiser holds the very tensor `sae.W_dec`, so
# `sae.W_dec = ...` would leave it updating an orphan. A per-row dot product of two `(d_sae, d_in)` matrices
# is an elementwise product summed over the last axis; `keepdim=True` keeps it as a `(d_sae, 1)` column that
# broadcasts across each row.
# </details>
# <details><summary>Hint 3 (almost the answer)</summary>
#
# ```
# z, x_hat   <- your topk_encode with the SAE's parameters, then z @ W_dec + b_dec
# loss       <- mean over tokens of the squared error / mean over tokens of ||x - x.mean(0)||^2
# zero_grad, backward
# no_grad:   u <- rows of W_dec scaled to unit norm;  W_dec.grad -= (per-row dot of W_dec.grad and u) * u
# step
# no_grad:   divide W_dec by its row norms, in place
# return the loss as a float
# ```
# </details>

# %%
def training_step(sae: SparseAutoencoder, optimiser: torch.optim.Optimizer, x: torch.Tensor) -> float:
    # BEGIN SOLUTION
    z = topk_encode(x, sae.W_enc, sae.b_enc, sae.b_dec, sae.cfg.k)  # (batch, d_sae)
    x_hat = z @ sae.W_dec + sae.b_dec  # (batch, d_in)
    loss = (x - x_hat).pow(2).sum(-1).mean() / (x - x.mean(0)).pow(2).sum(-1).mean()
    optimiser.zero_grad()
    loss.backward()
    with torch.no_grad():
        rows = sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True)
        sae.W_dec.grad -= (sae.W_dec.grad * rows).sum(-1, keepdim=True) * rows
    optimiser.step()
    with torch.no_grad():
        sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True)
    return loss.item()
    # END SOLUTION


# %%
check.training_step(training_step)

# %% [markdown]
# **Going further (not checked): AuxK.** A TopK latent that is never among the top $k$ gets no gradient and
# can stay "dead" for good. Gao et al. (2024) add an auxiliary loss: the top $k_\text{aux}$ pre-activations
# among latents that have not fired for a while must reconstruct the leftover error $x - \hat x$, which
# pulls dead latents towards what the live ones miss. `utils.sae.auxk_loss` computes it, and
# `utils/train_sae.py` shows how to track which latents are dead; adding `auxk_loss(...) / 32` to your loss
# is the whole change.
#
# Your step trains the toy TopK SAE (k = 3, Adam):

# %%
def train_topk_toy(d_sae: int = 128, k: int = 3, steps: int = 800, seed: int = 0):
    toy_sae = SparseAutoencoder(SAEConfig(d_in=cfg.d_model, d_sae=d_sae, architecture="topk", k=k,
                                          hook_name="toy", hook_layer=0), seed=seed)
    optimiser = torch.optim.Adam(toy_sae.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    losses = [training_step(toy_sae, optimiser, toy.sample_toy_batch(cfg, features, 1024, generator)[0])
              for _ in trange(steps, desc="TopK SAE", leave=False)]
    return toy_sae, losses


start = time.perf_counter()
toy_topk, toy_results["TopK (normalised MSE)"] = train_topk_toy()
print(f"TopK: recovery {recovery_score(toy_topk.W_dec.detach(), features):.3f} in {time.perf_counter() - start:.1f} s")

# %%
fig = go.Figure([go.Scatter(y=losses, name=name, mode="lines") for name, losses in toy_results.items()])
fig.update_layout(title="Toy SAE training losses (the ReLU and TopK losses measure different things)",
                  xaxis_title="step", yaxis_title="loss (log)", yaxis_type="log", height=320)

# %% [markdown]
# Both architectures find essentially every planted feature. The ReLU SAE's result depends on the L1
# coefficient: too weak and latents stay dense and blurry, too strong and features are dropped. TopK replaces
# that knob with $k$, which is one reason it is the course's main SAE. Try `train_relu_toy(relu_sae_loss, l1=0.05)`
# and watch the recovery fall.
#
# ## 3. The real thing: SmolLM2's residual stream at layer 10
#
# We read `blocks.10.hook_resid_post`, a third of the way through the 30 layers: concepts are formed there,
# steering works there (chapter 03), and `stop_at_layer=11` makes collecting activations cheap.
#
# Our text is the **course corpus** (`utils/data/course_corpus.jsonl.gz`): some 570 thousand tokens the
# model wrote itself from a seeded plan of about 380 topics (some 240 broad ones, then 140 more on bridges, the
# Golden Gate and their near misses) in a dozen formats, plus CPython's documentation. No modern-English corpus
# can be installed offline, so we made one. Training on the model's own writing means the SAE learns the
# features the model uses on fluent, generic, sometimes repetitive text; that is why every metric below is also
# measured on **human-written** text the SAE never saw.

# %%
from utils import corpus
from utils.activations import collect_activations
from utils.model import load_model

torch.set_num_threads(threads)  # back to every thread for the model
model = load_model()
train_docs = corpus.load_corpus(split="train", kind="model")
print(f"{len(train_docs)} model-written training documents; one of them:\n")
print(train_docs[3]["text"][:400], "…")

# %%
LAYER = 10
token_stream = corpus.token_batches(model.tokenizer, [d["text"] for d in train_docs[:700]], seq_len=128,
                                    batch_size=16, shuffle_seed=0)
start = time.perf_counter()
acts = collect_activations(model, token_stream, LAYER, max_tokens=61_440)  # (n_tokens, 576), float16
print(f"{tuple(acts.shape)} activations in {time.perf_counter() - start:.0f} s, {acts.element_size() * acts.numel() / 1e6:.0f} MB")


# %% [markdown]
# ### Train a small TopK SAE
#
# `utils.train_sae.train_sae` is the reference loop. Each step is your `training_step` (with the forward pass
# in bfloat16 where the CPU supports it), plus the details that matter at scale: the inputs are multiplied by
# one constant $s$ so that their mean squared norm is $d_\text{in}$ (learning rates and $k$ then transfer
# between layers and models; Anthropic's April-2024 recipe does the same), `b_dec` starts at the data mean,
# the learning rate warms up and decays, and the **AuxK** loss revives dead latents. After training, $s$ is
# folded into the weights, so the saved SAE reads raw activations.
# This SAE has 2,304 latents (4× d_in) and k = 32; it sees ~250 k activations in well under a minute.

# %%
from utils.train_sae import TrainConfig, train_sae

small_cfg = SAEConfig(d_in=576, d_sae=2304, architecture="topk", k=32, hook_name=f"blocks.{LAYER}.hook_resid_post", hook_layer=LAYER)
small_sae = SparseAutoencoder(small_cfg)
train_cfg = TrainConfig(batch_size=1024, epochs=4, warmup_steps=20, dead_after=60_000, log_every=5)
start = time.perf_counter()
history = train_sae(small_sae, acts, train_cfg)
print(f"trained on {len(acts) * train_cfg.epochs:,} activations in {time.perf_counter() - start:.0f} s")

# %%
steps = [h["step"] for h in history]
fig = go.Figure([go.Scatter(x=steps, y=[h["fvu"] for h in history], name="FVU (training batch)"),
                 go.Scatter(x=steps, y=[h["dead_fraction"] for h in history], name="dead fraction")])
fig.update_layout(title="Training the small SAE", xaxis_title="step", height=320)

# %% [markdown]
# ## 4. How good is it?
#
# Evaluate on **held-out** activations: the validation documents of the corpus, never used for training.
# Five numbers describe an SAE's reconstruction of activations $x_t$ (one per token $t$) by $\hat x_t$:
#
# * the **input scale** $s = \sqrt{d_\text{in} / \tfrac1n\sum_t \lVert x_t\rVert^2}$, the constant that
#   gives the activations a mean squared norm of $d_\text{in}$ (raw layer-10 vectors have a mean squared norm
#   near 20,000);
# * the **scaled MSE** $\tfrac1n\sum_t \lVert s x_t - s \hat x_t\rVert^2$: the error in those units, where
#   predicting 0 would cost about $d_\text{in}$;
# * the **fraction of variance unexplained**
#   $\text{FVU} = \sum_t \lVert x_t - \hat x_t\rVert^2 \,/\, \sum_t \lVert x_t - \bar x\rVert^2$, with $\bar x$
#   the mean over tokens. Centring matters: the mean vector carries about half of the squared norm here, so
#   an SAE that only learned the mean would look about half good without it;
# * **L0**, the mean number of non-zero latents per token;
# * the **dead fraction**, the fraction of latents that are zero on every token of the sample.
#
# ### Exercise 01.5 — Evaluate an SAE
# **Difficulty** ●●○○○ · **Importance** ●●●●○ · **≈ 20 min**
#
# Write `reconstruction_metrics(sae, acts)` for activations `acts` of shape `(n, d_in)`, possibly float16,
# and an SAE that reads raw activations (`sae.encode`, `sae.decode`). Return a dict of floats with the keys
# `"input_scale"`, `"scaled_mse"`, `"fvu"`, `"l0"` and `"dead_fraction"`.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# Encode and decode once (under `torch.no_grad()`), then compute each number from `x`, `x_hat` and `z`.
# The activation buffer is float16, whose largest value is 65,504: what happens to $\lVert x\rVert^2$?
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# Convert `acts` to float32 first. Scaling $x$ and $\hat x$ by $s$ scales a *squared* error by $s^2$; the SAE
# itself still gets the raw `x`. FVU is one ratio of two sums over all tokens and dimensions (not an average
# of per-token ratios). `z != 0` is a boolean `(n, d_sae)` tensor: summing it along one axis counts latents
# per token, along the other counts firings per latent.
# </details>

# %%
def reconstruction_metrics(sae: SparseAutoencoder, acts: torch.Tensor) -> dict[str, float]:
    # BEGIN SOLUTION
    x = acts.float()
    with torch.no_grad():
        z = sae.encode(x)  # (n, d_sae)
        x_hat = sae.decode(z)  # (n, d_in)
    scale = (x.shape[-1] / x.pow(2).sum(-1).mean()).sqrt()
    squared_error = (x - x_hat).pow(2).sum(-1)  # (n,)
    active = z != 0
    return {
        "input_scale": scale.item(),
        "scaled_mse": (scale**2 * squared_error.mean()).item(),
        "fvu": (squared_error.sum() / (x - x.mean(0)).pow(2).sum()).item(),
        "l0": active.sum(-1).float().mean().item(),
        "dead_fraction": (active.sum(0) == 0).float().mean().item(),
    }
    # END SOLUTION


# %%
check.reconstruction_metrics(reconstruction_metrics)

# %%
val_docs = corpus.load_corpus(split="val", kind="model")
val_stream = corpus.token_batches(model.tokenizer, [d["text"] for d in val_docs], seq_len=128, batch_size=16, shuffle_seed=0)
val_acts = collect_activations(model, val_stream, LAYER, max_tokens=4_096).float()  # (4096, 576)
course_sae = load_course_sae()
rows = {}
for name, sae in [("small SAE (this notebook)", small_sae), ("course SAE (shipped)", course_sae)]:
    rows[name] = reconstruction_metrics(sae, val_acts)  # encodes 4,096 tokens at once: a few hundred MB at most
    release()
    m = rows[name]
    print(f"{name:27s} d_sae={sae.cfg.d_sae:5d}  s={m['input_scale']:.3f}  scaled MSE={m['scaled_mse']:6.1f}  "
          f"FVU={m['fvu']:.3f}  L0={m['l0']:5.1f}  dead={m['dead_fraction']:.1%}")

# %% [markdown]
# **The sparsity–reconstruction trade-off.** Fewer active latents per token means a worse reconstruction.
# Train two more small SAEs with other values of k and put all of them on one plot (about 30 s):

# %%
points = [("course SAE", course_sae.cfg.k, rows["course SAE (shipped)"]), ("small", 32, rows["small SAE (this notebook)"])]
for k in [8, 96]:
    sae_k = SparseAutoencoder(SAEConfig(**{**small_cfg.__dict__, "k": k, "extra": {}}))
    train_sae(sae_k, acts, TrainConfig(batch_size=1024, epochs=2, warmup_steps=10, dead_after=60_000))
    points.append(("small", k, reconstruction_metrics(sae_k, val_acts)))
fig = px.scatter(x=[p[2]["l0"] for p in points], y=[p[2]["fvu"] for p in points], color=[p[0] for p in points],
                 text=[f"k={p[1]}" for p in points], log_x=True, height=340,
                 labels={"x": "L0 (active latents per token, log)", "y": "FVU (held-out)", "color": "SAE"},
                 title="Sparsity vs reconstruction")
fig.update_traces(textposition="top center")

# %% [markdown]
# ## 5. Does the model still work with the SAE inside it?
#
# Low FVU is not the goal; preserving the model's behaviour is. We **splice** the SAE in: a hook replaces the
# layer-10 residual stream by its reconstruction, and the rest of the model runs on that. Then we compare the
# model's next-token cross-entropy in three runs: clean ($CE_\text{clean}$), with the SAE spliced in
# ($CE_\text{SAE}$), and with the layer **zero-ablated** ($CE_\text{zero}$, the activation replaced by zeros):
#
# $$\text{CE loss recovered} = \frac{CE_\text{zero} - CE_\text{SAE}}{CE_\text{zero} - CE_\text{clean}} ,$$
#
# 1 when the SAE loses nothing, 0 when it is as bad as deleting the layer's stream. The change in loss itself
# (ΔCE, in nats per token) and the **KL divergence** of the spliced model's predictions from the clean
# model's, $\mathrm{KL}(p_\text{clean}\,\Vert\,p_\text{SAE}) = \sum_v p_\text{clean}(v)\,\big(\log p_\text{clean}(v) - \log p_\text{SAE}(v)\big)$,
# are the stricter numbers.
#
# ### Exercise 01.6 — Splice the SAE in: CE loss recovered and KL
# **Difficulty** ●●●○○ · **Importance** ●●●●● · **≈ 25 min**
#
# Write `spliced_ce(model, sae, tokens)` for `tokens` of shape `(batch, pos)`. Run the model three times
# (clean; with a hook on `sae.cfg.hook_name` that returns the SAE's reconstruction of the activation; with a
# hook that returns zeros) and return a dict of floats:
#
# * `"ce_clean"`, `"ce_sae"`, `"ce_zero"`: the mean, over every position that has a next token, of
#   $-\log p(\text{next token})$;
# * `"ce_loss_recovered"`: the fraction above;
# * `"kl"`: the mean over the same positions of $\mathrm{KL}(p_\text{clean}\,\Vert\,p_\text{SAE})$.
#
# <details><summary>Hint 1 (nudge)</summary>
#
# A TransformerLens hook is a function `hook_fn(act, hook)` whose return value replaces the activation
# `act` `(batch, pos, d_model)`; `model.run_with_hooks(tokens, fwd_hooks=[(name, hook_fn)])` returns the
# logits `(batch, pos, d_vocab)`. Wrap the runs in `torch.no_grad()`.
# </details>
# <details><summary>Hint 2 (almost the answer)</summary>
#
# The logits at position $t$ predict token $t+1$: pair `logits[:, :-1]` with `tokens[:, 1:]`. After
# `log_softmax(-1)`, `.gather(-1, targets[..., None])` picks each position's log-probability of the true next
# token. For the KL, sum over the vocabulary and average over positions; mind the argument order if you use
# `torch.nn.functional.kl_div(input, target)`, which computes KL(target ‖ input).
# </details>

# %%
def spliced_ce(model, sae: SparseAutoencoder, tokens: torch.Tensor) -> dict[str, float]:
    # BEGIN SOLUTION
    def splice(act: torch.Tensor, hook) -> torch.Tensor:  # act: (batch, pos, d_in)
        return sae.decode(sae.encode(act))

    def zero(act: torch.Tensor, hook) -> torch.Tensor:
        return torch.zeros_like(act)

    name = sae.cfg.hook_name
    targets = tokens[:, 1:, None]
    with torch.no_grad():
        log_p = {key: model.run_with_hooks(tokens, fwd_hooks=hooks)[:, :-1].log_softmax(-1)  # (batch, pos-1, d_vocab)
                 for key, hooks in [("clean", []), ("sae", [(name, splice)]), ("zero", [(name, zero)])]}
    ce = {key: -lp.gather(-1, targets).mean().item() for key, lp in log_p.items()}
    kl = (log_p["clean"].exp() * (log_p["clean"] - log_p["sae"])).sum(-1).mean().item()
    return {"ce_clean": ce["clean"], "ce_sae": ce["sae"], "ce_zero": ce["zero"],
            "ce_loss_recovered": (ce["zero"] - ce["sae"]) / (ce["zero"] - ce["clean"]), "kl": kl}
    # END SOLUTION


# %%
check.spliced_ce(spliced_ce)

# %% [markdown]
# Now measure both SAEs with your function on held-out model-written text and on **human-written** text
# (everyday English written for the course, `utils/data/human_eval.txt`), one 128-token sequence at a time so
# the 49,152-wide logits stay small. Average the CEs over sequences, then take the fraction recovered (the
# mean of per-sequence fractions is not the fraction of the means). Zero-ablation is a harsh baseline: with the
# layer-10 stream set to zero, every later block receives zeros and outputs zeros (this model's layers have no
# biases), so the model predicts the uniform distribution, $CE_\text{zero} = \ln 49152 \approx 10.8$ nats.
# CE recovered therefore looks flattering; ΔCE and KL are the stricter numbers. (A few thousand tokens per set
# here: expect some noise; the course SAE's recorded metrics below used more.)

# %%
def spliced_metrics(sae, texts: list[str], n_batches: int = 12) -> dict[str, float]:
    """Your spliced_ce on n_batches sequences of 128 tokens, averaged (every sequence has 127 predictions)."""
    per_sequence = []
    batches = corpus.token_batches(model.tokenizer, texts, seq_len=128, batch_size=1, shuffle_seed=1, max_batches=n_batches)
    for tokens in tqdm(batches, total=n_batches, desc="spliced forward passes", leave=False):
        per_sequence.append(spliced_ce(model, sae, tokens))
        release()  # hand freed logits back to the OS (utils/memory.py): keeps the kernel far from Binder's 2 GB
    mean = {key: sum(m[key] for m in per_sequence) / len(per_sequence) for key in ("ce_clean", "ce_sae", "ce_zero", "kl")}
    return {"CE recovered": (mean["ce_zero"] - mean["ce_sae"]) / (mean["ce_zero"] - mean["ce_clean"]),
            "ΔCE (nats)": mean["ce_sae"] - mean["ce_clean"], "KL (nats)": mean["kl"],
            "zero-ablation ΔCE": mean["ce_zero"] - mean["ce_clean"]}


eval_texts = {"model-written (val)": [d["text"] for d in val_docs], "human-written": corpus.human_eval_texts()}
spliced = {}
for sae_name, sae in [("small SAE", small_sae), ("course SAE", course_sae)]:
    for text_name, texts in eval_texts.items():
        spliced[sae_name, text_name] = metrics = spliced_metrics(sae, texts)
        print(f"{sae_name:10s} on {text_name:20s}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
for text_name in eval_texts:
    ratio = spliced["small SAE", text_name]["ΔCE (nats)"] / spliced["course SAE", text_name]["ΔCE (nats)"]
    print(f"on {text_name}, the small SAE's ΔCE is {ratio:.1f}× the course SAE's")

# %% [markdown]
# Read the lines above side by side. With fewer latents and far less training, the notebook's SAE explains
# less variance and costs the model more (higher ΔCE and KL; the last lines give the ratio of the ΔCEs).
# Both SAEs do worse on human everyday English than on the model's own writing — what training on a
# model-written corpus predicts — and the course SAE's CE recovered on it is the number to look at before
# trusting its latents on human text. That is the SAE chapters 02 and 03 use.
#
# ## 6. The course SAE
#
# The shipped SAE was trained by the command and on the data recorded in its config; its metrics below were
# measured on text it never saw (validation documents of the corpus, the human-written paragraphs, and a
# held-out slice of CPython's documentation), with the weights exactly as shipped (float16).

# %%
extra = course_sae.cfg.extra
print("command:", extra["command"])
print(f"activations seen: {extra['activations_seen']:,} ({extra['train_activations']:,} distinct, "
      f"{extra['train_config']['epochs']} epochs)")
total_minutes = (extra["collect_seconds"] + extra["train_seconds"]) / 60
print(f"time: collecting activations {extra['collect_seconds']} s + training {extra['train_seconds']} s "
      f"= {total_minutes:.0f} min on the machine that trained it")
for set_name, m in extra["metrics"].items():
    print(f"{set_name:22s} CE recovered {m['ce_loss_recovered']:.3f}  ΔCE {m['delta_ce']:.3f}  KL {m['kl']:.3f}  "
          f"FVU {m['fvu']:.3f}  L0 {m['l0']:.1f}  dead {m['dead_fraction']:.1%}")

# %% [markdown]
# How often does each latent fire? A healthy SAE has few dead latents and no latent that fires on everything.
# The histogram shows, for each of the course SAE's latents, the log10 of the fraction of held-out tokens on
# which it is active.

# %%
with torch.no_grad():
    frequency = (course_sae.encode(val_acts) != 0).float().mean(0)  # (d_sae,)
release()
log_frequency = torch.log10(frequency.clamp_min(1e-6))
px.histogram(x=log_frequency.tolist(), nbins=60, height=320,
             labels={"x": "log10(firing frequency); -6 = never fired on this sample"},
             title=f"Course SAE latent density on {len(val_acts):,} held-out tokens")

# %% [markdown]
# **A wider SAE, and what width buys.** The course also ships a 16,384-latent SAE trained as a *Matryoshka*
# SAE: one run in which its first 1,024 and first 4,096 latents must reconstruct on their own too, so one file
# holds three nested SAEs (`utils.sae.load_matryoshka_sae(width)`; the training objective is
# `utils.sae.nested_topk_loss`). Chapter 02 uses it to watch a broad latent *split* into specific ones as the
# dictionary grows, and to find a latent for the Golden Gate Bridge itself. Its recorded held-out metrics per
# width, beside the course SAE's (same k = 32):

# %%
from utils.sae import MATRYOSHKA_SAE_DIR

wide_extra = json.loads((MATRYOSHKA_SAE_DIR / "cfg.json").read_text())["extra"]  # the record, without the weights
for width, sets in wide_extra["nested_metrics"].items():
    m = sets["human_everyday_text"]
    print(f"Matryoshka prefix {int(width):6,d} latents, human everyday text: CE recovered {m['ce_loss_recovered']:.3f}  "
          f"ΔCE {m['delta_ce']:.3f}  KL {m['kl']:.3f}  FVU {m['fvu']:.3f}")
m = extra["metrics"]["human_everyday_text"]
print(f"course SAE        {course_sae.cfg.d_sae:6,d} latents, human everyday text: CE recovered {m['ce_loss_recovered']:.3f}  "
      f"ΔCE {m['delta_ce']:.3f}  KL {m['kl']:.3f}  FVU {m['fvu']:.3f}")
print(f"Matryoshka training: {wide_extra['activations_seen']:,} activations, {wide_extra['collect_seconds']} s collecting + "
      f"{wide_extra['train_seconds']} s training")

# %% [markdown]
# ## Recap
#
# * Superposition: more features than dimensions. An SAE with more latents than dimensions and a sparsity
#   pressure recovers planted features almost perfectly (recovery ≈ 1.0 on the toy data).
# * Two ways to be sparse: ReLU + L1 weighted by the decoder norms, with the rows left free (Anthropic's
#   April-2024 recipe; plain L1 with free rows is cheated by growing them), or TopK (exactly k latents), whose
#   decoder rows the training step keeps at unit norm (gradient projected, rows renormalised).
# * Judge an SAE by FVU (centred!), L0, dead latents, and by splicing it back in: CE recovered, and always
#   the stricter ΔCE and KL next to it.
# * The notebook's SAE is smaller and saw a quarter of a million activations; the course SAE was trained on
#   millions with the same code — compare their rows above.
#
# ## Published numbers to compare against
#
# * Templeton et al. (2024), *Scaling Monosemanticity*: SAEs with 1 M, 4 M and 34 M features on Claude 3
#   Sonnet's middle residual stream; with the 34 M SAE, fewer than 300 features were active per token on
#   average, and the reconstruction explained at least 65 % of the variance.
# * Gao et al. (2024), *Scaling and evaluating sparse autoencoders* (OpenAI): TopK SAEs up to 16 M latents on
#   GPT-4 activations; they report that with AuxK and a tied initialisation only a small fraction of latents
#   die, and that TopK improves the reconstruction–sparsity frontier over ReLU.
#
# ## What changes at frontier scale
#
# Millions of latents instead of thousands, billions of tokens of human text instead of half a million
# model-written ones, and GPU clusters. The features get finer (one landmark rather than "bridges"), and
# rarer features appear that a small SAE merges with their neighbours ("feature splitting").
#
# ## Further reading
#
# * Elhage et al. (2022), *Toy Models of Superposition*.
# * Bricken et al. (2023), *Towards Monosemanticity*.
# * Gao et al. (2024), *Scaling and evaluating sparse autoencoders*.
# * Anthropic (2024), *Circuits Updates — April 2024* (the decoder-norm-weighted L1 recipe).
