"""How good is an SAE? Reconstruction, sparsity, dead latents, and the model's loss with the SAE spliced in.

For activations ``x`` (n, d) and reconstructions ``x_hat``:

* MSE  = mean over tokens of ``||x - x_hat||^2``;
* FVU  = ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2`` — the fraction of variance unexplained,
  measured around the mean because the mean vector carries about half the squared norm here;
* L0   = mean number of non-zero latents per token;
* dead = fraction of latents that never fire on the evaluation tokens.

Splicing: replace ``hook_name``'s activation by ``sae(x)`` and run the model to the end.

* CE-loss recovered = ``(CE_zero - CE_sae) / (CE_zero - CE_clean)`` where CE_zero replaces the
  activation by zeros (zero-ablation). It is lenient here (zero-ablation costs ~8.5 nats), so we
  always also report
* delta CE = ``CE_sae - CE_clean`` (nats per token) and KL = mean over tokens of
  ``KL(p_clean || p_sae)`` (nats).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

from utils.memory import release

METRIC_KEYS = ("input_scale", "scaled_mse", "fvu", "l0", "dead_fraction")  # what reconstruction_metrics returns
SPLICE_KEYS = ("ce_clean", "ce_sae", "ce_zero", "ce_loss_recovered", "kl")  # what spliced_ce returns

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.sae import SparseAutoencoder


def mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of the squared L2 error. x, x_hat: (n, d)."""
    return (x - x_hat).pow(2).sum(-1).mean()


def fvu(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Fraction of variance unexplained, with the variance taken around the mean of ``x``."""
    return (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()


def l0(z: torch.Tensor) -> torch.Tensor:
    """Mean number of non-zero latents per token. z: (n, d_sae)."""
    return (z != 0).float().sum(-1).mean()


def dead_fraction(fire_counts: torch.Tensor) -> float:
    """Fraction of latents with zero firings. fire_counts: (d_sae,) counts over the eval tokens."""
    return float((fire_counts == 0).float().mean())


def sparsity_stats(z: torch.Tensor) -> tuple[float, float]:
    """(L0, dead fraction) of latents z (n_tokens, d_sae): mean non-zeros per token, and the
    fraction of latents that are zero on every token."""
    fires = (z != 0).sum(0)
    return float(l0(z)), dead_fraction(fires)


def splice_hook(sae: "SparseAutoencoder"):
    """A TransformerLens hook that replaces the activation by the SAE's reconstruction ``sae(x)``."""

    def hook(act: torch.Tensor, hook) -> torch.Tensor:  # act: (batch, pos, d_in)
        return sae.decode(sae.encode(act)).to(act.dtype)

    return hook


def ce_loss_recovered(ce_clean: float, ce_sae: float, ce_zero: float) -> float:
    """``(CE_zero - CE_sae) / (CE_zero - CE_clean)``: 1 = as good as the clean model, 0 = as bad as zero-ablation."""
    return (ce_zero - ce_sae) / (ce_zero - ce_clean)


def next_token_ce(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Per-position cross-entropy of predicting ``tokens[:, 1:]`` from ``logits[:, :-1]``: (batch, pos-1)."""
    logprobs = logits[:, :-1].log_softmax(-1)
    return -logprobs.gather(-1, tokens[:, 1:, None])[..., 0]


@torch.no_grad()
def evaluate_sae(
    model: "TransformerBridge", sae: "SparseAutoencoder", token_batches: Iterable[torch.Tensor], progress: bool = False
) -> dict[str, float]:
    """Every metric above on the given token batches (use held-out text). Batches should be small
    (e.g. 8 x 128): each runs three full forward passes with 49k-wide logits."""
    from tqdm.auto import tqdm

    name = sae.cfg.hook_name
    totals = {"ce_clean": 0.0, "ce_sae": 0.0, "ce_zero": 0.0, "kl": 0.0, "sq_err": 0.0, "l0": 0.0}
    fires = torch.zeros(sae.cfg.d_sae)
    acts_sum = None
    acts_sq = 0.0
    n_pred = 0
    n_tok = 0
    for tokens in tqdm(token_batches, desc="evaluating SAE", disable=not progress):
        stash: dict[str, torch.Tensor] = {}

        def splice(act: torch.Tensor, hook) -> torch.Tensor:  # act: (batch, pos, d_in)
            z = sae.encode(act)
            recon = sae.decode(z)
            stash.update(x=act.reshape(-1, act.shape[-1]), x_hat=recon.reshape(-1, act.shape[-1]), z=z.reshape(-1, z.shape[-1]))
            return recon

        def zero(act: torch.Tensor, hook) -> torch.Tensor:
            return torch.zeros_like(act)

        clean = model(tokens)
        spliced = model.run_with_hooks(tokens, fwd_hooks=[(name, splice)])
        zeroed = model.run_with_hooks(tokens, fwd_hooks=[(name, zero)])
        totals["ce_clean"] += float(next_token_ce(clean, tokens).sum())
        totals["ce_sae"] += float(next_token_ce(spliced, tokens).sum())
        totals["ce_zero"] += float(next_token_ce(zeroed, tokens).sum())
        logp_clean, logp_sae = clean.log_softmax(-1), spliced.log_softmax(-1)
        totals["kl"] += float((logp_clean.exp() * (logp_clean - logp_sae)).sum(-1)[:, :-1].sum())
        n_pred += tokens.shape[0] * (tokens.shape[1] - 1)
        x, x_hat, z = stash["x"].float(), stash["x_hat"].float(), stash["z"]
        totals["sq_err"] += float((x - x_hat).pow(2).sum())
        totals["l0"] += float((z != 0).sum())
        fires += (z != 0).sum(0).float().cpu()
        acts_sum = x.sum(0) if acts_sum is None else acts_sum + x.sum(0)
        acts_sq += float(x.pow(2).sum())
        n_tok += len(x)
        del clean, spliced, zeroed, logp_clean, logp_sae
        release()
    if n_tok == 0:
        raise ValueError("no token batches to evaluate on")
    # sum ||x - mean||^2 = sum ||x||^2 - n ||mean||^2
    variance = acts_sq - float((acts_sum / n_tok).pow(2).sum()) * n_tok
    ce = {k: totals[k] / n_pred for k in ("ce_clean", "ce_sae", "ce_zero")}
    return {
        **ce,
        "ce_loss_recovered": ce_loss_recovered(ce["ce_clean"], ce["ce_sae"], ce["ce_zero"]),
        "delta_ce": ce["ce_sae"] - ce["ce_clean"],
        "kl": totals["kl"] / n_pred,
        "mse": totals["sq_err"] / n_tok,
        "fvu": totals["sq_err"] / variance,
        "l0": totals["l0"] / n_tok,
        "dead_fraction": dead_fraction(fires),
        "tokens": n_tok,
    }


@torch.no_grad()
def reconstruction_metrics(sae: "SparseAutoencoder", acts: torch.Tensor) -> dict[str, float]:
    """How well ``sae`` (which reads raw activations) reconstructs ``acts`` (n, d_in), maybe float16:

    * ``input_scale``   s = sqrt(d_in / mean_t ||x_t||^2)  (float32 first: ||x||^2 overflows float16);
    * ``scaled_mse``    mean_t ||s x_t - s x_hat_t||^2, the error in the units where mean ||s x||^2 = d_in;
    * ``fvu``           sum_t ||x_t - x_hat_t||^2 / sum_t ||x_t - mean(x)||^2;
    * ``l0``            mean over tokens of the number of non-zero latents;
    * ``dead_fraction`` fraction of latents that are zero on every token.
    """
    from utils.activations import input_scale

    x = acts.float()
    z = sae.encode(x)
    x_hat = sae.decode(z)
    scale = input_scale(x)
    l0_value, dead = sparsity_stats(z)
    return {"input_scale": scale, "scaled_mse": float(scale**2 * mse(x, x_hat)), "fvu": float(fvu(x, x_hat)),
            "l0": l0_value, "dead_fraction": dead}


@torch.no_grad()
def spliced_ce(model: "TransformerBridge", sae: "SparseAutoencoder", tokens: torch.Tensor) -> dict[str, float]:
    """The model's next-token loss on ``tokens`` (batch, pos) three ways, and what the SAE costs:

    * ``ce_clean``, ``ce_sae``, ``ce_zero``: mean over the predicted positions (all but the last) of
      ``-log p(tokens[:, t+1] | logits[:, t])``, for the clean model, with ``sae.cfg.hook_name``'s
      activation replaced by ``sae.decode(sae.encode(act))``, and replaced by zeros;
    * ``ce_loss_recovered`` = (ce_zero - ce_sae) / (ce_zero - ce_clean);
    * ``kl``: mean over the same positions of KL(p_clean || p_sae) = sum_v p_clean (log p_clean - log p_sae).
    """
    name = sae.cfg.hook_name

    def zero(act: torch.Tensor, hook) -> torch.Tensor:
        return torch.zeros_like(act)

    targets = tokens[:, 1:, None]
    log_p = {}
    for key, hooks in (("clean", []), ("sae", [(name, splice_hook(sae))]), ("zero", [(name, zero)])):
        log_p[key] = model.run_with_hooks(tokens, fwd_hooks=hooks)[:, :-1].float().log_softmax(-1)  # (batch, pos-1, vocab)
    ce = {key: -lp.gather(-1, targets).mean().item() for key, lp in log_p.items()}
    kl = (log_p["clean"].exp() * (log_p["clean"] - log_p["sae"])).sum(-1).mean().item()
    return {
        "ce_clean": ce["clean"], "ce_sae": ce["sae"], "ce_zero": ce["zero"],
        "ce_loss_recovered": ce_loss_recovered(ce["clean"], ce["sae"], ce["zero"]),
        "kl": kl,
    }
