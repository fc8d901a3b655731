"""Toy superposition data with known ground-truth features (chapter 01, before the real model).

The generative model, following Anthropic's *Toy Models of Superposition*:

* ``n_features`` true feature directions ``f_1 .. f_n`` are unit vectors in ``R^{d_model}`` with
  ``n_features > d_model``, so they cannot be orthogonal: the data lives "in superposition".
* A sample has coefficients ``c_i = a_i * m_i`` where ``a_i ~ Bernoulli(p)`` decides whether feature
  ``i`` is active (independently of the others) and ``m_i > 0`` is its magnitude.
* The observed activation is ``x = sum_i c_i f_i = c @ F`` with ``F`` the ``(n_features, d_model)``
  matrix of feature rows.

Because each sample uses only about ``n_features * p`` features, a sparse autoencoder can undo the
superposition: its decoder rows should line up with the ``f_i``. ``recovery_score`` measures exactly
that, so learners can check an SAE against a ground truth before meeting a real model, where none
exists.

Nothing here does work at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Magnitude = Literal["uniform", "exponential", "constant"]

# Added to cfg.seed before drawing the features. Why: ``torch.Generator().manual_seed(s)`` and
# ``torch.manual_seed(s)`` give the same random stream, so with an unsalted seed a learner who writes
# ``torch.manual_seed(0)`` and then initialises an SAE decoder with ``torch.randn`` would start from
# the true features of ``ToyConfig(seed=0)`` and score a perfect recovery without training.
FEATURE_SEED_SALT = 1_000_003


@dataclass(frozen=True)
class ToyConfig:
    """Hyperparameters of the toy data. The defaults are chosen so that a small SAE trained for a few
    seconds on one CPU thread recovers every feature (recovery score >= 0.95, see tests/test_toy.py)."""

    # Number of true features. Why 64: enough that "which latent is which feature" is a real matching
    # problem, few enough that an SAE with 2-4x as many latents trains in seconds.
    n_features: int = 64
    # Dimension of the space the data lives in. Why 32: half of n_features, so the features must share
    # dimensions (superposition) while sparse codes remain identifiable; with far fewer dimensions the
    # interference between active features makes a one-layer encoder's job much harder.
    d_model: int = 32
    # Probability that a feature is active in a sample (independently per feature). Why 0.03: about
    # 64 * 0.03 ~= 2 active features per sample, sparse like real SAE features, yet every feature is
    # seen often (~30 times per 1,000 samples) so none is starved during a short training run.
    feature_prob: float = 0.03
    # Distribution of an active feature's magnitude m_i. "uniform": U(0, 1]; "exponential": Exp(1)
    # (mean 1, heavy right tail); "constant": always 1. Why uniform by default: magnitudes vary (as
    # in real activations) but are bounded, so no single sample dominates the reconstruction loss.
    magnitude: Magnitude = "uniform"
    # Seed of the feature directions. Why a field: the same config always gives the same features, so
    # a learner's notebook, the checks and the tests all see one ground truth.
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_features < 1 or self.d_model < 1:
            raise ValueError(f"n_features and d_model must be >= 1, got {self.n_features}, {self.d_model}")
        if not 0.0 < self.feature_prob <= 1.0:
            raise ValueError(f"feature_prob must be in (0, 1], got {self.feature_prob}")
        if self.magnitude not in ("uniform", "exponential", "constant"):
            raise ValueError(
                f"magnitude must be 'uniform', 'exponential' or 'constant', got {self.magnitude!r}"
            )


def true_features(cfg: ToyConfig) -> torch.Tensor:
    """The ground-truth feature matrix ``F``, shape ``(n_features, d_model)``, rows of unit norm.

    Each row is ``g / ||g||_2`` with ``g ~ N(0, I_{d_model})``, i.e. uniform on the unit sphere,
    drawn from a generator seeded with ``cfg.seed + FEATURE_SEED_SALT``: the same config always gives
    the same features, and they do not coincide with ``torch.randn`` after ``torch.manual_seed(cfg.seed)``.
    Random unit vectors in ``d_model`` dimensions have ``|cos| ~ 1/sqrt(d_model)`` with each other,
    so the features are nearly, but not exactly, orthogonal.
    """
    generator = torch.Generator().manual_seed(cfg.seed + FEATURE_SEED_SALT)
    g = torch.randn(cfg.n_features, cfg.d_model, generator=generator)  # (n_features, d_model)
    return g / g.norm(dim=-1, keepdim=True)


def sample_magnitudes(
    cfg: ToyConfig, shape: tuple[int, ...], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Magnitudes ``m > 0`` of ``shape`` drawn from ``cfg.magnitude``.

    uniform: ``m = 1 - u`` with ``u ~ U[0, 1)``, so ``m ~ U(0, 1]`` (never exactly 0);
    exponential: ``m = -log(1 - u) ~ Exp(1)``, plus the smallest positive float so it is never 0;
    constant: ``m = 1``.
    """
    if cfg.magnitude == "constant":
        return torch.ones(shape)
    u = torch.rand(shape, generator=generator)
    if cfg.magnitude == "uniform":
        return 1.0 - u
    return -torch.log1p(-u) + torch.finfo(u.dtype).tiny


def sample_toy_batch(
    cfg: ToyConfig,
    features: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch_size`` samples ``x = c @ F``.

    ``c[b, i] = a[b, i] * m[b, i]`` with ``a ~ Bernoulli(cfg.feature_prob)`` independently for every
    sample and feature, and ``m`` from ``sample_magnitudes``. ``features`` is ``F`` from
    ``true_features(cfg)``, shape ``(n_features, d_model)``. Pass a seeded ``generator`` for a
    reproducible stream of batches (otherwise torch's global generator is used).

    Returns ``(x, coefficients)`` of shapes ``(batch, d_model)`` and ``(batch, n_features)``.
    A sample may have no active feature, in which case ``x`` is the zero vector.
    """
    if features.shape != (cfg.n_features, cfg.d_model):
        raise ValueError(
            f"features must have shape (n_features, d_model) = ({cfg.n_features}, {cfg.d_model}), "
            f"got {tuple(features.shape)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shape = (batch_size, cfg.n_features)
    active = torch.rand(shape, generator=generator) < cfg.feature_prob  # (batch, n_features) bool
    coefficients = active * sample_magnitudes(cfg, shape, generator)  # (batch, n_features)
    x = coefficients @ features.to(coefficients.dtype)  # (batch, d_model)
    return x, coefficients


def _check_dictionaries(W_dec: torch.Tensor, features: torch.Tensor) -> None:
    """Raise a ValueError unless both are 2-D with the same number of columns (d_model)."""
    if W_dec.ndim != 2 or features.ndim != 2:
        raise ValueError(
            "W_dec must be (d_sae, d_model) and features (n_features, d_model); "
            f"got shapes {tuple(W_dec.shape)} and {tuple(features.shape)}"
        )
    if W_dec.shape[1] != features.shape[1]:
        transposed = W_dec.shape[0] == features.shape[1]
        hint = " (is W_dec transposed? it should be (d_sae, d_model))" if transposed else ""
        raise ValueError(
            f"W_dec has d_model={W_dec.shape[1]} but features have d_model={features.shape[1]}{hint}; "
            f"got shapes {tuple(W_dec.shape)} and {tuple(features.shape)}"
        )
    if W_dec.shape[0] == 0 or features.shape[0] == 0:
        raise ValueError(
            f"W_dec and features need at least one row, got {tuple(W_dec.shape)} and {tuple(features.shape)}"
        )


def matched_cosines(W_dec: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each true feature, the decoder row most similar to it.

    With ``d_j`` the rows of ``W_dec`` (d_sae, d_model) and ``f_i`` the rows of ``features``
    (n_features, d_model): ``best_i = max_j cos(f_i, d_j)`` and ``index_i = argmax_j cos(f_i, d_j)``.
    The cosine is signed: a row pointing at ``-f_i`` has cos -1 and does not count, because an SAE's
    latents are non-negative, so the latent of ``-f_i`` can never reconstruct ``+f_i``. A zero row
    has cosine 0 with everything. Several features may match the same row.

    Returns ``(best, index)``, both of shape ``(n_features,)``.
    """
    _check_dictionaries(W_dec, features)
    with torch.no_grad():
        # on the CPU in float32, so an SAE living on another device or in another dtype still works
        d = torch.nn.functional.normalize(W_dec.detach().float().cpu(), dim=-1)  # (d_sae, d_model)
        f = torch.nn.functional.normalize(features.detach().float().cpu(), dim=-1)  # (n_features, d_model)
        cos = f @ d.T  # (n_features, d_sae)
        best, index = cos.max(dim=-1)  # (n_features,) each
    return best, index


def recovery_score(W_dec: torch.Tensor, features: torch.Tensor) -> float:
    """Mean over true features of their best signed cosine with any decoder row.

    ``score = (1 / n_features) * sum_i max_j cos(f_i, d_j)``, in ``[-1, 1]``; 1.0 means every true
    feature has a decoder row pointing exactly along it (order and extra rows do not matter).
    Random rows score a little below ``sqrt(2 ln(d_sae) / d_model)`` (about 0.45 for d_sae=128,
    d_model=32, and 0.6 for d_model=16), so compare a score with that baseline, not with 0.
    ``W_dec`` is (d_sae, d_model), ``features`` (n_features, d_model).
    """
    best, _ = matched_cosines(W_dec, features)
    return best.mean().item()
