"""Every chapter-01 check passes on the reference, fails on the stub, and fails on each catalogued
mistake (mutant) with the diagnostic message a learner needs."""

from __future__ import annotations

import pytest
import torch
from torch.nn.functional import normalize

from utils import activations, sae, sae_metrics, toy
from check_contract import contract_tests
from utils.checks import CheckFailure, exercises
from utils.checks import ch01 as check

REFERENCE = {
    "recovery_score": toy.recovery_score,
    "relu_encode": sae.relu_encode,
    "unit_norm_rows": sae.unit_norm_rows,
    "l1_penalty": sae.l1_penalty,
    "topk_encode": sae.topk_encode,
    "input_scale": activations.input_scale,
    "fvu": sae_metrics.fvu,
    "sparsity_stats": sae_metrics.sparsity_stats,
    "splice_hook": sae_metrics.splice_hook,
    "ce_loss_recovered": sae_metrics.ce_loss_recovered,
}


# --- mutants: realistic wrong implementations -------------------------------------------------
def _cosines(W_dec, features):
    return normalize(features, dim=-1) @ normalize(W_dec, dim=-1).T  # (n_features, d_sae)


def recovery_abs_cosine(W_dec, features):
    return _cosines(W_dec, features).abs().max(dim=-1).values.mean().item()


def recovery_max_over_features(W_dec, features):
    return _cosines(W_dec, features).max(dim=0).values.mean().item()


def recovery_dot_products(W_dec, features):
    return (features @ W_dec.T).max(dim=-1).values.mean().item()


def recovery_columns_normalised(W_dec, features):
    W = W_dec / W_dec.norm(dim=0, keepdim=True)
    return (normalize(features, dim=-1) @ W.T).max(dim=-1).values.mean().item()


def recovery_transposed(W_dec, features):  # written for W_dec of shape (d_model, d_sae)
    return (normalize(features, dim=-1) @ normalize(W_dec, dim=0)).max(dim=-1).values.mean().item()


def recovery_per_feature(W_dec, features):
    return _cosines(W_dec, features).max(dim=-1).values


def relu_no_b_dec(x, W_enc, b_enc, b_dec):
    return torch.relu(x @ W_enc + b_enc)


def relu_before_bias(x, W_enc, b_enc, b_dec):
    return torch.relu((x - b_dec) @ W_enc) + b_enc


def relu_missing(x, W_enc, b_enc, b_dec):
    return (x - b_dec) @ W_enc + b_enc


def relu_transposed(x, W_enc, b_enc, b_dec):
    return torch.relu((x - b_dec) @ W_enc.T + b_enc)


def relu_in_place(x, W_enc, b_enc, b_dec):
    x -= b_dec
    return torch.relu(x @ W_enc + b_enc)


def unit_columns(W_dec):
    return W_dec / W_dec.norm(dim=0, keepdim=True)


def unit_squared_norm(W_dec):
    return W_dec / (W_dec**2).sum(dim=-1, keepdim=True)


def unit_in_place_none(W_dec):
    W_dec /= W_dec.norm(dim=-1, keepdim=True)


def unit_global_norm(W_dec):
    return W_dec / W_dec.norm()


def unit_no_keepdim(W_dec):
    return W_dec / W_dec.norm(dim=-1)


def unit_in_place_returned(W_dec):
    return W_dec.div_(W_dec.norm(dim=-1, keepdim=True))


def l1_plain(z, W_dec):
    return z.abs().sum(-1).mean()


def l1_sum_over_tokens(z, W_dec):
    return (z * W_dec.norm(dim=-1)).sum()


def l1_column_norms(z, W_dec):
    return (z * W_dec.norm(dim=0)).sum(-1).mean()


def l1_mean_over_everything(z, W_dec):
    return (z * W_dec.norm(dim=-1)).mean()


def l1_python_float(z, W_dec):
    return (z * W_dec.norm(dim=-1)).sum(-1).mean().item()


def _topk_scatter(pre, indices, relu=True):
    values = pre.gather(-1, indices)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values) if relu else values)


def topk_before_bias(x, W_enc, b_enc, b_dec, k):
    pre = (x - b_dec) @ W_enc
    indices = pre.topk(k, dim=-1).indices
    return _topk_scatter(pre + b_enc, indices)


def topk_no_relu(x, W_enc, b_enc, b_dec, k):
    pre = (x - b_dec) @ W_enc + b_enc
    return _topk_scatter(pre, pre.topk(k, dim=-1).indices, relu=False)


def topk_by_absolute_value(x, W_enc, b_enc, b_dec, k):
    pre = (x - b_dec) @ W_enc + b_enc
    return _topk_scatter(pre, pre.abs().topk(k, dim=-1).indices)


def topk_k_plus_one(x, W_enc, b_enc, b_dec, k):
    return sae.topk_relu((x - b_dec) @ W_enc + b_enc, k + 1)


def topk_k_minus_one(x, W_enc, b_enc, b_dec, k):
    return sae.topk_relu((x - b_dec) @ W_enc + b_enc, k - 1)


def topk_values_only(x, W_enc, b_enc, b_dec, k):
    return torch.relu(((x - b_dec) @ W_enc + b_enc).topk(k, dim=-1).values)


def scale_mean_norm(acts):
    acts = acts.float()
    return float(acts.shape[-1] ** 0.5 / acts.norm(dim=-1).mean())


def scale_unit_norm(acts):
    return float(1 / acts.float().pow(2).sum(-1).mean().sqrt())


def scale_inverse(acts):
    acts = acts.float()
    return float((acts.pow(2).sum(-1).mean() / acts.shape[-1]).sqrt())


def scale_float16_overflow(acts):
    return float((acts.shape[-1] / acts.pow(2).sum(-1).mean()).sqrt())


def scale_centred(acts):
    acts = acts.float()
    return float((acts.shape[-1] / (acts - acts.mean(0)).pow(2).sum(-1).mean()).sqrt())


def fvu_not_centred(x, x_hat):
    return (x - x_hat).pow(2).sum() / x.pow(2).sum()


def fvu_per_token_ratio(x, x_hat):
    return ((x - x_hat).pow(2).sum(-1) / (x - x.mean(0)).pow(2).sum(-1)).mean()


def fvu_per_dimension_ratio(x, x_hat):
    return ((x - x_hat).pow(2).sum(0) / (x - x.mean(0)).pow(2).sum(0)).mean()


def fvu_mse(x, x_hat):
    return (x - x_hat).pow(2).sum(-1).mean()


def fvu_unbiased_variance(x, x_hat):
    return (x - x_hat).pow(2).sum(-1).mean() / x.var(0).sum()


def sparsity_l0_summed(z):
    return float((z != 0).sum()), float(((z != 0).sum(0) == 0).float().mean())


def sparsity_dead_per_token(z):
    return float((z != 0).sum(-1).float().mean()), float((z == 0).float().mean())


def sparsity_alive_fraction(z):
    return float((z != 0).sum(-1).float().mean()), float(((z != 0).sum(0) > 0).float().mean())


def sparsity_rare_counted_dead(z):
    fire_rate = (z != 0).float().mean(0)
    return float((z != 0).sum(-1).float().mean()), float((fire_rate < 1e-2).float().mean())


def sparsity_swapped(z):
    l0, dead = sae_metrics.sparsity_stats(z)
    return dead, l0


def splice_no_op(sae_):
    def hook(act, hook):
        return act
    return hook


def splice_returns_latents(sae_):
    def hook(act, hook):
        return sae_.encode(act)
    return hook


def splice_adds_reconstruction(sae_):
    def hook(act, hook):
        return act + sae_.decode(sae_.encode(act))
    return hook


def splice_returns_error(sae_):
    def hook(act, hook):
        return act - sae_.decode(sae_.encode(act))
    return hook


def splice_forgets_b_dec(sae_):
    def hook(act, hook):
        return sae_.encode(act) @ sae_.W_dec
    return hook


def splice_wrong_signature(sae_):
    def hook(act):
        return sae_.decode(sae_.encode(act))
    return hook


def ce_inverted(ce_clean, ce_sae, ce_zero):
    return (ce_sae - ce_clean) / (ce_zero - ce_clean)


def ce_wrong_baseline(ce_clean, ce_sae, ce_zero):
    return (ce_zero - ce_sae) / ce_zero


def ce_difference(ce_clean, ce_sae, ce_zero):
    return ce_sae - ce_clean


MUTANTS = {
    "recovery_score": [
        (recovery_abs_cosine, "absolute cosine"),
        (recovery_max_over_features, "for each decoder row"),
        (recovery_dot_products, "dot products"),
        (recovery_columns_normalised, "columns of W_dec"),
        (recovery_transposed, "one latent's direction per ROW"),
        (recovery_per_feature, "one per feature"),
    ],
    "relu_encode": [
        (relu_no_b_dec, "did not subtract b_dec"),
        (relu_before_bias, "ReLU before adding b_enc"),
        (relu_missing, "no ReLU"),
        (relu_transposed, "W_enc (d_in, d_sae)"),
        (relu_in_place, "in place"),
    ],
    "unit_norm_rows": [
        (unit_columns, "did you normalise along dim=0?"),
        (unit_squared_norm, "squared norm"),
        (unit_in_place_none, "returned None after changing W_dec in place"),
        (unit_global_norm, "one number"),
        (unit_no_keepdim, "keepdim=True"),
        (unit_in_place_returned, "in place"),
    ],
    "l1_penalty": [
        (l1_plain, "lets the optimiser shrink z and grow W_dec"),
        (l1_sum_over_tokens, "summed over tokens"),
        (l1_column_norms, "columns"),
        (l1_mean_over_everything, "averaged over latents"),
        (l1_python_float, "gradients"),
    ],
    "topk_encode": [
        (topk_before_bias, "before adding b_enc"),
        (topk_no_relu, "negative values were kept"),
        (topk_by_absolute_value, "absolute value"),
        (topk_k_plus_one, "k + 1"),
        (topk_k_minus_one, "k - 1"),
        (topk_values_only, "scatter"),
    ],
    "input_scale": [
        (scale_mean_norm, "mean norm"),
        (scale_unit_norm, "unit mean squared norm"),
        (scale_inverse, "1/s"),
        (scale_float16_overflow, "overflows float16"),
        (scale_centred, "centred"),
    ],
    "fvu": [
        (fvu_not_centred, "not centred"),
        (fvu_per_token_ratio, "per-token ratios"),
        (fvu_per_dimension_ratio, "per-dimension ratios"),
        (fvu_mse, "MSE"),
        (fvu_unbiased_variance, "unbiased"),
    ],
    "sparsity_stats": [
        (sparsity_l0_summed, "whole batch"),
        (sparsity_dead_per_token, "per token"),
        (sparsity_alive_fraction, "(alive)"),
        (sparsity_rare_counted_dead, "fire rarely"),
        (sparsity_swapped, "order is (l0, dead_fraction)"),
    ],
    "splice_hook": [
        (splice_no_op, "original activation"),
        (splice_returns_latents, "the latents sae.encode(act)"),
        (splice_adds_reconstruction, "added the reconstruction"),
        (splice_returns_error, "reconstruction error"),
        (splice_forgets_b_dec, "b_dec is missing"),
        (splice_wrong_signature, "def hook(act, hook)"),
    ],
    "ce_loss_recovered": [
        (ce_inverted, "inverted"),
        (ce_wrong_baseline, "wrong denominator"),
        (ce_difference, "delta CE"),
    ],
}

NEEDS_MODEL = {"splice_hook"}


def test_every_exercise_has_mutants_and_a_check():
    names = [e.name for e in exercises("01")]
    assert names == [
        "recovery_score", "relu_encode", "unit_norm_rows", "l1_penalty", "topk_encode",
        "input_scale", "fvu", "sparsity_stats", "splice_hook", "ce_loss_recovered",
    ]
    assert names == list(MUTANTS) == list(REFERENCE)
    assert [e.number for e in exercises("01")] == list(range(1, 11))
    assert all(len(m) >= 2 for m in MUTANTS.values())


test_check_passes_on_reference, test_check_fails_on_stub, test_check_fails_on_mutant_with_diagnostic = (
    contract_tests(check, REFERENCE, MUTANTS, needs_model=NEEDS_MODEL)
)


def test_check_rejects_non_callables_and_crashing_code():
    with pytest.raises(CheckFailure, match="expected a function"):
        check.fvu(42)

    def crashes(x, x_hat):
        raise KeyError("x_hat")

    with pytest.raises(CheckFailure, match="KeyError"):
        check.fvu(crashes)


def test_checks_accept_equivalent_formulations(capsys):
    """Correct answers written differently (a 0-d tensor for a float, einsum, ReLU before TopK) pass."""
    assert check.recovery_score(lambda W, f: torch.tensor(toy.recovery_score(W, f)))
    assert check.relu_encode(lambda x, W, be, bd: torch.einsum("bi,is->bs", x - bd, W).add(be).clamp_min(0))
    assert check.topk_encode(lambda x, W, be, bd, k: sae.topk_relu(torch.relu((x - bd) @ W + be), k))
    assert check.input_scale(lambda a: torch.rsqrt(a.float().pow(2).mean()).item())
    assert check.l1_penalty(lambda z, W: torch.einsum("bs,s->b", z, W.norm(dim=-1)).mean())
    assert check.sparsity_stats(lambda z: [(z > 0).sum(1).double().mean(), (z.sum(0) == 0).float().mean()])
    assert capsys.readouterr().out.count("passed") == 6


def test_splice_hook_accepts_an_in_place_edit(model, capsys):
    """TransformerLens keeps a tensor edited in place when the hook returns None: that is correct too."""

    def splice_in_place(sae_):
        def hook(act, hook):
            act[:] = sae_.decode(sae_.encode(act))
        return hook

    assert check.splice_hook(splice_in_place)
    assert "passed" in capsys.readouterr().out
