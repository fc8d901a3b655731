"""Sparse autoencoders: the ReLU + L1 and TopK architectures, and a SAELens-compatible file format.

An SAE rewrites an activation ``x`` (d_in) as a sparse, non-negative combination of ``d_sae`` learned
directions (the rows of ``W_dec``), plus a bias:

    pre   = (x - b_dec) @ W_enc + b_enc                 # (..., d_sae)   pre-activations
    z     = ReLU(pre)                  [relu]            # sparse because of the L1 penalty
    z     = ReLU(TopK_k(pre))          [topk]            # exactly <= k non-zero latents
    x_hat = z @ W_dec + b_dec                            # (..., d_in)    reconstruction

ReLU SAEs train on ``||x - x_hat||^2 + l1 * sum_i z_i ||W_dec[i]||``. Two recipes stop the optimiser
from shrinking ``z`` and growing ``W_dec`` to dodge the penalty: keep every decoder row at unit norm
(renormalise after each step, after removing the gradient component parallel to each row) — then the
norm weight is exactly 1 — or leave the rows free and rely on the norm weight (Anthropic's April 2024
update; :func:`relu_sae_loss`). :func:`utils.train_sae.train_sae` does the former. TopK SAEs (Gao et al., 2024) need no penalty: sparsity is
the k. Latents that stop firing ("dead") are revived by the AuxK loss: the top ``k_aux`` *dead*
latents are asked to reconstruct the residual error ``x - x_hat``.

**Nested (Matryoshka) TopK SAEs.** With ``nested_widths = (m_1 < m_2 < ... < d_sae)`` the first ``m``
latents form an SAE of their own: ``TopK_k`` over ``pre[:, :m]`` and ``x_hat_m = z_m @ W_dec[:m] + b_dec``.
Training minimises the mean over the widths of each prefix's normalised reconstruction error,

    loss = (1/|M|) sum_{m in M} ||x - x_hat_m||^2 / ||x - mean(x)||^2,

so early latents must reconstruct well on their own (broad features) while later ones add detail
(specific features): one training run gives a family of SAEs of increasing width that share
latents, and :meth:`SparseAutoencoder.prefix` cuts out any member. This is the nested-dictionary idea
of Matryoshka SAEs (Bussmann et al., 2025; Nabeshima, 2024) with one change that keeps every prefix a
*plain* TopK SAE: each prefix picks its own top k (instead of all prefixes sharing one BatchTopK
selection), so every width has exactly L0 = k and loads anywhere a TopK SAE does.

Saved format (SAELens-compatible): a folder with ``cfg.json`` (d_in, d_sae, architecture, k,
hook_name, hook_layer, ...) and ``sae_weights.safetensors`` holding ``W_enc (d_in, d_sae)``,
``W_dec (d_sae, d_in)``, ``b_enc (d_sae)``, ``b_dec (d_in)`` in the units of the raw activations.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

ARCHITECTURES = ("relu", "topk")
COURSE_SAE_DIR = Path(__file__).resolve().parent / "data" / "course_sae"
MATRYOSHKA_SAE_DIR = Path(__file__).resolve().parent / "data" / "matryoshka_sae"


@dataclass
class SAEConfig:
    d_in: int = 576  # width of the activation the SAE reads (SmolLM2-135M's d_model)
    d_sae: int = 4608  # number of latents; 8x d_in is a common small expansion
    architecture: str = "topk"  # "topk" (the course SAE) or "relu" (ReLU + L1)
    k: int | None = 32  # TopK: non-zero latents per token
    l1_coefficient: float = 0.0  # ReLU: weight of the decoder-norm-weighted L1 penalty
    hook_name: str = "blocks.10.hook_resid_post"  # where in the model the activations come from
    hook_layer: int = 10
    model_name: str = "SmolLM2-135M-Instruct"
    extra: dict[str, Any] = field(default_factory=dict)  # provenance: corpus, tokens, metrics...
    # Matryoshka: increasing prefix widths that are trained to be SAEs of their own (the last is d_sae);
    # None for a plain SAE. Stored in cfg.json; SAELens ignores it and sees the full-width TopK SAE.
    nested_widths: list[int] | None = None

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}")
        if self.architecture == "topk" and not (self.k and 0 < self.k <= self.d_sae):
            raise ValueError(f"a TopK SAE needs 0 < k <= d_sae, got k={self.k}")
        if self.d_in < 1 or self.d_sae < 1:
            raise ValueError("d_in and d_sae must be positive")
        if self.nested_widths is not None:
            widths = list(self.nested_widths)
            if self.architecture != "topk":
                raise ValueError("nested widths need a TopK SAE (architecture='topk')")
            if widths != sorted(set(widths)) or widths[-1] != self.d_sae or widths[0] < (self.k or 1):
                raise ValueError(f"nested_widths must increase strictly, start at >= k and end at d_sae={self.d_sae}; got {widths}")
            self.nested_widths = widths


class SparseAutoencoder(nn.Module):
    """See the module docstring for the math. Parameters:

    W_enc (d_in, d_sae), b_enc (d_sae,), W_dec (d_sae, d_in) with unit-norm rows, b_dec (d_in,).
    """

    def __init__(self, cfg: SAEConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        g = torch.Generator().manual_seed(seed)
        W_dec = torch.randn(cfg.d_sae, cfg.d_in, generator=g)
        W_dec /= W_dec.norm(dim=-1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)  # (d_sae, d_in)
        self.W_enc = nn.Parameter(W_dec.T.clone())  # (d_in, d_sae): the decoder's transpose at init
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))

    # --- the forward pass --------------------------------------------------------------------
    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) -> (..., d_sae): ``(x - b_dec) @ W_enc + b_enc``."""
        return pre_activations(x, self.W_enc, self.b_enc, self.b_dec)

    def activation(self, pre: torch.Tensor) -> torch.Tensor:
        """ReLU, or ReLU of the top k pre-activations (the rest set to zero)."""
        if self.cfg.architecture == "relu":
            return torch.relu(pre)
        return topk_relu(pre, self.cfg.k)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) -> sparse latents z (..., d_sae)."""
        return self.activation(self.pre_activations(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(..., d_sae) -> (..., d_in): ``z @ W_dec + b_dec``."""
        return z @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def prefix(self, width: int) -> "SparseAutoencoder":
        """The SAE made of the first ``width`` latents (a copy): ``W_enc[:, :width]``, ``b_enc[:width]``,
        ``W_dec[:width]``, the same ``b_dec`` and k. For a Matryoshka SAE, ``width`` should be one of
        ``cfg.nested_widths``; those prefixes were trained to work alone."""
        if not 0 < width <= self.cfg.d_sae:
            raise ValueError(f"width must be in 1..{self.cfg.d_sae}, got {width}")
        if self.cfg.architecture == "topk" and width < (self.cfg.k or 1):
            raise ValueError(f"a TopK prefix needs width >= k = {self.cfg.k}, got {width}")
        widths = [w for w in (self.cfg.nested_widths or []) if w <= width] or None
        cfg = SAEConfig(**{**asdict(self.cfg), "d_sae": width, "nested_widths": widths, "extra": {"prefix_of": self.cfg.d_sae}})
        small = SparseAutoencoder(cfg)
        with torch.no_grad():
            small.W_enc.copy_(self.W_enc[:, :width])
            small.b_enc.copy_(self.b_enc[:width])
            small.W_dec.copy_(self.W_dec[:width])
            small.b_dec.copy_(self.b_dec)
        return small.to(self.W_dec.device).train(self.training)

    # --- constraints --------------------------------------------------------------------------
    @torch.no_grad()
    def normalise_decoder_(self) -> None:
        """Rescale every decoder row (one latent's direction) to unit L2 norm, in place."""
        self.W_dec.copy_(unit_norm_rows(self.W_dec))

    @torch.no_grad()
    def remove_parallel_gradient_(self) -> None:
        """Project out of ``W_dec.grad`` the component along each row, so a step cannot grow the rows."""
        if self.W_dec.grad is None:
            return
        rows = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        self.W_dec.grad -= (self.W_dec.grad * rows).sum(-1, keepdim=True) * rows

    @torch.no_grad()
    def fold_input_scale_(self, scale: float) -> None:
        """Turn an SAE trained on ``scale * x`` into the same SAE on raw ``x`` (identical latents):
        ``W_enc *= scale``, ``W_dec /= scale``, ``b_dec /= scale``."""
        self.W_enc *= scale
        self.W_dec /= scale
        self.b_dec /= scale

    # --- saving and loading -----------------------------------------------------------------------
    def save(self, folder: str | Path, dtype: torch.dtype = torch.float32) -> Path:
        """Write ``cfg.json`` and ``sae_weights.safetensors`` (SAELens layout) into ``folder``;
        ``dtype=torch.float16`` halves the file (the course SAE ships that way)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cfg = asdict(self.cfg)
        # Keys SAELens reads, next to ours.
        cfg.update({
            "dtype": str(dtype).removeprefix("torch."), "device": "cpu", "apply_b_dec_to_input": True, "normalize_activations": "none",
            "activation_fn": "topk" if self.cfg.architecture == "topk" else "relu",
            "activation_fn_kwargs": {"k": self.cfg.k} if self.cfg.architecture == "topk" else {},
        })
        (folder / "cfg.json").write_text(json.dumps(cfg, indent=2) + "\n")
        tensors = {name: p.detach().to(dtype).contiguous().cpu() for name, p in self.named_parameters()}
        save_file(tensors, folder / "sae_weights.safetensors")
        return folder

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> "SparseAutoencoder":
        """Load a folder written by :meth:`save` (or by SAELens, for ReLU/TopK SAEs)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / "cfg.json").is_file() or not (folder / "sae_weights.safetensors").is_file():
            raise FileNotFoundError(f"{folder} must contain cfg.json and sae_weights.safetensors")
        raw = json.loads((folder / "cfg.json").read_text())
        known = {f for f in SAEConfig.__dataclass_fields__}
        cfg_kwargs = {k: v for k, v in raw.items() if k in known}
        if "architecture" in raw and raw["architecture"] == "standard":
            cfg_kwargs["architecture"] = "relu"
        if raw.get("activation_fn") == "topk":
            cfg_kwargs["architecture"] = "topk"
            cfg_kwargs["k"] = raw.get("k") or raw.get("activation_fn_kwargs", {}).get("k")
        sae = cls(SAEConfig(**cfg_kwargs))
        state = load_file(folder / "sae_weights.safetensors")
        missing = {"W_enc", "W_dec", "b_enc", "b_dec"} - set(state)
        if missing:
            raise ValueError(f"{folder}: sae_weights.safetensors lacks {sorted(missing)}")
        sae.load_state_dict({k: state[k].float() for k in ("W_enc", "W_dec", "b_enc", "b_dec")})
        return sae.to(device).eval()


def load_course_sae(device: str = "cpu") -> SparseAutoencoder:
    """The course SAE (TopK, ``blocks.10.hook_resid_post``), trained by ``python -m utils.train_sae``
    and shipped in ``utils/data/course_sae/``; its cfg's ``extra`` holds the command and metrics."""
    if not (COURSE_SAE_DIR / "cfg.json").exists():
        raise FileNotFoundError(f"{COURSE_SAE_DIR} is missing; train it with `python -m utils.train_sae`.")
    return SparseAutoencoder.load(COURSE_SAE_DIR, device=device)


@dataclass
class NestedLoss:
    """What :func:`nested_topk_loss` returns."""
    loss: torch.Tensor  # scalar: mean over widths of each prefix's FVU (differentiable)
    fvu: dict[int, float]  # width -> that prefix's FVU on the batch
    x_hat: torch.Tensor  # (batch, d_in) the widest prefix's reconstruction
    fired: torch.Tensor  # (d_sae,) bool: latents active on some token at the widest prefix
    l0: float  # mean non-zero latents per token at the widest prefix


def nested_topk_loss(sae: SparseAutoencoder, x: torch.Tensor, pre: torch.Tensor, widths: list[int]) -> NestedLoss:
    """The Matryoshka objective for nested TopK SAEs (see the module docstring).

    x: (batch, d_in); pre: (batch, d_sae) pre-activations. For each width m, the prefix keeps the top
    k of ``pre[:, :m]`` and reconstructs ``x_hat_m = z_m @ W_dec[:m] + b_dec``; the loss is the mean
    over widths of ``||x - x_hat_m||^2 / ||x - mean(x)||^2``. The decoder product is computed sparsely
    (``embedding_bag`` over the k chosen rows), which is ≈ 5x faster on a CPU than the dense
    ``z @ W_dec`` with the same result."""
    k = sae.cfg.k
    variance = (x - x.mean(0)).pow(2).sum(-1).mean()
    losses, fvus = [], {}
    x_hat = values = indices = None
    for m in widths:
        values, indices = pre[:, :m].float().topk(k, dim=-1)  # (batch, k) each
        values = torch.relu(values)
        x_hat = torch.nn.functional.embedding_bag(indices, sae.W_dec, per_sample_weights=values, mode="sum") + sae.b_dec
        fvu_m = (x - x_hat).pow(2).sum(-1).mean() / variance
        losses.append(fvu_m)
        fvus[m] = float(fvu_m.detach())
    if x_hat is None or values is None or indices is None:
        raise ValueError("widths must not be empty")
    fired = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    fired[indices[values > 0]] = True
    return NestedLoss(torch.stack(losses).mean(), fvus, x_hat, fired, float((values > 0).float().sum(-1).mean()))


def load_matryoshka_sae(width: int | None = None, device: str = "cpu") -> SparseAutoencoder:
    """The wide Matryoshka SAE (nested TopK, ``blocks.10.hook_resid_post``) shipped in
    ``utils/data/matryoshka_sae/``, or its prefix of ``width`` latents (one of ``cfg.nested_widths``)."""
    if not (MATRYOSHKA_SAE_DIR / "cfg.json").exists():
        raise FileNotFoundError(f"{MATRYOSHKA_SAE_DIR} is missing; train it with the command in utils/train_sae.py's docstring.")
    sae = SparseAutoencoder.load(MATRYOSHKA_SAE_DIR, device=device)
    if width is None or width == sae.cfg.d_sae:
        return sae
    if width not in (sae.cfg.nested_widths or []):
        raise ValueError(f"width must be one of the trained nested widths {sae.cfg.nested_widths}, got {width}")
    return sae.prefix(width).eval()


def pre_activations(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor) -> torch.Tensor:
    """``(x - b_dec) @ W_enc + b_enc``: x (..., d_in), W_enc (d_in, d_sae) -> (..., d_sae).

    Subtracting ``b_dec`` first centres the input on the point the decoder reconstructs around."""
    return (x - b_dec) @ W_enc + b_enc


def relu_encode(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor) -> torch.Tensor:
    """The ReLU SAE's latents: ``ReLU((x - b_dec) @ W_enc + b_enc)``."""
    return torch.relu(pre_activations(x, W_enc, b_enc, b_dec))


def topk_encode(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, b_dec: torch.Tensor, k: int) -> torch.Tensor:
    """The TopK SAE's latents: ReLU of the k largest *pre-activations* (bias included), others zero."""
    return topk_relu(pre_activations(x, W_enc, b_enc, b_dec), k)


def unit_norm_rows(W: torch.Tensor) -> torch.Tensor:
    """``W`` with every row (one latent's decoder direction, shape (d_in,)) scaled to L2 norm 1."""
    return W / W.norm(dim=-1, keepdim=True).clamp_min(1e-8)


def topk_relu(pre: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest entries of ``pre`` along the last axis, ReLU them, zero the rest."""
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter_(-1, indices, torch.relu(values))


def l1_penalty(z: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of ``sum_i z_i * ||W_dec[i]||_2``. z: (batch, d_sae), W_dec: (d_sae, d_in)."""
    return (z * W_dec.norm(dim=-1)).sum(-1).mean()


def auxk_loss(sae: SparseAutoencoder, x: torch.Tensor, x_hat: torch.Tensor, pre: torch.Tensor,
              dead: torch.Tensor, k_aux: int) -> torch.Tensor:
    """AuxK (Gao et al., 2024): reconstruct the error ``e = x - x_hat`` from the top ``k_aux``
    pre-activations among *dead* latents only; return ``||e - e_hat||^2 / ||e - mean(e)||^2``.

    x, x_hat: (batch, d_in); pre: (batch, d_sae); dead: (d_sae,) bool. Zero when nothing is dead.
    """
    n_dead = int(dead.sum())
    if n_dead == 0:
        return x.new_zeros(())
    error = (x - x_hat).detach()
    masked = pre.masked_fill(~dead, float("-inf"))
    values, indices = masked.topk(min(k_aux, n_dead), dim=-1)  # (batch, k_aux): dead latents only
    # error_hat = TopK_relu(masked) @ W_dec, computed sparsely over the chosen rows
    error_hat = torch.nn.functional.embedding_bag(indices, sae.W_dec, per_sample_weights=torch.relu(values).to(sae.W_dec.dtype), mode="sum")
    return (error - error_hat).pow(2).sum(-1).mean() / (error - error.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-8)


# --- the small, readable versions chapter 01 asks learners to write -----------------------------
def relu_sae_loss(x: torch.Tensor, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor,
                  b_dec: torch.Tensor, l1_coefficient: float) -> torch.Tensor:
    """The ReLU SAE's loss as in Anthropic's *Circuits Updates – April 2024*, with free decoder norms:

        z = ReLU((x - b_dec) @ W_enc + b_enc),   x_hat = z @ W_dec + b_dec,
        loss = mean_b ||x_b - x_hat_b||^2  +  l1_coefficient * mean_b sum_i z_{b,i} ||W_dec[i]||_2.

    Weighting each latent by its decoder row's norm makes the penalty invariant to the rescaling
    ``z_i -> z_i / c``, ``W_dec[i] -> c W_dec[i]`` (which leaves ``x_hat`` unchanged), so the
    optimiser cannot dodge it by growing rows. A scalar tensor with gradients.
    """
    z = torch.relu((x - b_dec) @ W_enc + b_enc)  # (batch, d_sae)
    x_hat = z @ W_dec + b_dec  # (batch, d_in)
    reconstruction = (x - x_hat).pow(2).sum(-1).mean()
    sparsity = (z * W_dec.norm(dim=-1)).sum(-1).mean()
    return reconstruction + l1_coefficient * sparsity


def normalised_mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """``mean_b ||x_b - x_hat_b||^2 / mean_b ||x_b - mean(x)||^2``: the batch's FVU, 1 for predicting the mean."""
    return (x - x_hat).pow(2).sum(-1).mean() / (x - x.mean(0)).pow(2).sum(-1).mean()


def training_step(sae: SparseAutoencoder, optimiser: torch.optim.Optimizer, x: torch.Tensor) -> float:
    """One step of a TopK SAE on the batch ``x`` (batch, d_in); returns the loss before the step.

    1. forward: ``z = ReLU(TopK_k((x - b_dec) @ W_enc + b_enc))``, ``x_hat = z @ W_dec + b_dec``;
    2. loss = :func:`normalised_mse` (scale-free, so one learning rate suits every layer);
    3. clear old gradients, backpropagate;
    4. remove from ``W_dec.grad`` each row's component along that row, ``g_i -= (g_i . u_i) u_i`` with
       ``u_i = W_dec[i] / ||W_dec[i]||``: the rows live on the unit sphere, so only the gradient tangent
       to it is meaningful (the parallel part would change the row's length, which step 6 discards,
       and through Adam's per-coordinate scaling and the renormalisation it also tilts the direction);
    5. optimiser step;
    6. rescale every decoder row to unit norm (in place, without gradient tracking).
    """
    z = topk_encode(x, sae.W_enc, sae.b_enc, sae.b_dec, sae.cfg.k)
    x_hat = z @ sae.W_dec + sae.b_dec
    loss = normalised_mse(x, x_hat)
    optimiser.zero_grad()
    loss.backward()
    with torch.no_grad():
        rows = unit_norm_rows(sae.W_dec)
        sae.W_dec.grad -= (sae.W_dec.grad * rows).sum(-1, keepdim=True) * rows
    optimiser.step()
    with torch.no_grad():
        sae.W_dec.copy_(unit_norm_rows(sae.W_dec))
    return loss.item()
