"""Checks for chapter 01 — sparse autoencoders: toy superposition, the April-2024 ReLU loss, the TopK
encoder, a whole training step, the metrics that say whether an SAE is any good, and the model's loss
with the SAE spliced in.

Each check compares the learner's function with the reference in :mod:`utils.toy`, :mod:`utils.sae`
or :mod:`utils.sae_metrics` on fixed and randomised inputs and, on a mismatch, tests the
catalogued mistakes to say which one it probably is. The training-step check runs a few steps from a
fixed seed and replays each catalogued mistake (no ``zero_grad``, columns renormalised, ...) to
recognise it.
"""

from __future__ import annotations

import functools
import math
import numbers
import random
import re
from typing import Any, Callable

from utils.checks import as_number, as_tensor, close, course_model, exercise, fail, is_shape_error
from utils.checks import call_checked as _call
from utils.checks import diagnose as _diagnose
from utils.checks import generator as _generator
from utils.checks import no_in_place as _no_in_place

GRADED_REMOTELY = True  # the grader runs these checks in its own process, on answers sent from the kernel as data

_WORDS = "river cloud lantern violin garden winter copper harbor meadow puzzle rocket velvet".split()


# ---------------------------------------------------------------------------------------------
def _dictionary(features: Any, g: Any) -> Any:
    """A decoder (d_sae, d_model) with rows of assorted norms: noisy copies of half the features,
    exact negatives of an eighth of them, and random rows, shuffled; d_sae differs from n_features."""
    import torch

    n, d = features.shape
    pick = torch.randperm(n, generator=g)
    n_good, n_neg = n // 2, max(2, n // 8)
    rows = torch.cat([
        features[pick[:n_good]] + 0.1 * torch.randn(n_good, d, generator=g) / d**0.5,
        -features[pick[n_good:n_good + n_neg]],
        torch.randn(n // 2, d, generator=g),
    ])
    rows = rows / rows.norm(dim=-1, keepdim=True) * (0.3 + 2.7 * torch.rand(len(rows), 1, generator=g))
    return rows[torch.randperm(len(rows), generator=g)]


@exercise("01", 1, "recovery_score", "Recovery score on toy data")
def recovery_score(fn: Callable) -> str:
    import torch
    from torch.nn.functional import normalize

    from utils import toy

    g = _generator()
    n, d = int(torch.randint(12, 41, (), generator=g)), int(torch.randint(6, 17, (), generator=g))
    random_features = normalize(torch.randn(n, d, generator=g), dim=-1)
    fixed_features = toy.true_features(toy.ToyConfig())
    cases = [
        (fixed_features, fixed_features[torch.randperm(64, generator=_generator(1))] * 2.5),  # perfect
        (fixed_features, _dictionary(fixed_features, _generator(0))),
        (random_features, _dictionary(random_features, g)),
    ]
    hint = ("W_dec is (d_sae, d_model), one latent's direction per ROW, like `features` (n_features, d_model). "
            "Normalise both along dim=-1 and compare rows with rows: `f @ d.T` has shape (n_features, d_sae).")
    for features, W_dec in cases:
        out, changed = _call(fn, ("W_dec", "features"), W_dec, features, shape_hint=hint)
        if isinstance(out, torch.Tensor) and out.numel() == len(features) > 1:
            fail(f"returned {len(features)} values, one per feature; the score is their mean: `.mean().item()`.")
        got = as_number(out, "recovery_score(W_dec, features)")
        want = toy.recovery_score(W_dec, features)
        if close(got, want):
            _no_in_place(changed)
            continue
        f, w = normalize(features, dim=-1), normalize(W_dec, dim=-1)
        cos = f @ w.T  # (n_features, d_sae)
        _diagnose(got, [
            (cos.abs().max(-1).values.mean().item(),
             "you used the absolute cosine. A decoder row pointing at -f does not recover f: SAE latents are "
             "non-negative, so that latent can only ever add -f. Use the signed cosine (drop the .abs())."),
            (cos.max(0).values.mean().item(),
             "you took, for each decoder row, its best-matching feature and averaged over decoder rows. The score "
             "asks, for each TRUE feature, whether some row recovers it: max over decoder rows (dim=-1 of the "
             "(n_features, d_sae) cosine matrix), then the mean over features."),
            ((features @ W_dec.T).max(-1).values.mean().item(),
             "you used dot products, not cosines, so rows with a larger norm score higher. Normalise every row "
             "to unit norm first: torch.nn.functional.normalize(W_dec, dim=-1) (and the same for features)."),
            ((f @ normalize(W_dec, dim=0).T).max(-1).values.mean().item(),
             "you normalised the columns of W_dec (dim=0). " + hint),
            ((cos.abs().max(0).values.mean()).item(),
             "you used the absolute cosine AND averaged over decoder rows instead of over true features: take "
             "the signed cosine, the max over decoder rows, then the mean over features."),
        ], atol=1e-4)
        fail(f"got {got:.4f}, expected {want:.4f} (W_dec {tuple(W_dec.shape)}, features {tuple(features.shape)}). "
             "The score is the mean over true features f_i of max_j cos(f_i, d_j), d_j the rows of W_dec.")
    partial = toy.recovery_score(cases[-1][1], cases[-1][0])
    return f"1.000 for a perfect dictionary, {partial:.3f} for one that recovers about half the features"


# ---------------------------------------------------------------------------------------------
def _encoder_inputs(g: Any, batch: int, d_in: int, d_sae: int, b_enc_shift: float = 0.0) -> tuple[Any, ...]:
    import torch

    x = 1.5 * torch.randn(batch, d_in, generator=g) + 0.5
    W_enc = torch.randn(d_in, d_sae, generator=g) / d_in**0.5
    b_enc = 1.5 * torch.randn(d_sae, generator=g) + b_enc_shift
    b_dec = torch.randn(d_in, generator=g)
    return x, W_enc, b_enc, b_dec


_ENCODER_HINT = ("Shapes: x (batch, d_in), W_enc (d_in, d_sae), b_enc (d_sae,), b_dec (d_in,); "
                 "the pre-activations are (x - b_dec) @ W_enc + b_enc, of shape (batch, d_sae).")


# ---------------------------------------------------------------------------------------------
def _rows_of_assorted_norms(g: Any, d_sae: int, d_in: int) -> Any:
    import torch

    W = torch.randn(d_sae, d_in, generator=g)
    return W / W.norm(dim=-1, keepdim=True) * (0.2 + 4.8 * torch.rand(d_sae, 1, generator=g))


def _relu_loss_inputs(g: Any, batch: int, d_in: int, d_sae: int) -> tuple[Any, ...]:
    x, W_enc, b_enc, b_dec = _encoder_inputs(g, batch, d_in, d_sae)
    return x, W_enc, b_enc, _rows_of_assorted_norms(g, d_sae, d_in), b_dec


_LOSS_FORMULA = ("loss = mean over tokens of ||x - x_hat||^2 + l1_coefficient * mean over tokens of "
                 "sum_i z_i ||W_dec[i]||, with z = ReLU((x - b_dec) @ W_enc + b_enc) and x_hat = z @ W_dec + b_dec")


def _relu_loss_candidates(x: Any, W_enc: Any, b_enc: Any, W_dec: Any, b_dec: Any, l1: float) -> list[tuple[Any, str]]:
    """(value, diagnosis) of the catalogued mistakes in the April-2024 ReLU loss."""
    import torch

    relu = torch.relu
    pre = (x - b_dec) @ W_enc + b_enc
    z = relu(pre)
    norms = W_dec.norm(dim=-1)
    x_hat = z @ W_dec + b_dec

    def sq(x_hat_: Any) -> Any:
        return (x - x_hat_).pow(2).sum(-1).mean()

    def pen(z_: Any, weights: Any = norms) -> Any:
        return (z_ * weights).sum(-1).mean()

    mse, penalty = sq(x_hat), pen(z)
    unit = W_dec / W_dec.norm(dim=-1, keepdim=True)
    square = W_dec.shape[0] == W_dec.shape[1]
    return [
        (mse + l1 * z.sum(-1).mean(),
         "plain L1: you did not weight each latent by its decoder row's norm. Here the rows are FREE (no "
         "renormalisation), so plain L1 can be dodged: divide z_i by c and multiply W_dec[i] by c, and x_hat is "
         "unchanged while the penalty shrinks by c. The optimiser would grow the rows instead of making z sparse. "
         "sum_i z_i ||W_dec[i]|| does not change under that rescaling: weight by W_dec.norm(dim=-1)."),
        (sq(z @ unit + b_dec) + l1 * z.sum(-1).mean(),
         "you normalised the decoder rows inside the loss. In the April-2024 recipe the rows are free: decode "
         "with W_dec itself and let the weight ||W_dec[i]|| in the penalty do the work of the old unit-norm "
         "constraint."),
        (mse + l1 * pen(z, W_dec.norm(dim=0)) if square else None,
         "you weighted by the norms of W_dec's columns (dim=0). W_dec is (d_sae, d_in): latent i's direction is "
         "the ROW W_dec[i], so its norm is W_dec.norm(dim=-1), a (d_sae,) vector that broadcasts against z."),
        (mse + l1 * pen(z, norms**2), "you weighted by the squared decoder norms; use the norms, W_dec.norm(dim=-1)."),
        (mse + l1 * pen(z**2), "you squared z in the penalty: this is an L1 penalty, z_i itself (z >= 0)."),
        (mse + l1 * (z * norms).mean(),
         "in the penalty you averaged over latents as well; SUM over latents (dim=-1), then average over tokens."),
        ((x - x_hat).pow(2).sum() + l1 * (z * norms).sum(),
         "you summed over tokens; both terms are means over the batch (sum over d_in and over latents, then "
         ".mean() over tokens), so the loss does not grow with the batch size."),
        (mse + l1 * (z * norms).sum(),
         "you summed the penalty over tokens; average it over the batch like the reconstruction term."),
        ((x - x_hat).pow(2).mean() + l1 * penalty,
         "your reconstruction term is the mean over every element (it is divided by d_in). Use the squared L2 "
         "error of each token, summed over d_in, averaged over tokens: (x - x_hat).pow(2).sum(-1).mean()."),
        ((x - x_hat).norm(dim=-1).mean() + l1 * penalty,
         "your reconstruction term is the L2 norm of the error, not its square: (x - x_hat).pow(2).sum(-1).mean()."),
        (mse, "you returned the reconstruction term only: add l1_coefficient * the decoder-weighted L1 penalty."),
        (mse + penalty, "you did not multiply the penalty by l1_coefficient."),
        (l1 * (mse + penalty), "l1_coefficient multiplies the penalty only, not the reconstruction term."),
        (sq(relu(x @ W_enc + b_enc) @ W_dec + b_dec) + l1 * pen(relu(x @ W_enc + b_enc)),
         "you did not subtract b_dec before the encoder: z = ReLU((x - b_dec) @ W_enc + b_enc)."),
        (sq(relu((x + b_dec) @ W_enc + b_enc) @ W_dec + b_dec) + l1 * pen(relu((x + b_dec) @ W_enc + b_enc)),
         "you added b_dec to x before the encoder; subtract it: (x - b_dec) @ W_enc."),
        (sq((relu((x - b_dec) @ W_enc) + b_enc) @ W_dec + b_dec) + l1 * pen(relu((x - b_dec) @ W_enc) + b_enc),
         "you applied the ReLU before adding b_enc; the bias goes inside: ReLU((x - b_dec) @ W_enc + b_enc)."),
        (sq(relu((x - b_dec) @ W_enc) @ W_dec + b_dec) + l1 * pen(relu((x - b_dec) @ W_enc)),
         "b_enc is missing from the encoder: z = ReLU((x - b_dec) @ W_enc + b_enc)."),
        (sq(pre @ W_dec + b_dec) + l1 * pen(pre),
         "no ReLU: the latents must be non-negative, z = ReLU((x - b_dec) @ W_enc + b_enc)."),
        (sq(z @ W_dec) + l1 * penalty,
         "your reconstruction forgets b_dec: x_hat = z @ W_dec + b_dec."),
    ]


@exercise("01", 2, "relu_sae_loss", "A ReLU SAE's loss, the April-2024 way")
def relu_sae_loss(fn: Callable) -> str:
    import torch

    from utils import sae as sae_module, sae_metrics

    g = _generator()
    d_in = int(torch.randint(4, 20, (), generator=g))
    cases = [  # the square case first, so column norms give a wrong value instead of a shape error
        (_relu_loss_inputs(_generator(2), 6, 8, 8), 0.7),
        (_relu_loss_inputs(_generator(3), 7, 10, 16), 0.3),
        (_relu_loss_inputs(g, int(torch.randint(3, 12, (), generator=g)), d_in,
                           d_in + int(torch.randint(1, 30, (), generator=g))), float(torch.empty(()).uniform_(0.1, 2, generator=g))),
    ]
    names = ("x", "W_enc", "b_enc", "W_dec", "b_dec")
    for inputs, l1 in cases:
        leaves = [t.clone().requires_grad_(name != "x") for name, t in zip(names, inputs)]
        try:
            out = fn(*leaves, l1)
        except NotImplementedError:
            raise
        except RuntimeError as error:
            if is_shape_error(error):
                shapes = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, inputs))
                fail(f"your code raised a shape error ({error}) on {shapes}. W_dec is (d_sae, d_in), one latent's "
                     "direction per ROW; z is (batch, d_sae).")
            if "leaf Variable" in str(error):
                fail("you changed an input in place (e.g. `x -= b_dec`): compute new tensors instead.")
            raise
        changed = [n for n, t, leaf in zip(names, inputs, leaves) if not torch.equal(t, leaf.detach())]
        if isinstance(out, torch.Tensor) and out.numel() == len(inputs[0]) > 1:
            fail(f"returned {len(inputs[0])} values, one per token; the loss is one number, their mean over the batch.")
        got = as_number(out, f"relu_sae_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient={l1:.3g})")
        want = sae_module.relu_sae_loss(*inputs, l1)
        if not close(got, want):
            _diagnose(got, [(float(v), m) for v, m in _relu_loss_candidates(*inputs, l1) if v is not None])
            fail(f"got {got:.5g}, expected {float(want):.5g}: {_LOSS_FORMULA}.")
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            fail("right value, but not a tensor that gradients flow through: the loss is backpropagated. Return the "
                 "torch expression itself (no .item(), float(), torch.tensor(...) or torch.no_grad()).")
        _no_in_place(changed)
        out.backward()
        params = [t.clone().requires_grad_(name != "x") for name, t in zip(names, inputs)]
        sae_module.relu_sae_loss(*params, l1).backward()
        for name, leaf, param in list(zip(names, leaves, params))[1:]:
            if leaf.grad is None:
                fail(f"no gradient reaches {name}: is it detached somewhere (.detach(), .data, torch.no_grad())?")
            if close(leaf.grad, param.grad, atol=1e-4, rtol=1e-3):
                continue
            if name == "W_dec":
                detached = [t.detach().clone().requires_grad_(n != "x") for n, t in zip(names, inputs)]
                x, W_enc, b_enc, W_dec, b_dec = detached
                z = torch.relu((x - b_dec) @ W_enc + b_enc)
                loss = (x - z @ W_dec - b_dec).pow(2).sum(-1).mean() + l1 * (z * W_dec.norm(dim=-1).detach()).sum(-1).mean()
                loss.backward()
                if close(leaf.grad, W_dec.grad, atol=1e-4, rtol=1e-3):
                    fail("right value, but the decoder norms are detached from the graph: their gradient is what "
                         "stops rows from growing (growing a row now costs penalty). Compute W_dec.norm(dim=-1) "
                         "without .detach() or torch.no_grad().")
            fail(f"right value, but the gradient with respect to {name} differs from the reference's: is part "
                 "of the loss computed on detached tensors?")
    return "MSE + l1 * sum_i z_i ||W_dec[i]||, value and gradients, with free decoder norms"


# ---------------------------------------------------------------------------------------------
def _scatter_relu(pre: Any, indices: Any, relu: bool = True) -> Any:
    import torch

    values = pre.gather(-1, indices)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values) if relu else values)


@exercise("01", 3, "topk_encode", "TopK encoder")
def topk_encode(fn: Callable) -> str:
    import torch

    from utils import sae

    g = _generator()
    d_in = int(torch.randint(4, 20, (), generator=g))
    d_sae = int(torch.randint(8, 48, (), generator=g))
    cases = [  # (inputs, k). Case 1: b_enc reorders the top k; case 2: many of the top k are negative
        (_encoder_inputs(_generator(5), 8, 10, 24), 4),
        (_encoder_inputs(_generator(6), 8, 10, 12, b_enc_shift=-1.5), 8),
        (_encoder_inputs(g, int(torch.randint(2, 12, (), generator=g)), d_in, d_sae),
         int(torch.randint(2, d_sae // 2 + 1, (), generator=g))),
    ]
    for (x, W_enc, b_enc, b_dec), k in cases:
        out, changed = _call(fn, ("x", "W_enc", "b_enc", "b_dec", "k"), x, W_enc, b_enc, b_dec, k, shape_hint=_ENCODER_HINT)
        got = as_tensor(out, f"topk_encode(x, W_enc, b_enc, b_dec, k={k})")
        want = sae.topk_encode(x, W_enc, b_enc, b_dec, k)
        if got.shape == (len(x), k) and got.shape != want.shape:
            fail(f"returned shape {tuple(got.shape)}: only the k kept values. Put them back at their latent "
                 f"indices in a (batch, d_sae) tensor of zeros: torch.zeros_like(pre).scatter(-1, indices, values).")
        if got.shape != want.shape:
            fail(f"returned shape {tuple(got.shape)}; expected (batch, d_sae) = {tuple(want.shape)}. {_ENCODER_HINT}")
        if close(got, want):
            _no_in_place(changed)
            continue
        pre = (x - b_dec) @ W_enc + b_enc
        top = pre.topk(k, dim=-1).indices
        by_dim0 = None
        if k <= len(x):
            values, indices = pre.topk(k, dim=0)
            by_dim0 = torch.zeros_like(pre).scatter(0, indices, torch.relu(values))
        _diagnose(got, [
            (_scatter_relu(pre, ((x - b_dec) @ W_enc).topk(k, dim=-1).indices),
             "you chose the top k before adding b_enc. The encoder bias is part of the pre-activation and can "
             "change which latents win: compute pre = (x - b_dec) @ W_enc + b_enc, then take pre.topk(k)."),
            (_scatter_relu(pre, top, relu=False),
             "negative values were kept: when fewer than k pre-activations are positive, some of the top k are "
             "negative. Apply ReLU to the kept values (the rest stay 0)."),
            (_scatter_relu(pre, pre.abs().topk(k, dim=-1).indices),
             "you chose the k largest by absolute value; choose the k largest pre-activations (signed): "
             "pre.topk(k, dim=-1) on pre itself, then ReLU."),
            (sae.topk_relu(pre, k + 1), f"off by one: you kept k + 1 = {k + 1} latents per token; keep exactly k."),
            (sae.topk_relu(pre, k - 1), f"off by one: you kept k - 1 = {k - 1} latents per token; keep exactly k."),
            (sae.topk_relu(x @ W_enc + b_enc, k),
             "you did not subtract b_dec: the pre-activations are (x - b_dec) @ W_enc + b_enc."),
            (by_dim0, "you took the top k along the batch axis (dim=0); take it over latents: topk(k, dim=-1)."),
            (torch.relu(pre), "you kept every positive latent (a ReLU encoder); keep only the k largest per token."),
        ])
        counts = (got != 0).sum(-1)
        if int(counts.max()) > k:
            fail(f"a token has {int(counts.max())} non-zero latents; at most k = {k} may be non-zero.")
        if got.min() < 0:
            fail("some latents are negative: apply ReLU to the k kept pre-activations.")
        fail(f"values differ from ReLU(TopK_k(pre)) with pre = (x - b_dec) @ W_enc + b_enc (k = {k}).")
    return "ReLU of the k largest pre-activations (bias included), others zero"


# ---------------------------------------------------------------------------------------------
_STEP_PARAMS = ("W_enc", "b_enc", "W_dec", "b_dec")


def _step_problem(seed: int, d_in: int, d_sae: int, k: int, batch: int, n_steps: int) -> tuple[Any, list[Any]]:
    """A small TopK SAE with non-trivial biases and ``n_steps`` batches with a large mean (so centring and
    ``b_dec`` matter), all from ``seed``."""
    import torch

    from utils.sae import SAEConfig, SparseAutoencoder

    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(d_in, generator=g)
    mean = 4 * mean / mean.norm()
    spread = 0.5 + torch.rand(d_in, generator=g)
    batches = [mean + torch.randn(batch, d_in, generator=g) * spread for _ in range(n_steps)]
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k,
                                      hook_name="check", hook_layer=0), seed=seed)
    with torch.no_grad():
        sae.W_enc.add_(0.2 * torch.randn(d_in, d_sae, generator=g))
        sae.b_enc.copy_(0.2 * torch.randn(d_sae, generator=g))
        sae.b_dec.copy_(mean + 0.5 * torch.randn(d_in, generator=g))
    return sae, batches


def _variant_step(sae: Any, optimiser: Any, x: Any, *, centre: bool = True, decode_bias: bool = True,
                  topk: bool = True, loss: str = "normalised", zero_grad: bool = True, project: bool = True,
                  renorm: str | None = "rows", step_first: bool = False) -> float:
    """One training step with the catalogued mistakes switched on by the keyword arguments."""
    import torch

    from utils.sae import topk_relu, unit_norm_rows

    pre = ((x - sae.b_dec) if centre else x) @ sae.W_enc + sae.b_enc
    z = topk_relu(pre, sae.cfg.k) if topk else torch.relu(pre)
    x_hat = z @ sae.W_dec + (sae.b_dec if decode_bias else 0)
    error = (x - x_hat).pow(2).sum(-1).mean()
    value = {
        "normalised": error / (x - x.mean(0)).pow(2).sum(-1).mean(),
        "mse": error,
        "element_mse": (x - x_hat).pow(2).mean(),
        "uncentred": error / x.pow(2).sum(-1).mean(),
    }[loss]
    if zero_grad:
        optimiser.zero_grad()
    if step_first:
        optimiser.step()
        value.backward()
    else:
        value.backward()
        if project:
            with torch.no_grad():
                rows = unit_norm_rows(sae.W_dec)
                sae.W_dec.grad -= (sae.W_dec.grad * rows).sum(-1, keepdim=True) * rows
        optimiser.step()
    with torch.no_grad():
        if renorm == "rows":
            sae.W_dec.copy_(unit_norm_rows(sae.W_dec))
        elif renorm == "columns":
            sae.W_dec.copy_(sae.W_dec / sae.W_dec.norm(dim=0, keepdim=True))
    return value.item()


_STEP_VARIANTS: list[tuple[dict[str, Any], str]] = [
    (dict(zero_grad=False),
     "the first step is right, the later ones are not: gradients ACCUMULATE across calls (PyTorch adds each "
     "backward's gradient to .grad). Call optimiser.zero_grad() before loss.backward()."),
    (dict(renorm=None),
     "the decoder rows are not renormalised: after optimiser.step(), rescale every row of W_dec to unit norm, "
     "in place and without gradient tracking (with torch.no_grad(): sae.W_dec.copy_(...))."),
    (dict(renorm="columns"),
     "you renormalised the COLUMNS of W_dec (dim=0). W_dec is (d_sae, d_in): each ROW is one latent's direction; "
     "divide by W_dec.norm(dim=-1, keepdim=True)."),
    (dict(project=False),
     "the step is right except for the decoder: you did not remove, before optimiser.step(), the component of "
     "W_dec.grad along each row, g_i - (g_i . u_i) u_i with u_i = W_dec[i] / ||W_dec[i]||. (The rows live on the "
     "unit sphere: only the gradient tangent to it is meaningful; the parallel part distorts the step.)"),
    (dict(centre=False),
     "you did not subtract b_dec before the encoder: the pre-activations are (x - b_dec) @ W_enc + b_enc."),
    (dict(decode_bias=False), "your reconstruction forgets b_dec: x_hat = z @ W_dec + b_dec."),
    (dict(topk=False),
     "you kept every positive latent (a ReLU SAE); a TopK SAE keeps the k = sae.cfg.k largest pre-activations "
     "(use your topk_encode)."),
    (dict(loss="mse"),
     "your loss is the plain MSE; divide it by the batch's variance around its mean, "
     "(x - x.mean(0)).pow(2).sum(-1).mean(), so it is scale-free (1 = as bad as predicting the mean)."),
    (dict(loss="element_mse"),
     "your loss is the per-element MSE, not normalised: divide the squared error by the batch's variance around "
     "its mean, (x - x.mean(0)).pow(2).sum(-1).mean()."),
    (dict(loss="uncentred"),
     "you normalised by mean ||x||^2, which is not centred: the variance is taken around the batch mean, "
     "(x - x.mean(0)).pow(2).sum(-1).mean()."),
    (dict(step_first=True),
     "your parameters did not move: optimiser.step() must come AFTER loss.backward() (and zero_grad before "
     "backward, not between backward and step)."),
]


def _run_steps(fn: Callable, make_optimiser: Callable, problem: tuple[Any, ...]) -> tuple[list[Any], list[dict[str, Any]], Any]:
    """Run ``fn(sae, optimiser, x)`` on each batch of a fresh copy of ``problem``: the returned values, the
    parameters after each call, and the SAE."""
    import copy

    sae, batches = copy.deepcopy(problem)
    originals = [getattr(sae, n) for n in _STEP_PARAMS]
    optimiser = make_optimiser(sae.parameters())
    outs, states = [], []
    for x in batches:
        x_before = x.clone()
        outs.append(fn(sae, optimiser, x))
        if not x.equal(x_before):
            fail("your step changed the batch x in place (e.g. `x -= sae.b_dec`); compute a new tensor instead.")
        for name, original in zip(_STEP_PARAMS, originals):
            if getattr(sae, name) is not original:
                fail(f"you replaced sae.{name} by a new tensor, so the optimiser (which holds the original parameter) "
                     f"no longer updates it. Change it in place: with torch.no_grad(): sae.{name}.copy_(...).")
        states.append({n: getattr(sae, n).detach().clone() for n in _STEP_PARAMS})
    return outs, states, sae


def _topk_margin(make_optimiser: Callable, problem: tuple[Any, ...]) -> float:
    """The smallest gap, over the reference run's tokens and steps, between the k-th and (k+1)-th largest
    pre-activation: a learner whose arithmetic differs in the last bits picks the same latents when it is wide."""
    import copy

    import torch

    from utils import sae as sae_module, sae_metrics

    sae, batches = copy.deepcopy(problem)
    optimiser = make_optimiser(sae.parameters())
    margin = math.inf
    for x in batches:
        with torch.no_grad():
            top = sae.pre_activations(x).topk(sae.cfg.k + 1, dim=-1).values
        margin = min(margin, float((top[:, -2] - top[:, -1]).min()))
        sae_module.training_step(sae, optimiser, x)
    return margin


def _random_step_problem(make_optimiser: Callable) -> tuple[Any, list[Any]]:
    """A randomly seeded problem whose top-k choices are not near ties (so rounding cannot flip them)."""
    rng = random.Random()
    for _ in range(20):
        problem = _step_problem(rng.randrange(2**31), 16, 48, 5, 48, 3)
        if _topk_margin(make_optimiser, problem) > 1e-4:
            break
    return problem


def _same_run(losses: list[float], states: list[dict[str, Any]], other: tuple[list[float], list[dict[str, Any]]],
              check_losses: bool = True) -> bool:
    other_losses, other_states = other
    if check_losses and not all(close(a, b) for a, b in zip(losses, other_losses)):
        return False
    return all(close(s[n], o[n], atol=1e-5, rtol=1e-4) for s, o in zip(states, other_states) for n in _STEP_PARAMS)


@exercise("01", 4, "training_step", "One training step of a TopK SAE")
def training_step(fn: Callable) -> str:
    import torch

    from utils import sae as sae_module, sae_metrics

    sgd = ("SGD (lr 0.5)", lambda params: torch.optim.SGD(params, lr=0.5))
    adam = ("Adam (lr 0.01)", lambda params: torch.optim.Adam(params, lr=1e-2, eps=1e-6))
    cases = [(_step_problem(11, 12, 40, 4, 64, 3), sgd), (_step_problem(12, 12, 40, 4, 64, 3), adam),
             (_random_step_problem(adam[1]), adam)]
    for problem, (opt_name, make_optimiser) in cases:
        try:
            outs, states, _ = _run_steps(fn, make_optimiser, problem)
        except NotImplementedError as error:
            other = re.search(r"Exercise \d\d\.\d+ `(\w+)`", str(error))
            if other and other.group(1) != "training_step":
                fail(f"your training_step calls `{other.group(1)}`, which is still the unsolved stub. Solve that "
                     "exercise first (or use sae.encode for the forward pass).")
            raise
        except (RuntimeError, TypeError) as error:
            text = str(error)
            if "leaf Variable" in text or "in-place operation" in text:
                fail(f"PyTorch refused an in-place change of a parameter ({text.splitlines()[0]}). Wrap the gradient "
                     "projection and the renormalisation in `with torch.no_grad():`.")
            if "does not require grad" in text:
                fail(f"backward() failed ({text.splitlines()[0]}): the loss has no graph. Do not compute it under "
                     "torch.no_grad(), and call .item() only on the value you return, after backward().")
            if "as parameter" in text:
                fail(f"{text}. Do not assign a new tensor to sae.W_dec; change it in place: with torch.no_grad(): "
                     "sae.W_dec.copy_(...).")
            if "NoneType" in text:
                fail(f"your code raised {type(error).__name__}: {text}. If that is W_dec.grad: W_dec.grad is None "
                     "before loss.backward() and right after optimiser.zero_grad(); remove the parallel component "
                     "after backward().")
            raise
        losses = [as_number(out, f"training_step call {i + 1}") for i, out in enumerate(outs)]
        want = _run_steps(sae_module.training_step, make_optimiser, problem)
        want_losses = [float(v) for v in want[0]]
        if _same_run(losses, states, (want_losses, want[1])):
            continue
        where = f"(with {opt_name}, {len(losses)} steps from a fixed seed)"
        for flags, message in _STEP_VARIANTS:
            variant = _run_steps(functools.partial(_variant_step, **flags), make_optimiser, problem)
            if _same_run(losses, states, variant[:2]):
                fail(f"{message} {where}")
        if _same_run(losses, states, (want_losses, want[1]), check_losses=False):
            fail(f"your parameters are right but the returned losses {[round(v, 5) for v in losses]} differ from "
                 f"the reference's {[round(v, 5) for v in want_losses]} {where}: return loss.item(), the normalised "
                 "MSE computed in this call before the step.")
        norms = states[-1]["W_dec"].norm(dim=-1)
        if not close(norms, torch.ones_like(norms), atol=1e-4):
            column_norms = states[-1]["W_dec"].norm(dim=0)
            if close(column_norms, torch.ones_like(column_norms), atol=1e-4):
                fail(f"after your step the COLUMNS of W_dec have unit norm, not the rows {where}. " + _STEP_VARIANTS[2][1])
            fail(f"after your step the decoder rows have norms from {float(norms.min()):.3f} to {float(norms.max()):.3f} "
                 f"{where}; renormalise every row to 1 after optimiser.step() (not before it).")
        if not close(losses[0], want_losses[0]):
            fail(f"your loss on the first batch is {losses[0]:.5g}, expected {want_losses[0]:.5g} {where}: the forward "
                 "pass or the loss differs. z = ReLU(TopK_k((x - b_dec) @ W_enc + b_enc)) (does your topk_encode pass "
                 "its check?), x_hat = z @ W_dec + b_dec, loss = mean ||x - x_hat||^2 / mean ||x - mean(x)||^2.")
        unchanged = all(close(states[-1][n], getattr(problem[0], n).detach(), atol=1e-7) for n in ("W_enc", "b_enc", "b_dec"))
        if unchanged:
            fail(f"your parameters did not move {where}: call loss.backward() and then optimiser.step().")
        first_ok = all(close(states[0][n], want[1][0][n], atol=1e-5, rtol=1e-4) for n in _STEP_PARAMS)
        if first_ok:
            fail(f"the first step is right, later ones differ {where}: do gradients accumulate (a missing "
                 "optimiser.zero_grad()), or does your function keep state between calls?")
        bad = [n for n in _STEP_PARAMS if not close(states[0][n], want[1][0][n], atol=1e-5, rtol=1e-4)]
        fail(f"the forward pass and the loss are right, but after the first step {', '.join(bad)} differ from the "
             f"reference {where}. The order is: zero_grad, backward, remove the gradient along each decoder row, "
             "optimiser.step(), renormalise the rows.")
    return "3 steps from a fixed seed match the reference with SGD and Adam: loss, update, projection, unit rows"


# ---------------------------------------------------------------------------------------------
def _number_or_value(out: Any) -> Any:
    import torch

    return out.detach().float().cpu().item() if isinstance(out, torch.Tensor) and out.numel() == 1 else out


def _overflowed(out: Any) -> bool:
    """Whether ``out`` is a number that is 0, infinite or NaN (what float16 overflow leads to)."""
    value = _number_or_value(out)
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and (value == 0 or not math.isfinite(value))


# ---------------------------------------------------------------------------------------------
def _times(t: int) -> str:
    return "once" if t == 1 else "twice" if t == 2 else f"{t} times"


def _metrics_problem(g: Any, n: int, d_in: int, d_sae: int, k: int, mean_norm: float, n_dead: int,
                     half: bool = False) -> tuple[Any, Any]:
    """A TopK SAE that reads raw activations (n_dead latents can never fire, some tokens have fewer than k
    positive pre-activations) and activations with a large mean and unequal per-dimension spreads."""
    import torch

    from utils.sae import SAEConfig, SparseAutoencoder

    mean = torch.randn(d_in, generator=g)
    mean = mean / mean.norm() * mean_norm
    acts = mean + torch.randn(n, d_in, generator=g) * (0.3 + 2.7 * torch.rand(d_in, generator=g)) * (mean_norm / 10)
    acts[: max(1, n // 50)] *= 3  # a few tokens with a much larger norm, like the first token of a sequence
    sae = SparseAutoencoder(SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k, hook_name="check", hook_layer=0),
                            seed=int(torch.randint(0, 2**31, (), generator=g)))
    with torch.no_grad():
        scale = mean_norm / 10
        sae.W_dec.mul_(scale * (0.5 + torch.rand(d_sae, 1, generator=g)))
        sae.W_enc.div_(scale)
        sae.b_dec.copy_(mean)
        sae.b_enc.copy_(torch.randn(d_sae, generator=g) - 0.5)
        sae.b_enc[torch.randperm(d_sae, generator=g)[:n_dead]] = -1e4
    return sae, (acts.half() if half else acts)


def _diagnose_metric(key: str, got: float, want: float, candidates: list[tuple[Any, str]]) -> None:
    _diagnose(got, [(None if v is None else float(v), f"{key}: {m}") for v, m in candidates])
    fail(f"{key} is {got:.5g}, expected {want:.5g}.")


@exercise("01", 5, "reconstruction_metrics", "Evaluate an SAE: scale, MSE, FVU, L0, dead latents")
def reconstruction_metrics(fn: Callable) -> str:
    import torch

    from utils import sae as sae_module, sae_metrics

    g = _generator()
    d_in = int(torch.randint(8, 40, (), generator=g))
    cases = [
        _metrics_problem(_generator(21), 300, 24, 64, 6, 8.0, 7),
        # float16 like the notebook's activation buffer, with norms whose square overflows float16 (65,504)
        _metrics_problem(_generator(22), 256, 48, 96, 8, 180.0, 10, half=True),
        _metrics_problem(g, int(torch.randint(100, 400, (), generator=g)), d_in, d_in * int(torch.randint(2, 5, (), generator=g)),
                         int(torch.randint(2, 9, (), generator=g)), float(torch.empty(()).uniform_(2, 30, generator=g)),
                         int(torch.randint(1, 6, (), generator=g))),
    ]
    half_hint = ("||x||^2 overflows float16, whose largest value is 65,504 (the activation buffer is float16): "
                 "convert first, x = acts.float().")
    for sae, acts in cases:
        half = acts.dtype == torch.float16
        try:
            out, changed = _call(fn, ("sae", "acts"), sae, acts)
        except RuntimeError as error:
            if half and ("dtype" in str(error) or "Half" in str(error)):
                fail(f"your code raised on float16 activations ({str(error).splitlines()[0]}): the SAE's weights are "
                     "float32; convert first, x = acts.float().")
            raise
        if not isinstance(out, dict):
            fail(f"returned {type(out).__name__}; return a dict with the keys {list(sae_metrics.METRIC_KEYS)}.")
        missing = [key for key in sae_metrics.METRIC_KEYS if key not in out]
        if missing:
            fail(f"the dict lacks {missing}; it needs exactly the keys {list(sae_metrics.METRIC_KEYS)}.")
        overflowed = [key for key in ("input_scale", "scaled_mse", "fvu") if _overflowed(out[key])]
        if half and overflowed:
            fail(f"returned {overflowed[0]} = {_number_or_value(out[overflowed[0]])} on float16 activations: {half_hint}")
        got = {key: as_number(out[key], f"reconstruction_metrics(...)[{key!r}]") for key in sae_metrics.METRIC_KEYS}
        want = sae_metrics.reconstruction_metrics(sae, acts)
        x = acts.float()
        with torch.no_grad():
            z = sae.encode(x)
            x_hat = sae.decode(z)
        d = x.shape[-1]
        s = want["input_scale"]
        mean_sq = x.pow(2).sum(-1).mean().item()
        if not close(got["input_scale"], s):
            _diagnose_metric("input_scale", got["input_scale"], s, [
                (math.sqrt(d) / x.norm(dim=-1).mean().item(),
                 "you used the mean norm, mean ||x||; the target is on the mean SQUARED norm: s = sqrt(d_in / mean ||x||^2)."),
                (1 / math.sqrt(mean_sq), "you scaled to unit mean squared norm; the target is d_in (so each coordinate "
                                         "has mean square about 1): s = sqrt(d_in / mean ||x||^2)."),
                (1 / s, "you returned 1/s: the factor that MULTIPLIES the activations is sqrt(d_in / mean ||x||^2)."),
                (s**2, "you forgot the square root: s = sqrt(d_in / mean ||x||^2)."),
                (math.sqrt(d / (x - x.mean(0)).pow(2).sum(-1).mean().item()),
                 "you centred the activations; the scale uses the raw ||x||^2 (the SAE's b_dec takes care of the "
                 "mean): s = sqrt(d_in / mean ||x||^2)."),
                (1 / x.std().item(), "you used the standard deviation, which centres the activations; use the raw mean "
                                     "squared norm: s = sqrt(d_in / mean ||x||^2)."),
            ])
        err = (x - x_hat).pow(2)
        dev = (x - x.mean(0)).pow(2)
        if not close(got["fvu"], want["fvu"]):
            with torch.no_grad():
                scaled_hat = sae.decode(sae.encode(s * x))
            _diagnose_metric("fvu", got["fvu"], want["fvu"], [
                (float(((s * x - scaled_hat).pow(2).sum() / (s * x - s * x.mean(0)).pow(2).sum())),
                 "you fed the SAE the SCALED activations s * x. This SAE reads raw activations (the scale was folded "
                 "into its weights after training): encode x itself; s only converts the error into scaled units."),
                (err.sum() / x.pow(2).sum(),
                 "you divided by sum ||x||^2: that is not centred. The variance is measured around the mean, and here "
                 "the mean carries most of ||x||^2. Divide by ((x - x.mean(0))**2).sum()."),
                ((err.sum(-1) / dev.sum(-1)).mean(),
                 "you averaged per-token ratios; FVU is a ratio of sums over ALL tokens: "
                 "((x - x_hat)**2).sum() / ((x - x.mean(0))**2).sum()."),
                ((err.sum(0) / dev.sum(0)).mean(),
                 "you averaged per-dimension ratios; FVU divides the total squared error by the total variance, so "
                 "high-variance dimensions weigh more."),
                (1 - want["fvu"], "you returned the fraction of variance EXPLAINED (1 - FVU)."),
                (err.sum(-1).mean() / x.var(0).sum(),
                 f"off by a factor (n - 1) / n = {(len(x) - 1) / len(x):.4f}: torch.var is unbiased by default. "
                 "Use ((x - x_hat)**2).sum() / ((x - x.mean(0))**2).sum()."),
            ])
        if not close(got["scaled_mse"], want["scaled_mse"]):
            mse = err.sum(-1).mean().item()
            _diagnose_metric("scaled_mse", got["scaled_mse"], want["scaled_mse"], [
                (mse, "you returned the MSE of the raw activations; measure it in scaled units: "
                      "mean ||s x - s x_hat||^2 = s**2 * mean ||x - x_hat||^2."),
                (s * mse, "you multiplied the squared error by s; scaling x and x_hat by s scales a SQUARED error by s**2."),
                (mse / s**2, "you divided by s**2; the scaled error is s**2 * mean ||x - x_hat||^2 (s < 1 shrinks it)."),
                (s**2 * err.mean().item(), "you averaged over every element (divided by d_in as well); sum over d_in, "
                                           "mean over tokens: s**2 * ((x - x_hat)**2).sum(-1).mean()."),
                (s**2 * err.sum().item(), "you summed over tokens; average over them: s**2 * ((x - x_hat)**2).sum(-1).mean()."),
                (s**2 * (x - x_hat).norm(dim=-1).mean().item(), "you used the error's norm, not its square."),
            ])
        active = z != 0
        fires = active.sum(0)
        if close(got["l0"], want["dead_fraction"]) and close(got["dead_fraction"], want["l0"]) and not close(got["l0"], want["l0"]):
            fail("you swapped l0 and dead_fraction.")
        if not close(got["l0"], want["l0"]):
            _diagnose_metric("l0", got["l0"], want["l0"], [
                (float(active.sum()), "you counted over the whole batch; L0 is the mean over tokens of the number "
                                      "of non-zero latents: (z != 0).sum(-1).float().mean()."),
                (float(active.float().mean()), "that is a fraction of latents; L0 is a COUNT per token: "
                                               "(z != 0).sum(-1).float().mean()."),
                (float(fires.float().mean()), "you counted firings per latent (over tokens) and averaged over latents; "
                                              "L0 counts each token's non-zero latents (dim=-1), averaged over tokens."),
                (float(sae.cfg.k), f"you returned k = {sae.cfg.k}; count the non-zero latents: when fewer than k "
                                   "pre-activations are positive, the ReLU zeroes some of the top k."),
            ])
        if not close(got["dead_fraction"], want["dead_fraction"]):
            n_dead = int((fires == 0).sum())
            candidates = [
                (float((z == 0).float().mean()),
                 "computed per token (the fraction of zeros). A latent is dead when it is zero on EVERY token: "
                 "((z != 0).sum(0) == 0).float().mean()."),
                (1 - want["dead_fraction"], "you returned the fraction of latents that fire (alive); dead = never fires."),
                (float(n_dead), f"you returned the number of dead latents ({n_dead}); return the fraction of the "
                                f"{z.shape[1]} latents."),
            ]
            for t in sorted({int(c) for c in fires.tolist() if c > 0})[:10]:
                candidates.append((float((fires <= t).float().mean()),
                                   f"you also counted latents that fire rarely (at most {_times(t)} here) as dead; "
                                   "dead means zero firings on these tokens: (z != 0).sum(0) == 0."))
            _diagnose_metric("dead_fraction", got["dead_fraction"], want["dead_fraction"], candidates)
        _no_in_place(changed)
    return (f"scale, scaled MSE, FVU, L0 and dead fraction match (float16 input included); last case: "
            f"FVU {want['fvu']:.3f}, L0 {want['l0']:.2f}, dead {want['dead_fraction']:.1%}")


# ---------------------------------------------------------------------------------------------
_SPLICE_TEXTS = ("The Golden Gate Bridge is a suspension bridge that spans the strait at the entrance to the bay.",
                 "My grandmother keeps a small garden behind her house, where she grows tomatoes and beans.")


def _splice_sae(seed: int) -> Any:
    """A random TopK SAE on the course hook with a large b_dec (so forgetting it shows)."""
    import torch

    from utils.sae import SAEConfig, SparseAutoencoder

    sae = SparseAutoencoder(SAEConfig(d_in=576, d_sae=1152, architecture="topk", k=32,
                                      hook_name="blocks.10.hook_resid_post", hook_layer=10), seed=seed)
    with torch.no_grad():
        sae.b_dec.copy_(30 * torch.nn.functional.normalize(torch.randn(576, generator=_generator(seed)), dim=0))
    return sae


def _log_probs(model: Any, tokens: Any, hook_name: str, hook: Callable | None) -> Any:
    """log softmax of the logits at every position, (batch, pos, vocab), float32 on the CPU."""
    import torch

    with torch.no_grad():
        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, hook)] if hook else [])
    return logits.float().log_softmax(-1).cpu()


@exercise("01", 6, "spliced_ce", "Splice the SAE in: CE loss recovered and KL")
def spliced_ce(fn: Callable) -> str:
    import torch

    from utils import sae as sae_module, sae_metrics
    from utils import tour

    model = course_model()
    rng = random.Random()
    random_text = "The " + " ".join(rng.sample(_WORDS, 5)) + " is"
    pair = tour.to_tokens(model, [_SPLICE_TEXTS[1], random_text])
    first = tour.to_tokens(model, _SPLICE_TEXTS[0])
    cases = [(_splice_sae(0), first), (_splice_sae(rng.randrange(2**31)), pair)]
    for sae, tokens in cases:
        sae.to(model.cfg.device)
        name = sae.cfg.hook_name
        try:
            out, changed = _call(fn, ("model", "sae", "tokens"), model, sae, tokens.clone(),
                                 shape_hint="The splice hook must return an activation of the shape it received, "
                                            "(batch, pos, d_model = 576): sae.decode(sae.encode(act)), not the latents.")
        except TypeError as error:
            if "positional argument" in str(error) or "hook" in str(error):
                fail(f"a hook raised TypeError ({error}). TransformerLens calls every hook as fn(act, hook=hook_point): "
                     "define it as `def hook(act, hook): ...`.")
            raise
        if not isinstance(out, dict):
            fail(f"returned {type(out).__name__}; return a dict with the keys {list(sae_metrics.SPLICE_KEYS)}.")
        missing = [key for key in sae_metrics.SPLICE_KEYS if key not in out]
        if missing:
            fail(f"the dict lacks {missing}; it needs the keys {list(sae_metrics.SPLICE_KEYS)}.")
        got = {key: as_number(out[key], f"spliced_ce(...)[{key!r}]") for key in sae_metrics.SPLICE_KEYS}
        want = sae_metrics.spliced_ce(model, sae, tokens)
        if all(close(got[key], want[key], atol=1e-4, rtol=1e-4) for key in sae_metrics.SPLICE_KEYS):
            _no_in_place(changed)
            continue

        def recon(act: Any) -> Any:
            return sae.decode(sae.encode(act)).to(act.dtype)

        variants: dict[str, Callable | None] = {
            "clean": None,
            "sae": lambda act, hook: recon(act),
            "zero": lambda act, hook: torch.zeros_like(act),
            "added": lambda act, hook: act + recon(act),
            "error": lambda act, hook: act - recon(act),
            "no_b_dec": lambda act, hook: recon(act) - sae.b_dec.to(act.dtype),
            "b_dec_only": lambda act, hook: sae.b_dec.to(act.dtype).expand_as(act).clone(),
            "mean": lambda act, hook: act.mean(1, keepdim=True).expand_as(act).clone(),
        }
        log_p = {key: _log_probs(model, tokens, name, hook) for key, hook in variants.items()}
        targets = tokens[:, 1:, None].cpu()

        def ce(lp: Any) -> float:
            return -lp[:, :-1].gather(-1, targets).mean().item()

        def check_ce(key: str, options: dict[str, str]) -> None:
            if close(got[key], want[key], atol=1e-4, rtol=1e-4):
                return
            lp = log_p[key.removeprefix("ce_")]
            candidates: list[tuple[Any, str]] = [
                (-lp.gather(-1, tokens[..., None].cpu()).mean().item(),
                 "the CE is not shifted: the logits at position t predict token t + 1, so compare "
                 "logits[:, :-1] with tokens[:, 1:]."),
                (-lp[:, :-1].gather(-1, targets).sum().item(),
                 "you summed the CE over positions; take the MEAN over the predicted positions (all but the last)."),
                (-lp[:, :-1].gather(-1, targets).sum(1).mean().item(),
                 "you summed the CE over positions (and averaged over sequences); take the mean over every "
                 "predicted position."),
                (-lp[:, :-1].exp().gather(-1, targets).mean().item(),
                 "you averaged probabilities; the CE is the mean of -log p(next token)."),
            ]
            candidates += [(ce(log_p[v]), m) for v, m in options.items()]
            _diagnose(got[key], candidates, atol=1e-4, rtol=1e-4)
            fail(f"{key} is {got[key]:.5g}, expected {want[key]:.5g}: the mean over positions t < pos - 1 of "
                 "-log_softmax(logits)[t, tokens[t + 1]].")

        check_ce("ce_clean", {"sae": "ce_clean has the SAE spliced in: run the clean model without hooks."})
        check_ce("ce_zero", {
            "b_dec_only": "you replaced the activation by sae.decode of zero latents, which is b_dec; zero-ablation "
                          "replaces it by zeros: torch.zeros_like(act).",
            "mean": "you mean-ablated (replaced the activation by its mean over positions); zero-ablation replaces it "
                    "by zeros: torch.zeros_like(act).",
            "clean": "ce_zero equals the clean CE: is the zero-ablation hook applied (and does it return the zeros)?",
        })
        check_ce("ce_sae", {
            "clean": "ce_sae equals the clean CE: your splice hook returns the original activation, so the model is "
                     "unchanged. A hook's return value replaces the activation: return sae.decode(sae.encode(act)).",
            "added": "you added the reconstruction to the activation; return the reconstruction alone: it REPLACES "
                     "the activation.",
            "error": "your hook returns the reconstruction error x - x_hat; return the reconstruction x_hat.",
            "no_b_dec": "b_dec is missing: z @ W_dec is not the whole reconstruction; use sae.decode(z), which adds b_dec.",
            "zero": "ce_sae equals the zero-ablated CE: the splice hook returns zeros.",
        })
        c, s, z = want["ce_clean"], want["ce_sae"], want["ce_zero"]
        if not close(got["ce_loss_recovered"], want["ce_loss_recovered"], atol=1e-4, rtol=1e-4):
            _diagnose(got["ce_loss_recovered"], [
                ((s - c) / (z - c), "inverted: you returned the fraction of the loss LOST, (ce_sae - ce_clean) / "
                                    "(ce_zero - ce_clean). Recovered = (ce_zero - ce_sae) / (ce_zero - ce_clean)."),
                ((z - s) / z, "wrong denominator: divide by the whole gap the SAE could close, from zero-ablation to "
                              "the clean model: (ce_zero - ce_sae) / (ce_zero - ce_clean)."),
                ((z - s) / (s - c), "wrong denominator: divide by ce_zero - ce_clean."),
                (s - c, "that is the difference ce_sae - ce_clean (delta CE, in nats), not a fraction: "
                        "(ce_zero - ce_sae) / (ce_zero - ce_clean)."),
                (c / s, "a ratio of losses is not the fraction recovered: (ce_zero - ce_sae) / (ce_zero - ce_clean)."),
            ], atol=1e-4, rtol=1e-4)
            fail(f"ce_loss_recovered is {got['ce_loss_recovered']:.5g}, expected {want['ce_loss_recovered']:.5g} = "
                 "(ce_zero - ce_sae) / (ce_zero - ce_clean).")
        lp_clean, lp_sae = log_p["clean"], log_p["sae"]
        kl_terms = (lp_clean.exp() * (lp_clean - lp_sae)).sum(-1)  # (batch, pos)
        reverse = (lp_sae.exp() * (lp_sae - lp_clean)).sum(-1)
        _diagnose(got["kl"], [
            (reverse[:, :-1].mean().item(),
             "kl is reversed: you computed KL(p_sae || p_clean). We measure KL(p_clean || p_sae) = sum_v p_clean "
             "(log p_clean - log p_sae): how surprised the spliced model is by the clean model's predictions. "
             "(torch.nn.functional.kl_div(input, target) computes KL(target || input): input = log p_sae.)"),
            (kl_terms.mean().item(), "kl: you averaged over every position; use the same positions as the CE, all but "
                                     "the last (logits[:, :-1])."),
            (kl_terms[:, :-1].sum().item(),
             "kl: you summed over positions (kl_div's reduction='sum', or 'batchmean' on one sequence, does that); "
             "take the mean over every predicted position."),
            (kl_terms[:, :-1].sum().item() / len(tokens),
             "kl: you summed over positions and averaged over sequences (kl_div's reduction='batchmean' on a 3-d "
             "tensor does that); take the mean over every predicted position."),
            ((lp_clean.exp() * (lp_clean - lp_sae))[:, :-1].mean().item(),
             "kl: you averaged over the vocabulary as well; SUM over the vocabulary, then average over positions."),
        ], atol=1e-4, rtol=1e-4)
        if not close(got["kl"], want["kl"], atol=1e-4, rtol=1e-4):
            fail(f"kl is {got['kl']:.5g}, expected {want['kl']:.5g} = the mean over predicted positions of "
                 "sum_v p_clean (log p_clean - log p_sae).")
        _no_in_place(changed)
    return "clean, spliced and zero-ablated CE, the fraction recovered and KL(p_clean || p_sae) match"
