"""Toy superposition data (utils/toy.py): the features, the sampler, the recovery score, and proof that
the default ToyConfig is learnable by a small SAE in a few seconds on one CPU thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from utils.toy import ToyConfig, matched_cosines, recovery_score, sample_toy_batch, true_features


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Train on one CPU thread, as the course's time budgets assume; restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --- the features ---------------------------------------------------------------------------------


def test_true_features_are_seeded_unit_vectors_in_superposition():
    cfg = ToyConfig()
    f = true_features(cfg)
    assert f.shape == (cfg.n_features, cfg.d_model)
    assert cfg.n_features > cfg.d_model  # more features than dimensions: superposition
    torch.testing.assert_close(f.norm(dim=-1), torch.ones(cfg.n_features))
    assert torch.equal(f, true_features(ToyConfig()))
    assert not torch.equal(f, true_features(ToyConfig(seed=1)))
    off_diagonal = (f @ f.T - torch.eye(cfg.n_features)).abs()
    assert off_diagonal.max() < 0.9  # no two features (nearly) coincide
    assert off_diagonal.max() > 0.1  # ...but they cannot all be orthogonal


def test_features_do_not_coincide_with_the_global_stream_of_the_same_seed():
    """torch.manual_seed(s) + randn must not hand a learner's SAE init the answer (see FEATURE_SEED_SALT)."""
    cfg = ToyConfig(seed=0)
    torch.manual_seed(cfg.seed)
    init = torch.randn(2 * cfg.n_features, cfg.d_model)
    assert recovery_score(init, true_features(cfg)) < 0.6


def test_config_rejects_impossible_values():
    with pytest.raises(ValueError, match="feature_prob"):
        ToyConfig(feature_prob=0.0)
    with pytest.raises(ValueError, match="feature_prob"):
        ToyConfig(feature_prob=1.5)
    with pytest.raises(ValueError, match="n_features"):
        ToyConfig(d_model=0)
    with pytest.raises(ValueError, match="magnitude"):
        ToyConfig(magnitude="gaussian")  # type: ignore[arg-type]


# --- the sampler ----------------------------------------------------------------------------------


def test_sample_toy_batch_shapes_and_x_is_coefficients_times_features():
    cfg = ToyConfig()
    f = true_features(cfg)
    x, c = sample_toy_batch(cfg, f, 256, torch.Generator().manual_seed(0))
    assert x.shape == (256, cfg.d_model) and c.shape == (256, cfg.n_features)
    torch.testing.assert_close(x, c @ f)


def test_sample_toy_batch_is_reproducible_with_a_seeded_generator():
    cfg = ToyConfig()
    f = true_features(cfg)
    a = sample_toy_batch(cfg, f, 64, torch.Generator().manual_seed(7))
    b = sample_toy_batch(cfg, f, 64, torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("p", [0.02, 0.03, 0.05, 0.3])
def test_activation_frequency_matches_feature_prob(p: float):
    cfg = ToyConfig(feature_prob=p)
    n = 20_000
    _, c = sample_toy_batch(cfg, true_features(cfg), n, torch.Generator().manual_seed(1))
    per_feature = (c > 0).float().mean(dim=0)  # (n_features,)
    sigma = (p * (1 - p) / n) ** 0.5  # binomial standard error of one feature's frequency
    assert abs(per_feature.mean().item() - p) < 5 * sigma / cfg.n_features**0.5
    assert (per_feature - p).abs().max().item() < 5 * sigma


def test_magnitudes_follow_the_configured_distribution():
    n = 20_000
    g = torch.Generator().manual_seed(2)
    cfg = ToyConfig(magnitude="uniform", feature_prob=0.5)
    _, c = sample_toy_batch(cfg, true_features(cfg), n, g)
    m = c[c != 0]
    assert m.min() > 0 and m.max() <= 1 and abs(m.mean().item() - 0.5) < 0.01  # U(0, 1]

    cfg = ToyConfig(magnitude="exponential", feature_prob=0.5)
    _, c = sample_toy_batch(cfg, true_features(cfg), n, g)
    m = c[c != 0]
    assert m.min() > 0 and abs(m.mean().item() - 1.0) < 0.02 and m.max() > 5  # Exp(1): heavy tail

    cfg = ToyConfig(magnitude="constant", feature_prob=0.5)
    _, c = sample_toy_batch(cfg, true_features(cfg), 100, g)
    assert set(c.unique().tolist()) <= {0.0, 1.0}


def test_sample_toy_batch_rejects_features_of_the_wrong_shape():
    cfg = ToyConfig()
    with pytest.raises(ValueError, match="n_features, d_model"):
        sample_toy_batch(cfg, true_features(cfg).T, 8)
    with pytest.raises(ValueError, match="batch_size"):
        sample_toy_batch(cfg, true_features(cfg), 0)


# --- the recovery score ---------------------------------------------------------------------------


def test_recovery_is_one_for_the_true_features_in_any_order_with_extra_rows():
    cfg = ToyConfig()
    f = true_features(cfg)
    assert recovery_score(f, f) == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(cfg.n_features, generator=g)
    extra = torch.randn(3 * cfg.n_features, cfg.d_model, generator=g)
    scale = torch.rand(cfg.n_features, 1, generator=g) + 0.5  # decoder rows need not be unit norm
    W_dec = torch.cat([extra, f[perm] * scale])[torch.randperm(4 * cfg.n_features, generator=g)]
    assert recovery_score(W_dec, f) == pytest.approx(1.0)
    best, index = matched_cosines(W_dec, f)
    assert best.shape == index.shape == (cfg.n_features,)
    torch.testing.assert_close(W_dec[index] / W_dec[index].norm(dim=-1, keepdim=True), f)


def test_recovery_is_low_for_random_rows_in_high_dimension():
    cfg = ToyConfig(d_model=256)
    f = true_features(cfg)
    W_dec = torch.randn(4 * cfg.n_features, cfg.d_model, generator=torch.Generator().manual_seed(3))
    assert recovery_score(W_dec, f) < 0.5


def test_recovery_is_sign_sensitive():
    """A row along -f cannot reconstruct +f with a non-negative latent, so it does not count."""
    f = true_features(ToyConfig())
    assert recovery_score(-f, f) < 0.5
    best, _ = matched_cosines(torch.cat([-f, f[:1]]), f)
    assert best[0] == pytest.approx(1.0) and (best[1:] < 0.9).all()


def test_recovery_treats_zero_rows_as_matching_nothing():
    f = true_features(ToyConfig())
    assert recovery_score(torch.zeros(10, f.shape[1]), f) == 0.0


def test_recovery_validates_shapes_clearly():
    f = true_features(ToyConfig())  # (64, 32)
    with pytest.raises(ValueError, match="transposed"):
        recovery_score(f.T, f)  # (32, 64): the classic W_dec.T mistake
    with pytest.raises(ValueError, match="d_model"):
        recovery_score(torch.randn(10, 7), f)
    with pytest.raises(ValueError, match=r"\(d_sae, d_model\)"):
        recovery_score(torch.randn(128), f)
    with pytest.raises(ValueError, match="at least one row"):
        recovery_score(torch.randn(0, 32), f)


# --- the default configuration is learnable -------------------------------------------------------


def train_toy_sae(
    cfg: ToyConfig,
    *,
    kind: str,
    d_sae: int,
    steps: int,
    batch_size: int = 1024,
    lr: float = 3e-3,
    k: int = 3,
    l1_coeff: float = 0.2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A minimal SAE, self-contained on purpose (the course's own lives in utils/sae.py).

    ``z = act(W_enc^T (x - b_dec) + b_enc)``, ``x_hat = z W_dec + b_dec``, loss
    ``||x - x_hat||^2`` (summed over d_model, mean over the batch), plus for ``kind="relu"`` the L1
    penalty ``l1_coeff * sum_j z_j ||W_dec[j]||``. ``act`` is ReLU, or for ``kind="topk"`` keep the
    ``k`` largest pre-activations (ReLU'd) and zero the rest, with decoder rows renormalised to unit
    norm after every step. Fresh toy data every step. Returns (W_dec (d_sae, d_model) before training,
    W_dec after).
    """
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(10_000 + seed)
    features = true_features(cfg)
    W_dec = torch.nn.Parameter(torch.nn.functional.normalize(torch.randn(d_sae, cfg.d_model), dim=-1))
    W_enc = torch.nn.Parameter(W_dec.detach().T.clone())  # (d_model, d_sae), tied at init
    b_enc = torch.nn.Parameter(torch.zeros(d_sae))
    b_dec = torch.nn.Parameter(torch.zeros(cfg.d_model))
    initial = W_dec.detach().clone()
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=lr)
    for _ in range(steps):
        x, _ = sample_toy_batch(cfg, features, batch_size, data)  # (batch, d_model)
        pre = (x - b_dec) @ W_enc + b_enc  # (batch, d_sae)
        if kind == "topk":
            values, indices = pre.topk(k, dim=-1)  # (batch, k)
            z = torch.zeros_like(pre).scatter(-1, indices, values.relu())
        else:
            z = pre.relu()
        x_hat = z @ W_dec + b_dec  # (batch, d_model)
        loss = (x_hat - x).pow(2).sum(-1).mean()
        if kind == "relu":
            loss = loss + l1_coeff * (z * W_dec.norm(dim=-1)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if kind == "topk":
            with torch.no_grad():
                W_dec.copy_(torch.nn.functional.normalize(W_dec, dim=-1))
    return initial, W_dec.detach()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "kind, ratio, steps",
    [("topk", 2, 600), ("topk", 4, 600), ("relu", 2, 1500)],
    ids=["topk-2x", "topk-4x", "relu-l1-2x"],
)
def test_default_config_is_learnable_in_a_few_hundred_steps(one_thread, kind: str, ratio: int, steps: int, seed: int):
    # Speed is not asserted here (the machine is shared): these runs took 1-3 s on one thread.
    cfg = ToyConfig(seed=seed)
    initial, W_dec = train_toy_sae(cfg, kind=kind, d_sae=ratio * cfg.n_features, steps=steps, seed=seed)
    features = true_features(cfg)
    assert recovery_score(initial, features) < 0.6  # random init is far from the answer
    assert recovery_score(W_dec, features) >= 0.95
