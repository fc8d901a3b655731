"""Every chapter-01 check passes on the reference, fails on the stub, and fails on each catalogued
mistake (mutant) with the diagnostic message a learner needs."""

from __future__ import annotations

import pytest
import torch
from torch.nn.functional import normalize

from utils import sae, sae_metrics, toy
from utils import sae as sae_module
from utils.sae import topk_relu, unit_norm_rows
from remote_harness import remote_contract_tests
from check_contract import contract_tests
from utils.checks import CheckFailure, exercises
from utils.checks import ch01 as check

REFERENCE = {
    "recovery_score": toy.recovery_score,
    "relu_sae_loss": sae_module.relu_sae_loss,
    "topk_encode": sae.topk_encode,
    "training_step": sae_module.training_step,
    "reconstruction_metrics": sae_metrics.reconstruction_metrics,
    "spliced_ce": sae_metrics.spliced_ce,
}


# --- mutants: realistic wrong implementations -------------------------------------------------
# 01.1 recovery score
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


# 01.2 the April-2024 ReLU loss
def _relu_parts(x, W_enc, b_enc, W_dec, b_dec):
    z = torch.relu((x - b_dec) @ W_enc + b_enc)
    return z, z @ W_dec + b_dec


def relu_loss_plain_l1(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    z, x_hat = _relu_parts(x, W_enc, b_enc, W_dec, b_dec)
    return (x - x_hat).pow(2).sum(-1).mean() + l1_coefficient * z.abs().sum(-1).mean()


def relu_loss_unit_rows(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):  # the pre-April recipe, inside the loss
    W_dec = W_dec / W_dec.norm(dim=-1, keepdim=True)
    z, x_hat = _relu_parts(x, W_enc, b_enc, W_dec, b_dec)
    return (x - x_hat).pow(2).sum(-1).mean() + l1_coefficient * (z * W_dec.norm(dim=-1)).sum(-1).mean()


def relu_loss_column_norms(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    z, x_hat = _relu_parts(x, W_enc, b_enc, W_dec, b_dec)
    return (x - x_hat).pow(2).sum(-1).mean() + l1_coefficient * (z * W_dec.norm(dim=0)).sum(-1).mean()


def relu_loss_squared_norms(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    z, x_hat = _relu_parts(x, W_enc, b_enc, W_dec, b_dec)
    return (x - x_hat).pow(2).sum(-1).mean() + l1_coefficient * (z * W_dec.pow(2).sum(-1)).sum(-1).mean()


def relu_loss_summed_over_tokens(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    z, x_hat = _relu_parts(x, W_enc, b_enc, W_dec, b_dec)
    return (x - x_hat).pow(2).sum() + l1_coefficient * (z * W_dec.norm(dim=-1)).sum()


def relu_loss_element_mse(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    z, x_hat = _relu_parts(x, W_enc, b_enc, W_dec, b_dec)
    return torch.nn.functional.mse_loss(x_hat, x) + l1_coefficient * (z * W_dec.norm(dim=-1)).sum(-1).mean()


def relu_loss_no_b_dec_in_encoder(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    z = torch.relu(x @ W_enc + b_enc)
    x_hat = z @ W_dec + b_dec
    return (x - x_hat).pow(2).sum(-1).mean() + l1_coefficient * (z * W_dec.norm(dim=-1)).sum(-1).mean()


def relu_loss_no_b_dec_in_decoder(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    z = torch.relu((x - b_dec) @ W_enc + b_enc)
    return (x - z @ W_dec).pow(2).sum(-1).mean() + l1_coefficient * (z * W_dec.norm(dim=-1)).sum(-1).mean()


def relu_loss_relu_before_bias(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    z = torch.relu((x - b_dec) @ W_enc) + b_enc
    x_hat = z @ W_dec + b_dec
    return (x - x_hat).pow(2).sum(-1).mean() + l1_coefficient * (z * W_dec.norm(dim=-1)).sum(-1).mean()


def relu_loss_no_coefficient(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    z, x_hat = _relu_parts(x, W_enc, b_enc, W_dec, b_dec)
    return (x - x_hat).pow(2).sum(-1).mean() + (z * W_dec.norm(dim=-1)).sum(-1).mean()


def relu_loss_python_float(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    return sae_module.relu_sae_loss(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient).item()


def relu_loss_detached_norms(x, W_enc, b_enc, W_dec, b_dec, l1_coefficient):
    z, x_hat = _relu_parts(x, W_enc, b_enc, W_dec, b_dec)
    with torch.no_grad():
        norms = W_dec.norm(dim=-1)
    return (x - x_hat).pow(2).sum(-1).mean() + l1_coefficient * (z * norms).sum(-1).mean()


# 01.3 TopK encoder
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
    return topk_relu((x - b_dec) @ W_enc + b_enc, k + 1)


def topk_k_minus_one(x, W_enc, b_enc, b_dec, k):
    return topk_relu((x - b_dec) @ W_enc + b_enc, k - 1)


def topk_values_only(x, W_enc, b_enc, b_dec, k):
    return torch.relu(((x - b_dec) @ W_enc + b_enc).topk(k, dim=-1).values)


# 01.4 the training step. Each mutant is the reference with one realistic mistake.
def _forward(sae_, x, centre=True, decode_bias=True):
    z = topk_relu(((x - sae_.b_dec) if centre else x) @ sae_.W_enc + sae_.b_enc, sae_.cfg.k)
    return z @ sae_.W_dec + (sae_.b_dec if decode_bias else 0)


def _normalised(x, x_hat):
    return (x - x_hat).pow(2).sum(-1).mean() / (x - x.mean(0)).pow(2).sum(-1).mean()


def _project(sae_):
    with torch.no_grad():
        rows = sae_.W_dec / sae_.W_dec.norm(dim=-1, keepdim=True)
        sae_.W_dec.grad -= (sae_.W_dec.grad * rows).sum(-1, keepdim=True) * rows


def _renormalise(sae_):
    with torch.no_grad():
        sae_.W_dec /= sae_.W_dec.norm(dim=-1, keepdim=True)


def step_no_zero_grad(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    loss.backward()
    _project(sae_)
    optimiser.step()
    _renormalise(sae_)
    return loss.item()


def step_no_renormalisation(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    optimiser.zero_grad()
    loss.backward()
    _project(sae_)
    optimiser.step()
    return loss.item()


def step_renormalises_columns(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    optimiser.zero_grad()
    loss.backward()
    _project(sae_)
    optimiser.step()
    with torch.no_grad():
        sae_.W_dec /= sae_.W_dec.norm(dim=0, keepdim=True)
    return loss.item()


def step_renormalises_before_the_step(sae_, optimiser, x):
    _renormalise(sae_)
    loss = _normalised(x, _forward(sae_, x))
    optimiser.zero_grad()
    loss.backward()
    _project(sae_)
    optimiser.step()
    return loss.item()


def step_no_projection(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    _renormalise(sae_)
    return loss.item()


def step_projects_after_the_step(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    _project(sae_)
    _renormalise(sae_)
    return loss.item()


def _step_with(name, loss_fn, **forward):
    def step(sae_, optimiser, x):
        loss = loss_fn(x, _forward(sae_, x, **forward))
        optimiser.zero_grad()
        loss.backward()
        _project(sae_)
        optimiser.step()
        _renormalise(sae_)
        return loss.item()
    step.__name__ = name
    return step


step_no_b_dec_in_encoder = _step_with("step_no_b_dec_in_encoder", _normalised, centre=False)
step_no_b_dec_in_decoder = _step_with("step_no_b_dec_in_decoder", _normalised, decode_bias=False)
step_plain_mse = _step_with("step_plain_mse", lambda x, x_hat: (x - x_hat).pow(2).sum(-1).mean())
step_mse_loss_function = _step_with("step_mse_loss_function", torch.nn.functional.mse_loss)
step_uncentred_normalisation = _step_with("step_uncentred_normalisation",
                                          lambda x, x_hat: (x - x_hat).pow(2).sum(-1).mean() / x.pow(2).sum(-1).mean())


def step_relu_instead_of_topk(sae_, optimiser, x):
    x_hat = sae.relu_encode(x, sae_.W_enc, sae_.b_enc, sae_.b_dec) @ sae_.W_dec + sae_.b_dec
    loss = _normalised(x, x_hat)
    optimiser.zero_grad()
    loss.backward()
    _project(sae_)
    optimiser.step()
    _renormalise(sae_)
    return loss.item()


def step_before_backward(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    optimiser.zero_grad()
    optimiser.step()
    loss.backward()
    _renormalise(sae_)
    return loss.item()


def step_zero_grad_between_backward_and_step(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    loss.backward()
    _project(sae_)
    optimiser.zero_grad()
    optimiser.step()
    _renormalise(sae_)
    return loss.item()


def step_replaces_the_parameter(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    optimiser.zero_grad()
    loss.backward()
    _project(sae_)
    optimiser.step()
    sae_.W_dec = torch.nn.Parameter(unit_norm_rows(sae_.W_dec.detach()))
    return loss.item()


def step_assigns_a_tensor(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    sae_.W_dec = unit_norm_rows(sae_.W_dec)
    return loss.item()


def step_renormalises_with_autograd_on(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    optimiser.zero_grad()
    loss.backward()
    _project(sae_)
    optimiser.step()
    sae_.W_dec /= sae_.W_dec.norm(dim=-1, keepdim=True)
    return loss.item()


def step_projects_before_backward(sae_, optimiser, x):
    loss = _normalised(x, _forward(sae_, x))
    optimiser.zero_grad()
    _project(sae_)
    loss.backward()
    optimiser.step()
    _renormalise(sae_)
    return loss.item()


def step_returns_nothing(sae_, optimiser, x):
    sae_module.training_step(sae_, optimiser, x)


# 01.5 reconstruction metrics
def _metrics(sae_, acts, **override):
    out = sae_metrics.reconstruction_metrics(sae_, acts)
    x = acts.float()
    with torch.no_grad():
        z = sae_.encode(x)
        x_hat = sae_.decode(z)
    for key, fn in override.items():
        out[key] = fn(x, x_hat, z, out)
    return out


def metrics_scale_from_mean_norm(sae_, acts):
    return _metrics(sae_, acts, input_scale=lambda x, *_: (x.shape[-1] ** 0.5 / x.norm(dim=-1).mean()).item())


def metrics_scale_float16_overflow(sae_, acts):
    return _metrics(sae_, acts, input_scale=lambda x, *_: (acts.shape[-1] / acts.pow(2).sum(-1).mean()).sqrt().item())


def metrics_all_float16(sae_, acts):  # never converts: squares of float16 numbers overflow
    x = acts
    with torch.no_grad():
        z = sae_.encode(x)
        x_hat = sae_.decode(z)
    s = (x.shape[-1] / x.pow(2).sum(-1).mean()).sqrt()
    err = (x - x_hat).pow(2).sum(-1)
    return {"input_scale": s.item(), "scaled_mse": (s.float() ** 2 * err.mean()).item(),
            "fvu": (err.sum() / (x - x.mean(0)).pow(2).sum()).item(), "l0": (z != 0).sum(-1).float().mean().item(),
            "dead_fraction": ((z != 0).sum(0) == 0).float().mean().item()}


def metrics_fvu_not_centred(sae_, acts):
    return _metrics(sae_, acts, fvu=lambda x, x_hat, *_: ((x - x_hat).pow(2).sum() / x.pow(2).sum()).item())


def metrics_fvu_per_token(sae_, acts):
    return _metrics(sae_, acts, fvu=lambda x, x_hat, *_: ((x - x_hat).pow(2).sum(-1) / (x - x.mean(0)).pow(2).sum(-1)).mean().item())


def metrics_fvu_of_scaled_input(sae_, acts):
    def fvu(x, x_hat, z, out):
        xs = out["input_scale"] * x
        with torch.no_grad():
            xs_hat = sae_.decode(sae_.encode(xs))
        return ((xs - xs_hat).pow(2).sum() / (xs - xs.mean(0)).pow(2).sum()).item()
    return _metrics(sae_, acts, fvu=fvu)


def metrics_raw_mse(sae_, acts):
    return _metrics(sae_, acts, scaled_mse=lambda x, x_hat, *_: (x - x_hat).pow(2).sum(-1).mean().item())


def metrics_mse_times_scale(sae_, acts):
    return _metrics(sae_, acts, scaled_mse=lambda x, x_hat, z, out: out["input_scale"] * (x - x_hat).pow(2).sum(-1).mean().item())


def metrics_l0_summed(sae_, acts):
    return _metrics(sae_, acts, l0=lambda x, x_hat, z, out: (z != 0).sum().item())


def metrics_dead_per_token(sae_, acts):
    return _metrics(sae_, acts, dead_fraction=lambda x, x_hat, z, out: (z == 0).float().mean().item())


def metrics_alive_fraction(sae_, acts):
    return _metrics(sae_, acts, dead_fraction=lambda x, x_hat, z, out: ((z != 0).sum(0) > 0).float().mean().item())


def metrics_swapped(sae_, acts):
    out = sae_metrics.reconstruction_metrics(sae_, acts)
    out["l0"], out["dead_fraction"] = out["dead_fraction"], out["l0"]
    return out


def metrics_tuple(sae_, acts):
    return tuple(sae_metrics.reconstruction_metrics(sae_, acts).values())


def metrics_missing_key(sae_, acts):
    out = sae_metrics.reconstruction_metrics(sae_, acts)
    del out["scaled_mse"]
    return out


# 01.6 splicing: the model's loss with the SAE in
def _splice(model, sae_, tokens, hook_fn=None, zero_fn=None, ce=None, recovered=None, kl=None):
    name = sae_.cfg.hook_name
    hook_fn = hook_fn or (lambda act, hook: sae_.decode(sae_.encode(act)))
    zero_fn = zero_fn or (lambda act, hook: torch.zeros_like(act))
    ce = ce or (lambda logits: -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None]).mean().item())
    with torch.no_grad():
        clean = model(tokens)
        spliced = model.run_with_hooks(tokens, fwd_hooks=[(name, hook_fn)])
        zeroed = model.run_with_hooks(tokens, fwd_hooks=[(name, zero_fn)])
    c, s, z = ce(clean), ce(spliced), ce(zeroed)
    lp, lq = clean[:, :-1].log_softmax(-1), spliced[:, :-1].log_softmax(-1)
    default_kl = (lp.exp() * (lp - lq)).sum(-1).mean().item()
    return {"ce_clean": c, "ce_sae": s, "ce_zero": z,
            "ce_loss_recovered": recovered(c, s, z) if recovered else (z - s) / (z - c),
            "kl": kl(clean, spliced) if kl else default_kl}


def splice_no_op(model, sae_, tokens):
    return _splice(model, sae_, tokens, hook_fn=lambda act, hook: act)


def splice_adds_reconstruction(model, sae_, tokens):
    return _splice(model, sae_, tokens, hook_fn=lambda act, hook: act + sae_.decode(sae_.encode(act)))


def splice_returns_error(model, sae_, tokens):
    return _splice(model, sae_, tokens, hook_fn=lambda act, hook: act - sae_.decode(sae_.encode(act)))


def splice_forgets_b_dec(model, sae_, tokens):
    return _splice(model, sae_, tokens, hook_fn=lambda act, hook: sae_.encode(act) @ sae_.W_dec)


def splice_returns_latents(model, sae_, tokens):
    return _splice(model, sae_, tokens, hook_fn=lambda act, hook: sae_.encode(act))


def splice_wrong_signature(model, sae_, tokens):
    def hook(act):
        return sae_.decode(sae_.encode(act))
    return _splice(model, sae_, tokens, hook_fn=hook)


def splice_zero_is_b_dec(model, sae_, tokens):
    return _splice(model, sae_, tokens, zero_fn=lambda act, hook: sae_.decode(torch.zeros(*act.shape[:-1], sae_.cfg.d_sae)))


def splice_mean_ablation(model, sae_, tokens):
    return _splice(model, sae_, tokens, zero_fn=lambda act, hook: act.mean(1, keepdim=True).expand_as(act))


def splice_ce_not_shifted(model, sae_, tokens):
    return _splice(model, sae_, tokens, ce=lambda logits: torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), tokens.flatten()).item())


def splice_ce_summed(model, sae_, tokens):
    return _splice(model, sae_, tokens, ce=lambda logits: -logits[:, :-1].log_softmax(-1).gather(
        -1, tokens[:, 1:, None]).sum().item())


def splice_recovered_inverted(model, sae_, tokens):
    return _splice(model, sae_, tokens, recovered=lambda c, s, z: (s - c) / (z - c))


def splice_recovered_wrong_baseline(model, sae_, tokens):
    return _splice(model, sae_, tokens, recovered=lambda c, s, z: (z - s) / z)


def splice_kl_reversed(model, sae_, tokens):  # kl_div(input, target) is KL(target || input)
    return _splice(model, sae_, tokens, kl=lambda clean, spliced: torch.nn.functional.kl_div(
        clean[:, :-1].log_softmax(-1), spliced[:, :-1].log_softmax(-1), log_target=True,
        reduction="none").sum(-1).mean().item())


def splice_kl_every_position(model, sae_, tokens):
    return _splice(model, sae_, tokens, kl=lambda clean, spliced: torch.nn.functional.kl_div(
        spliced.log_softmax(-1), clean.log_softmax(-1), log_target=True, reduction="none").sum(-1).mean().item())


def splice_kl_batchmean(model, sae_, tokens):
    return _splice(model, sae_, tokens, kl=lambda clean, spliced: torch.nn.functional.kl_div(
        spliced[:, :-1].log_softmax(-1), clean[:, :-1].log_softmax(-1), log_target=True, reduction="batchmean").item())


def splice_returns_list(model, sae_, tokens):
    return list(sae_metrics.spliced_ce(model, sae_, tokens).values())


MUTANTS = {
    "recovery_score": [
        (recovery_abs_cosine, "absolute cosine"),
        (recovery_max_over_features, "for each decoder row"),
        (recovery_dot_products, "dot products"),
        (recovery_columns_normalised, "columns of W_dec"),
        (recovery_transposed, "one latent's direction per ROW"),
        (recovery_per_feature, "one per feature"),
    ],
    "relu_sae_loss": [
        (relu_loss_plain_l1, "the rows are FREE"),
        (relu_loss_unit_rows, "you normalised the decoder rows inside the loss"),
        (relu_loss_column_norms, "columns (dim=0)"),
        (relu_loss_squared_norms, "squared decoder norms"),
        (relu_loss_summed_over_tokens, "you summed over tokens"),
        (relu_loss_element_mse, "mean over every element"),
        (relu_loss_no_b_dec_in_encoder, "did not subtract b_dec"),
        (relu_loss_no_b_dec_in_decoder, "forgets b_dec"),
        (relu_loss_relu_before_bias, "ReLU before adding b_enc"),
        (relu_loss_no_coefficient, "did not multiply the penalty by l1_coefficient"),
        (relu_loss_python_float, "gradients flow"),
        (relu_loss_detached_norms, "decoder norms are detached"),
    ],
    "topk_encode": [
        (topk_before_bias, "before adding b_enc"),
        (topk_no_relu, "negative values were kept"),
        (topk_by_absolute_value, "absolute value"),
        (topk_k_plus_one, "k + 1"),
        (topk_k_minus_one, "k - 1"),
        (topk_values_only, "scatter"),
    ],
    "training_step": [
        (step_no_zero_grad, "gradients ACCUMULATE"),
        (step_no_renormalisation, "rows are not renormalised"),
        (step_renormalises_columns, "COLUMNS of W_dec"),
        (step_renormalises_before_the_step, "after optimiser.step() (not before it)"),
        (step_no_projection, "component of W_dec.grad along each row"),
        (step_projects_after_the_step, "component of W_dec.grad along each row"),
        (step_no_b_dec_in_encoder, "did not subtract b_dec"),
        (step_no_b_dec_in_decoder, "forgets b_dec"),
        (step_plain_mse, "plain MSE"),
        (step_mse_loss_function, "per-element MSE"),
        (step_uncentred_normalisation, "not centred"),
        (step_relu_instead_of_topk, "a ReLU SAE"),
        (step_before_backward, "parameters did not move"),
        (step_zero_grad_between_backward_and_step, "parameters did not move"),
        (step_replaces_the_parameter, "no longer updates it"),
        (step_assigns_a_tensor, "change it in place"),
        (step_renormalises_with_autograd_on, "torch.no_grad()"),
        (step_projects_before_backward, "W_dec.grad is None before loss.backward()"),
        (step_returns_nothing, "returned None"),
    ],
    "reconstruction_metrics": [
        (metrics_scale_from_mean_norm, "mean norm"),
        (metrics_scale_float16_overflow, "overflows float16"),
        (metrics_all_float16, "overflows float16"),
        (metrics_fvu_not_centred, "not centred"),
        (metrics_fvu_per_token, "per-token ratios"),
        (metrics_fvu_of_scaled_input, "SCALED activations"),
        (metrics_raw_mse, "MSE of the raw activations"),
        (metrics_mse_times_scale, "SQUARED error by s**2"),
        (metrics_l0_summed, "whole batch"),
        (metrics_dead_per_token, "per token"),
        (metrics_alive_fraction, "(alive)"),
        (metrics_swapped, "swapped"),
        (metrics_tuple, "return a dict"),
        (metrics_missing_key, "lacks ['scaled_mse']"),
    ],
    "spliced_ce": [
        (splice_no_op, "returns the original activation"),
        (splice_adds_reconstruction, "added the reconstruction"),
        (splice_returns_error, "reconstruction error"),
        (splice_forgets_b_dec, "b_dec is missing"),
        (splice_returns_latents, "not the latents"),
        (splice_wrong_signature, "def hook(act, hook)"),
        (splice_zero_is_b_dec, "which is b_dec"),
        (splice_mean_ablation, "mean-ablated"),
        (splice_ce_not_shifted, "not shifted"),
        (splice_ce_summed, "summed the CE"),
        (splice_recovered_inverted, "inverted"),
        (splice_recovered_wrong_baseline, "wrong denominator"),
        (splice_kl_reversed, "kl is reversed"),
        (splice_kl_every_position, "every position"),
        (splice_kl_batchmean, "batchmean"),
        (splice_returns_list, "return a dict"),
    ],
}

NEEDS_MODEL = {"spliced_ce"}


def test_every_exercise_has_mutants_and_a_check():
    names = [e.name for e in exercises("01")]
    assert names == ["recovery_score", "relu_sae_loss", "topk_encode", "training_step", "reconstruction_metrics", "spliced_ce"]
    assert names == list(MUTANTS) == list(REFERENCE)
    assert [e.number for e in exercises("01")] == list(range(1, 7))
    assert all(len(m) >= 2 for m in MUTANTS.values())


test_check_passes_on_reference, test_check_fails_on_stub, test_check_fails_on_mutant_with_diagnostic = (
    contract_tests(check, REFERENCE, MUTANTS, needs_model=NEEDS_MODEL)
)

# The same contract through a real kernel, as the grader runs it: the check here, the function there.
(student_kernel, test_check_passes_on_reference_remotely, test_check_fails_on_stub_remotely,
 test_check_fails_on_mutant_remotely) = remote_contract_tests("test_checks_ch01", check, MUTANTS, needs_model=NEEDS_MODEL)


def test_check_rejects_non_callables_and_crashing_code():
    with pytest.raises(CheckFailure, match="expected a function"):
        check.relu_sae_loss(42)

    def crashes(*args):
        raise KeyError("x_hat")

    with pytest.raises(CheckFailure, match="KeyError"):
        check.training_step(crashes)


def test_training_step_names_an_unsolved_helper():
    """A learner who wrote the step but not topk_encode is told so, not that 01.4 is unattempted."""

    def topk_stub(*args):
        raise NotImplementedError("Exercise 01.3 `topk_encode`: replace this line with your solution")

    def step(sae_, optimiser, x):
        topk_stub(x, sae_.W_enc, sae_.b_enc, sae_.b_dec, sae_.cfg.k)

    with pytest.raises(CheckFailure, match="calls `topk_encode`, which is still the unsolved stub"):
        check.training_step(step)


def test_training_step_variant_replay_matches_the_reference():
    """The check recognises mistakes by replaying the reference with one switch flipped: with no switch
    flipped the replay must be the reference itself, and every switch must change the run."""
    sgd = lambda params: torch.optim.SGD(params, lr=0.5)  # noqa: E731
    adam = lambda params: torch.optim.Adam(params, lr=1e-2, eps=1e-6)  # noqa: E731
    problem = check._step_problem(11, 12, 40, 4, 64, 3)
    for make in (sgd, adam):
        want = check._run_steps(sae_module.training_step, make, problem)
        check._same_run(want[0], want[1], check._run_steps(check._variant_step, make, problem)[:2])
    for flags, _ in check._STEP_VARIANTS:
        runs = [check._run_steps(lambda s, o, x: check._variant_step(s, o, x, **flags), make, problem) for make in (sgd, adam)]
        assert not all(check._same_run(r[0], r[1], check._run_steps(sae_module.training_step, make, problem)[:2])
                       for r, make in zip(runs, (sgd, adam))), flags


def test_training_step_fixed_cases_have_no_near_ties():
    """Rounding differences between a learner's forward pass and the reference cannot change the top k."""
    sgd = lambda params: torch.optim.SGD(params, lr=0.5)  # noqa: E731
    adam = lambda params: torch.optim.Adam(params, lr=1e-2, eps=1e-6)  # noqa: E731
    assert check._topk_margin(sgd, check._step_problem(11, 12, 40, 4, 64, 3)) > 1e-4
    assert check._topk_margin(adam, check._step_problem(12, 12, 40, 4, 64, 3)) > 1e-4
    assert check._topk_margin(adam, check._random_step_problem(adam)) > 1e-4


def test_checks_accept_equivalent_formulations(capsys):
    """Correct answers written differently pass: a 0-d tensor for a float, einsum, ReLU before TopK, the
    SAE's own methods inside the training step, zero_grad at the end, the loss returned as a tensor."""
    check.recovery_score(lambda W, f: torch.tensor(toy.recovery_score(W, f)))
    check.topk_encode(lambda x, W, be, bd, k: topk_relu(torch.relu((x - bd) @ W + be), k))

    def relu_loss_einsum(x, W_enc, b_enc, W_dec, b_dec, l1):
        z = torch.einsum("bi,is->bs", x - b_dec, W_enc).add(b_enc).clamp_min(0)
        recon = ((x - z @ W_dec - b_dec) ** 2).sum(dim=1).mean()
        return recon + l1 * torch.einsum("bs,s->b", z, torch.linalg.vector_norm(W_dec, dim=1)).mean()

    check.relu_sae_loss(relu_loss_einsum)

    def step_with_methods(sae_, optimiser, x):
        x_hat = sae_.decode(sae_.encode(x))
        loss = ((x - x_hat) ** 2).mean() / ((x - x.mean(0)) ** 2).mean()
        loss.backward()
        sae_.remove_parallel_gradient_()
        optimiser.step()
        optimiser.zero_grad()
        sae_.normalise_decoder_()
        return loss

    check.training_step(step_with_methods)

    def metrics_from_library(sae_, acts):
        from utils import activations, sae_metrics
        x = acts.float()
        with torch.no_grad():
            z = sae_.encode(x)
            x_hat = sae_.decode(z)
        s = activations.input_scale(acts)
        l0, dead = sae_metrics.sparsity_stats(z)
        return {"input_scale": torch.tensor(s), "scaled_mse": sae_metrics.mse(s * x, s * x_hat),
                "fvu": sae_metrics.fvu(x, x_hat), "l0": l0, "dead_fraction": dead}

    check.reconstruction_metrics(metrics_from_library)
    assert capsys.readouterr().out.count("passed") == 5


def test_spliced_ce_accepts_an_in_place_hook_and_library_helpers(model, capsys):
    """TransformerLens keeps a tensor edited in place when the hook returns None; next_token_ce and
    ce_loss_recovered from utils.sae_metrics are fine to use too."""
    from utils.sae_metrics import ce_loss_recovered, next_token_ce

    def spliced(model_, sae_, tokens):
        def hook(act, hook):
            act[:] = sae_.decode(sae_.encode(act))

        with torch.no_grad():
            clean = model_(tokens)
            sae_logits = model_.run_with_hooks(tokens, fwd_hooks=[(sae_.cfg.hook_name, hook)])
            zero = model_.run_with_hooks(tokens, fwd_hooks=[(sae_.cfg.hook_name, lambda a, hook: a * 0)])
        c, s, z = (next_token_ce(lg, tokens).mean().item() for lg in (clean, sae_logits, zero))
        kl = torch.nn.functional.kl_div(sae_logits[:, :-1].log_softmax(-1), clean[:, :-1].log_softmax(-1),
                                        log_target=True, reduction="none").sum(-1).mean()
        return {"ce_clean": c, "ce_sae": s, "ce_zero": z, "ce_loss_recovered": ce_loss_recovered(c, s, z), "kl": kl}

    check.spliced_ce(spliced)
    assert "passed" in capsys.readouterr().out
