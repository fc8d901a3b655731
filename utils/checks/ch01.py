"""Checks for chapter 01 — sparse autoencoders: toy superposition, the SAE's forward pass, training
details, and the metrics that say whether an SAE is any good.

Each check compares the learner's function with the reference in :mod:`utils.toy`, :mod:`utils.sae`,
:mod:`utils.activations` or :mod:`utils.sae_metrics` on fixed and randomised inputs and, on a
mismatch, tests the catalogued mistakes to say which one it probably is.
"""

from __future__ import annotations

import math
import numbers
import random
from typing import Any, Callable

from utils.checks import as_number, as_tensor, close, course_model, exercise, fail
from utils.checks import call_checked as _call
from utils.checks import diagnose as _diagnose
from utils.checks import generator as _generator
from utils.checks import no_in_place as _no_in_place

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


@exercise("01", 2, "relu_encode", "ReLU encoder")
def relu_encode(fn: Callable) -> str:
    import torch

    from utils import sae

    g = _generator()
    d_in = int(torch.randint(4, 20, (), generator=g))
    cases = [
        _encoder_inputs(_generator(2), 6, 10, 16),
        _encoder_inputs(g, int(torch.randint(3, 12, (), generator=g)), d_in, d_in + int(torch.randint(1, 30, (), generator=g))),
    ]
    for x, W_enc, b_enc, b_dec in cases:
        out, changed = _call(fn, ("x", "W_enc", "b_enc", "b_dec"), x, W_enc, b_enc, b_dec, shape_hint=_ENCODER_HINT)
        got = as_tensor(out, "relu_encode(x, W_enc, b_enc, b_dec)")
        want = sae.relu_encode(x, W_enc, b_enc, b_dec)
        if got.shape != want.shape:
            fail(f"returned shape {tuple(got.shape)}; expected (batch, d_sae) = {tuple(want.shape)}. {_ENCODER_HINT}")
        if close(got, want):
            _no_in_place(changed)
            continue
        pre = (x - b_dec) @ W_enc + b_enc
        relu = torch.relu
        _diagnose(got, [
            (relu((x - b_dec) @ W_enc) + b_enc,
             "you applied the ReLU before adding b_enc, so latents can be negative. The bias goes inside: "
             "ReLU((x - b_dec) @ W_enc + b_enc)."),
            (pre, "no ReLU: the latents must be non-negative. Return torch.relu((x - b_dec) @ W_enc + b_enc)."),
            (relu(x @ W_enc + b_enc),
             "you did not subtract b_dec: the encoder reads x - b_dec, the input centred on the point the "
             "decoder reconstructs around: ReLU((x - b_dec) @ W_enc + b_enc)."),
            (relu((x + b_dec) @ W_enc + b_enc), "you added b_dec to x; subtract it: (x - b_dec) @ W_enc."),
            (relu((x - b_dec) @ W_enc), "b_enc is missing: add it before the ReLU."),
        ])
        if got.min() < 0:
            fail("some latents are negative: the ReLU must be the last step, ReLU((x - b_dec) @ W_enc + b_enc).")
        fail(f"values differ from ReLU((x - b_dec) @ W_enc + b_enc) (max difference {float((got - want).abs().max()):.3g}).")
    return "ReLU((x - b_dec) @ W_enc + b_enc) matches on fixed and random inputs"


# ---------------------------------------------------------------------------------------------
def _rows_of_assorted_norms(g: Any, d_sae: int, d_in: int) -> Any:
    import torch

    W = torch.randn(d_sae, d_in, generator=g)
    return W / W.norm(dim=-1, keepdim=True) * (0.2 + 4.8 * torch.rand(d_sae, 1, generator=g))


@exercise("01", 3, "unit_norm_rows", "Unit-norm decoder rows")
def unit_norm_rows(fn: Callable) -> str:
    import torch

    from utils import sae

    g = _generator()
    d_in = int(torch.randint(3, 20, (), generator=g))
    cases = [_rows_of_assorted_norms(_generator(3), 12, 7),
             _rows_of_assorted_norms(g, d_in + int(torch.randint(1, 40, (), generator=g)), d_in)]
    hint = ("W_dec is (d_sae, d_in) and each ROW is one latent's direction: divide every row by its own norm, "
            "W / W.norm(dim=-1, keepdim=True) (keepdim=True keeps the norms as a (d_sae, 1) column that broadcasts "
            "across each row).")
    for W in cases:
        out, changed = _call(fn, ("W_dec",), W, shape_hint=hint)
        if out is None:
            if changed:
                fail("returned None after changing W_dec in place. The function must return the normalised "
                     "matrix: `return W_dec / W_dec.norm(dim=-1, keepdim=True)`.")
            fail("returned None: did you forget the `return` statement?")
        got = as_tensor(out, "unit_norm_rows(W_dec)")
        want = sae.unit_norm_rows(W)
        if got.shape != W.shape:
            fail(f"returned shape {tuple(got.shape)}; expected the shape of W_dec, {tuple(W.shape)}.")
        if close(got, want):
            _no_in_place(changed)
            continue
        norms = W.norm(dim=-1, keepdim=True)
        _diagnose(got, [
            (W / W.norm(dim=0, keepdim=True),
             "you normalised the columns: did you normalise along dim=0? " + hint),
            (W / norms**2,
             "you divided by the squared norm, so each row ends with norm 1/||w||. Divide by the norm itself "
             "(W.norm(dim=-1, keepdim=True) is already the square root of the sum of squares)."),
            (W / W.norm(),
             "you divided the whole matrix by one number (its Frobenius norm). " + hint),
            (W / W.abs().sum(-1, keepdim=True), "you used the L1 norm; use the L2 norm: W.norm(dim=-1, keepdim=True)."),
            (W / W.abs().amax(-1, keepdim=True), "you divided by each row's largest entry; use its L2 norm: "
                                                  "W.norm(dim=-1, keepdim=True)."),
        ])
        row_norms = got.norm(dim=-1)
        if torch.allclose(row_norms, torch.ones_like(row_norms), atol=1e-4):
            fail("every row has norm 1, but the directions changed: scale each row, do not rotate or reorder it.")
        fail(f"row norms of your result range from {float(row_norms.min()):.3f} to {float(row_norms.max()):.3f}; "
             "each should be 1. " + hint)
    return "every row scaled to unit L2 norm, directions unchanged"


# ---------------------------------------------------------------------------------------------
def _sparse_codes(g: Any, batch: int, d_sae: int, p: float = 0.4) -> Any:
    import torch

    return torch.relu(torch.randn(batch, d_sae, generator=g) + 0.5) * (torch.rand(batch, d_sae, generator=g) < p)


@exercise("01", 4, "l1_penalty", "Decoder-norm-weighted L1")
def l1_penalty(fn: Callable) -> str:
    import torch

    from utils import sae

    g = _generator()
    g2 = _generator(4)
    d_sae = int(torch.randint(5, 40, (), generator=g))
    cases = [  # the square case first, so column norms give a wrong value instead of a shape error
        (_sparse_codes(g2, 5, 8), _rows_of_assorted_norms(g2, 8, 8)),
        (_sparse_codes(g2, 6, 12), _rows_of_assorted_norms(g2, 12, 5)),
        (_sparse_codes(g, int(torch.randint(2, 20, (), generator=g)), d_sae),
         _rows_of_assorted_norms(g, d_sae, d_sae + int(torch.randint(1, 20, (), generator=g)))),
    ]
    hint = ("z is (batch, d_sae) and W_dec (d_sae, d_in): latent i's decoder direction is the ROW W_dec[i], "
            "so its norm is W_dec.norm(dim=-1), a (d_sae,) vector that broadcasts against z.")
    for z, W_dec in cases:
        z = z.requires_grad_(True)
        out, changed = _call(fn, ("z", "W_dec"), z, W_dec, shape_hint=hint)
        if isinstance(out, torch.Tensor) and out.numel() == len(z) > 1:
            fail(f"returned {len(z)} values, one per token; take their mean over the batch (a single number).")
        got = as_number(out, "l1_penalty(z, W_dec)")
        z = z.detach()
        want = float(sae.l1_penalty(z, W_dec))
        if close(got, want):
            if not isinstance(out, torch.Tensor) or not out.requires_grad:
                fail("right value, but not a tensor that gradients flow through: the penalty is added to the "
                     "loss and backpropagated. Return the torch expression itself (no .item(), float() or "
                     "torch.tensor(...)).")
            _no_in_place(changed)
            continue
        norms = W_dec.norm(dim=-1)
        column_norms = W_dec.norm(dim=0) if W_dec.shape[0] == W_dec.shape[1] else None
        _diagnose(got, [
            (z.sum(-1).mean().item(),
             "plain L1: you ignored the decoder norms. L1 on an unnormalised decoder lets the optimiser shrink "
             "z and grow W_dec (the reconstruction z @ W_dec is unchanged, the penalty drops). Weight each "
             "latent by its decoder row's norm: (z * W_dec.norm(dim=-1)).sum(-1).mean()."),
            ((z * norms).sum().item(),
             "you summed over tokens too; the penalty is the MEAN over tokens of sum_i z_i ||W_dec[i]||: "
             "(z * W_dec.norm(dim=-1)).sum(-1).mean()."),
            (None if column_norms is None else (z * column_norms).sum(-1).mean().item(),
             "you weighted by the norms of W_dec's columns (dim=0). " + hint),
            ((z * norms).mean().item(),
             "you averaged over latents as well; sum over latents (dim=-1), then average over tokens."),
            ((z * norms**2).sum(-1).mean().item(), "you weighted by the squared decoder norms; use the norms."),
            ((z**2 * norms).sum(-1).mean().item(), "you squared z: this is an L1 penalty, z_i itself (z >= 0)."),
        ])
        fail(f"got {got:.5g}, expected {want:.5g} = mean over tokens of sum_i z_i * ||W_dec[i]||_2.")
    return "mean over tokens of sum_i z_i ||W_dec[i]||, with gradients"


# ---------------------------------------------------------------------------------------------
def _scatter_relu(pre: Any, indices: Any, relu: bool = True) -> Any:
    import torch

    values = pre.gather(-1, indices)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values) if relu else values)


@exercise("01", 5, "topk_encode", "TopK encoder")
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
def _activations(g: Any, n: int, d: int, mean_norm: float) -> Any:
    import torch

    mean = torch.randn(d, generator=g)
    mean = mean / mean.norm() * mean_norm
    return mean + torch.randn(n, d, generator=g) * (0.5 + 2.5 * torch.rand(n, 1, generator=g))


@exercise("01", 6, "input_scale", "Input scaling")
def input_scale(fn: Callable) -> str:
    import torch

    from utils import activations

    g = _generator()
    # The buffer of residual-stream activations is float16. Typical tokens there have ||x|| ~ 140 and a few
    # (like the first token) a much larger norm, whose square overflows float16's largest value, 65,504.
    stored = _activations(_generator(7), 64, 576, 100.0)
    stored[:3] *= 4
    cases = [
        _activations(_generator(6), 200, 16, 8.0),
        stored.half(),
        _activations(g, int(torch.randint(50, 300, (), generator=g)), int(torch.randint(8, 65, (), generator=g)),
                     float(torch.empty(()).uniform_(0, 20, generator=g))),
    ]
    half_hint = ("||x||^2 overflows float16, whose largest value is 65,504 (the activation buffer is float16): "
                 "convert first, acts = acts.float().")
    for acts in cases:
        out, changed = _call(fn, ("acts",), acts)
        half = acts.dtype == torch.float16
        if half and _overflowed(out):
            fail(f"returned {_number_or_value(out)} on float16 activations: {half_hint}")
        got = as_number(out, "input_scale(acts)")
        want = activations.input_scale(acts)
        if close(got, want):
            _no_in_place(changed)
            continue
        x = acts.float()
        d = x.shape[-1]
        mean_sq = x.pow(2).sum(-1).mean().item()
        _diagnose(got, [
            (math.sqrt(d) / x.norm(dim=-1).mean().item(),
             "you used the mean norm, mean ||x||; the target is on the mean SQUARED norm: "
             "s = sqrt(d_in / mean ||x||^2)."),
            (1 / math.sqrt(mean_sq),
             "you scaled to unit mean squared norm; the target is d_in (so each coordinate has mean square "
             "about 1): s = sqrt(d_in / mean ||x||^2)."),
            (1 / want, "you returned 1/s: the factor that MULTIPLIES the activations is sqrt(d_in / mean ||x||^2)."),
            (want**2, "you forgot the square root: s = sqrt(d_in / mean ||x||^2)."),
            (math.sqrt(d / (x - x.mean(0)).pow(2).sum(-1).mean().item()),
             "you centred the activations (subtracted their mean); the scale uses the raw ||x||^2 (the SAE's "
             "b_dec takes care of the mean): s = sqrt(d_in / mean ||x||^2)."),
            (1 / x.std().item(), "you used the standard deviation, which centres the activations; use the raw "
                                 "mean squared norm: s = sqrt(d_in / mean ||x||^2)."),
        ])
        fail(f"got {got:.5g}, expected {want:.5g} = sqrt(d_in / mean ||x||^2) for acts of shape {tuple(acts.shape)}"
             + (f" in float16: {half_hint}" if half else "."))
    return "mean ||s x||^2 = d_in, float16 input included"


def _number_or_value(out: Any) -> Any:
    import torch

    return out.detach().float().cpu().item() if isinstance(out, torch.Tensor) and out.numel() == 1 else out


def _overflowed(out: Any) -> bool:
    """Whether ``out`` is a number that is 0, infinite or NaN (what float16 overflow leads to)."""
    value = _number_or_value(out)
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and (value == 0 or not math.isfinite(value))


# ---------------------------------------------------------------------------------------------
def _reconstruction_pair(g: Any, n: int, d: int) -> tuple[Any, Any]:
    """x with a large mean and unequal per-dimension spreads; x_hat with errors of other spreads."""
    import torch

    mean = torch.randn(d, generator=g)
    x = 10 * mean / mean.norm() + torch.randn(n, d, generator=g) * (0.3 + 2.7 * torch.rand(d, generator=g))
    return x, x + torch.randn(n, d, generator=g) * (0.1 + torch.rand(d, generator=g))


@exercise("01", 7, "fvu", "Fraction of variance unexplained")
def fvu(fn: Callable) -> str:
    import torch

    from utils import sae_metrics

    g = _generator()
    x, x_hat = _reconstruction_pair(_generator(8), 128, 12)
    cases = [
        (x, x_hat),
        (x, x.mean(0).expand_as(x).clone()),  # predicting the mean explains nothing: FVU = 1
        _reconstruction_pair(g, int(torch.randint(20, 200, (), generator=g)), int(torch.randint(4, 40, (), generator=g))),
    ]
    for x, x_hat in cases:
        out, changed = _call(fn, ("x", "x_hat"), x, x_hat)
        if isinstance(out, torch.Tensor) and out.numel() > 1:
            per = {len(x): "token", x.shape[1]: "dimension"}.get(out.numel(), "")
            fail(f"returned a tensor of shape {tuple(out.shape)}" + (f", one value per {per}" if per else "")
                 + "; FVU is one number, a ratio of two sums over all tokens and dimensions.")
        got = as_number(out, "fvu(x, x_hat)")
        want = float(sae_metrics.fvu(x, x_hat))
        if close(got, want):
            _no_in_place(changed)
            continue
        err = (x - x_hat).pow(2)
        dev = (x - x.mean(0)).pow(2)
        _diagnose(got, [
            (err.sum().item() / x.pow(2).sum().item(),
             "you divided by sum ||x||^2: that is not centred. The variance is measured around the mean, and "
             "here the mean carries most of ||x||^2. Divide by ((x - x.mean(0))**2).sum()."),
            ((err.sum(-1) / dev.sum(-1)).mean().item(),
             "you averaged per-token ratios; FVU is a ratio of sums: sum of squared errors over ALL tokens "
             "divided by the summed squared deviations from the mean."),
            ((err.sum(-1) / x.pow(2).sum(-1)).mean().item(),
             "you averaged per-token ratios ||x - x_hat||^2 / ||x||^2; FVU is one ratio of sums, centred: "
             "((x - x_hat)**2).sum() / ((x - x.mean(0))**2).sum()."),
            ((err.sum(0) / dev.sum(0)).mean().item(),
             "you averaged per-dimension ratios; FVU divides the total squared error by the total variance, "
             "so high-variance dimensions weigh more: ((x - x_hat)**2).sum() / ((x - x.mean(0))**2).sum()."),
            (err.sum(-1).mean().item(), "you returned the MSE; divide the squared error by the total variance "
                                       "around the mean: ((x - x_hat)**2).sum() / ((x - x.mean(0))**2).sum()."),
            (err.mean().item(), "you returned the MSE (per element); FVU divides the squared error by the "
                                "variance around the mean: ((x - x_hat)**2).sum() / ((x - x.mean(0))**2).sum()."),
            (1 - want, "you returned the fraction of variance EXPLAINED (1 - FVU)."),
            (err.sum(-1).mean().item() / x.var(0).sum().item(),
             f"off by a factor (n - 1) / n = {(len(x) - 1) / len(x):.4f}: torch.var is unbiased by default. "
             "Use ((x - x_hat)**2).sum() / ((x - x.mean(0))**2).sum()."),
        ])
        fail(f"got {got:.5g}, expected {want:.5g} = sum ||x - x_hat||^2 / sum ||x - mean(x)||^2.")
    return "sum ||x - x_hat||^2 / sum ||x - mean(x)||^2; predicting the mean gives 1"


# ---------------------------------------------------------------------------------------------
def _times(t: int) -> str:
    return "once" if t == 1 else "twice" if t == 2 else f"{t} times"


def _latent_codes(g: Any, n: int, d_sae: int, n_dead: int, n_rare: int) -> Any:
    """Sparse non-negative codes where ``n_dead`` latents never fire and ``n_rare`` fire once."""
    import torch

    z = torch.relu(torch.randn(n, d_sae, generator=g)) * (torch.rand(n, d_sae, generator=g) < 0.3)
    z[:, :n_dead + n_rare] = 0
    rare = torch.arange(n_dead, n_dead + n_rare)
    z[torch.randint(0, n, (n_rare,), generator=g), rare] = 0.5 + torch.rand(n_rare, generator=g)
    always = n_dead + n_rare  # one latent fires on every token, so no other column is accidentally dead
    z[:, always] = 0.1 + torch.rand(n, generator=g)
    return z[:, torch.randperm(d_sae, generator=g)]


@exercise("01", 8, "sparsity_stats", "L0 and dead latents")
def sparsity_stats(fn: Callable) -> str:
    import torch

    from utils import sae_metrics

    g = _generator()
    d_sae = int(torch.randint(16, 64, (), generator=g))
    cases = [
        _latent_codes(_generator(9), 400, 32, 5, 3),
        _latent_codes(g, int(torch.randint(200, 500, (), generator=g)), d_sae,
                      int(torch.randint(1, d_sae // 3, (), generator=g)), int(torch.randint(1, 4, (), generator=g))),
    ]
    for z in cases:
        out, changed = _call(fn, ("z",), z)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            fail(f"returned {type(out).__name__}; return a pair (l0, dead_fraction): `return l0, dead`.")
        l0 = as_number(out[0], "sparsity_stats(z)[0] (the L0)")
        dead = as_number(out[1], "sparsity_stats(z)[1] (the dead fraction)")
        want_l0, want_dead = sae_metrics.sparsity_stats(z)
        if close(l0, want_dead) and close(dead, want_l0) and not close(l0, want_l0):
            fail("you returned (dead_fraction, l0); the order is (l0, dead_fraction).")
        fires = (z != 0).sum(0)  # (d_sae,) firings per latent
        if not close(l0, want_l0):
            _diagnose(l0, [
                (float((z != 0).sum()), "your L0 is the total count over the whole batch; L0 is the mean over "
                                        "tokens of the number of non-zero latents: (z != 0).sum(-1).float().mean()."),
                (float((z != 0).float().mean()), "your L0 is a fraction of latents; L0 is a COUNT per token: "
                                                 "(z != 0).sum(-1).float().mean()."),
                (float(fires.float().mean()), "you counted firings per latent (over tokens) and averaged over "
                                              "latents; L0 counts each token's non-zero latents (dim=-1) and "
                                              "averages over tokens."),
            ])
            fail(f"L0 is {l0:.4g}, expected {want_l0:.4g}: the mean over tokens of the number of non-zero latents.")
        if not close(dead, want_dead):
            n_dead = int((fires == 0).sum())
            candidates = [
                (float((z == 0).float().mean()),
                 "your dead fraction is computed per token (the fraction of zeros). A latent is dead when it is "
                 "zero on EVERY token of the batch: ((z != 0).sum(0) == 0).float().mean()."),
                (1 - want_dead, "you returned the fraction of latents that fire (alive); dead = never fires: "
                                "((z != 0).sum(0) == 0).float().mean()."),
                (float(n_dead), f"you returned the number of dead latents ({n_dead}); return the fraction of the "
                                f"{z.shape[1]} latents."),
            ]
            for t in sorted({int(c) for c in fires.tolist() if c > 0})[:10]:
                candidates.append((float((fires <= t).float().mean()),
                                   f"you also counted latents that fire rarely (at most {_times(t)} here) as dead; "
                                   "dead means zero firings on these tokens: (z != 0).sum(0) == 0."))
            _diagnose(dead, candidates)
            fail(f"dead fraction is {dead:.4g}, expected {want_dead:.4g}: the fraction of latents that are zero "
                 "on every token.")
        _no_in_place(changed)
    return f"L0 {want_l0:.2f}, dead fraction {want_dead:.3f} on the last batch"


# ---------------------------------------------------------------------------------------------
@exercise("01", 9, "splice_hook", "Splicing the SAE into the model")
def splice_hook(fn: Callable) -> str:
    import torch

    from utils import tour
    from utils.sae import SAEConfig, SparseAutoencoder

    rng = random.Random()
    cfg = SAEConfig(d_in=576, d_sae=1152, architecture="topk", k=32,
                    hook_name="blocks.10.hook_resid_post", hook_layer=10)
    sae = SparseAutoencoder(cfg, seed=rng.randrange(2**31))
    with torch.no_grad():
        sae.b_dec.copy_(30 * torch.nn.functional.normalize(torch.randn(576, generator=_generator()), dim=0))
    hook_fn = fn(sae)
    if hook_fn is None:
        fail("splice_hook(sae) returned None: return the inner hook function (`return hook`).")
    if not callable(hook_fn):
        fail(f"splice_hook(sae) returned {type(hook_fn).__name__}; return a hook function fn(act, hook).")

    model = course_model()
    sae.to(model.cfg.device)  # in place: the learner's hook holds this very module
    name = cfg.hook_name
    tokens = tour.to_tokens(model, "The " + " ".join(rng.sample(_WORDS, 3)) + " is")
    stash: dict[str, Any] = {}

    def reference(act: Any, hook: Any) -> Any:
        stash["act"] = act.detach().clone()
        return sae.decode(sae.encode(act)).to(act.dtype)

    with torch.no_grad():
        want_logits = model.run_with_hooks(tokens, fwd_hooks=[(name, reference)])
        act = stash["act"]
        recon = sae.decode(sae.encode(act)).float().cpu()
        probe = act.clone()
        try:
            out = hook_fn(probe, hook=model.hook_dict[name])
        except TypeError as error:
            fail(f"calling your hook as fn(act, hook=hook_point) raised TypeError: {error}. TransformerLens calls "
                 "every hook that way: define it as `def hook(act, hook): ...`.")
    if out is None and not torch.equal(probe, act):
        out = probe  # edited in place: TransformerLens then keeps the edited tensor
    act = act.float().cpu()
    if out is None:
        fail("your hook returned None, so TransformerLens keeps the original activation and the SAE is never "
             "used. Return the reconstruction: `return sae.decode(sae.encode(act))`.")
    got = as_tensor(out, "your hook")
    if got.shape[-1] == cfg.d_sae:
        fail(f"your hook returned shape {tuple(got.shape)}: the latents sae.encode(act), not an activation. "
             "The next block expects (batch, pos, d_model = 576): decode them, sae.decode(sae.encode(act)).")
    if got.shape != act.shape:
        fail(f"your hook returned shape {tuple(got.shape)}; it must return the activation's shape "
             f"{tuple(act.shape)} (batch, pos, d_model).")
    if not close(got, recon, atol=1e-4):
        _diagnose(got, [
            (act, "your hook returns the original activation, so the model's output is unchanged. A hook's "
                  "return value replaces the activation: return sae.decode(sae.encode(act))."),
            (act + recon, "you added the reconstruction to the activation; return the reconstruction alone: "
                          "it REPLACES the activation."),
            (act - recon, "you returned the reconstruction error x - x_hat; return the reconstruction x_hat."),
            (recon - act, "you returned the reconstruction error x_hat - x; return the reconstruction x_hat."),
            (recon - sae.b_dec.detach().float().cpu(), "b_dec is missing: z @ W_dec is not the whole reconstruction; use "
                                         "sae.decode(z), which adds b_dec."),
        ], atol=1e-4)
        fail(f"your hook returned values that differ from sae.decode(sae.encode(act)) (max difference "
             f"{float((got - recon).abs().max()):.3g}).")
    with torch.no_grad():
        got_logits = model.run_with_hooks(tokens, fwd_hooks=[(name, hook_fn)])
    if not close(got_logits.detach().float().cpu(), want_logits.float().cpu(), atol=1e-3, rtol=1e-3):
        fail(f"your hook returns the right reconstruction when called directly, but with it spliced in at {name} "
             "the model's logits differ from the reference hook's. Does it depend on state that changes "
             "between calls?")
    return "the model runs with the SAE's reconstruction in place of blocks.10.hook_resid_post"


# ---------------------------------------------------------------------------------------------
@exercise("01", 10, "ce_loss_recovered", "CE loss recovered")
def ce_loss_recovered(fn: Callable) -> str:
    from utils import sae_metrics

    rng = random.Random()
    clean = rng.uniform(1.5, 3.5)
    cases = [(2.0, 2.5, 10.5), (3.1, 3.1, 9.0), (2.2, 9.0, 9.0),
             (clean, clean + rng.uniform(0.05, 2.0), clean + rng.uniform(4.0, 10.0))]
    for ce_clean, ce_sae, ce_zero in cases:
        got = as_number(fn(ce_clean, ce_sae, ce_zero), f"ce_loss_recovered({ce_clean:.3g}, {ce_sae:.3g}, {ce_zero:.3g})")
        want = sae_metrics.ce_loss_recovered(ce_clean, ce_sae, ce_zero)
        if close(got, want, atol=1e-6):
            continue
        _diagnose(got, [
            ((ce_sae - ce_clean) / (ce_zero - ce_clean),
             "inverted: you returned the fraction of the loss LOST, (ce_sae - ce_clean) / (ce_zero - ce_clean). "
             "Recovered = (ce_zero - ce_sae) / (ce_zero - ce_clean): 1 when the SAE is as good as the clean model."),
            ((ce_zero - ce_sae) / ce_zero,
             "wrong denominator: divide by the whole gap the SAE could close, from zero-ablation to the clean "
             "model: (ce_zero - ce_sae) / (ce_zero - ce_clean)."),
            ((ce_zero - ce_sae) / (ce_sae - ce_clean) if ce_sae != ce_clean else None,
             "wrong denominator: divide by ce_zero - ce_clean, the gap between zero-ablation and the clean model."),
            (ce_sae - ce_clean,
             "that is the difference ce_sae - ce_clean (delta CE, in nats), not a fraction: "
             "(ce_zero - ce_sae) / (ce_zero - ce_clean)."),
            (ce_clean - ce_sae, "that is a difference of losses, not a fraction: (ce_zero - ce_sae) / (ce_zero - ce_clean)."),
            (ce_clean / ce_sae, "a ratio of losses is not the fraction recovered: (ce_zero - ce_sae) / (ce_zero - ce_clean)."),
        ], atol=1e-6)
        fail(f"got {got:.4g}, expected {want:.4g} for ce_clean={ce_clean:.3g}, ce_sae={ce_sae:.3g}, "
             f"ce_zero={ce_zero:.3g}: (ce_zero - ce_sae) / (ce_zero - ce_clean).")
    return "1 = as good as the clean model, 0 = as bad as zero-ablation"
