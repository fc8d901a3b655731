"""The SAE module, its training loop, the activation buffer and the metrics."""

from __future__ import annotations

import json

import pytest
import torch

from utils.activations import collect_activations, input_scale, shuffled_batches
from utils.sae import SAEConfig, SparseAutoencoder, auxk_loss, l1_penalty, topk_relu
from utils.sae_metrics import ce_loss_recovered, dead_fraction, evaluate_sae, fvu, l0, mse
from utils.train_sae import TrainConfig, lr_factor, train_sae


def small_cfg(**kw) -> SAEConfig:
    return SAEConfig(**{"d_in": 16, "d_sae": 64, "architecture": "topk", "k": 4, **kw})


def sparse_data(n=20_000, d=16, n_feat=48, p=0.04, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n_feat, d, generator=g)
    feats /= feats.norm(dim=-1, keepdim=True)
    coeff = (torch.rand(n, n_feat, generator=g) < p) * torch.rand(n, n_feat, generator=g)
    return coeff @ feats + 0.5, feats  # an offset so b_dec matters


def test_topk_relu_keeps_k_nonnegative_entries():
    pre = torch.tensor([[3.0, -1.0, 2.0, 0.5, -4.0], [-1.0, -2.0, -3.0, -0.5, -0.1]])
    z = topk_relu(pre, 2)
    assert torch.equal(z[0], torch.tensor([3.0, 0, 2.0, 0, 0]))
    assert torch.equal(z[1], torch.zeros(5))  # the top 2 are negative: ReLU zeroes them


def test_config_validation():
    with pytest.raises(ValueError, match="architecture"):
        SAEConfig(architecture="jumprelu")
    with pytest.raises(ValueError, match="k"):
        SAEConfig(architecture="topk", k=0)


def test_init_ties_encoder_to_decoder_and_unit_rows():
    sae = SparseAutoencoder(small_cfg())
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(64))
    assert torch.equal(sae.W_enc, sae.W_dec.T)


def test_decoder_constraints():
    sae = SparseAutoencoder(small_cfg())
    with torch.no_grad():
        sae.W_dec.mul_(3.0)
    sae.normalise_decoder_()
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(64), atol=1e-6)
    sae.W_dec.grad = torch.randn_like(sae.W_dec)
    sae.remove_parallel_gradient_()
    assert torch.allclose((sae.W_dec.grad * sae.W_dec).sum(-1), torch.zeros(64), atol=1e-5)


def test_fold_input_scale_gives_identical_latents_on_raw_inputs():
    sae = SparseAutoencoder(small_cfg(), seed=1)
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_()
    x = torch.randn(32, 16) * 7
    z_scaled, x_hat_scaled = sae.encode(0.2 * x), sae(0.2 * x)
    sae.fold_input_scale_(0.2)
    assert torch.allclose(sae.encode(x), z_scaled, atol=1e-5)
    assert torch.allclose(sae(x), x_hat_scaled / 0.2, atol=1e-4)


def test_save_load_roundtrip_in_saelens_layout(tmp_path):
    from safetensors.torch import load_file

    sae = SparseAutoencoder(small_cfg(hook_name="blocks.3.hook_resid_post", hook_layer=3), seed=2)
    sae.cfg.extra["note"] = "x"
    sae.save(tmp_path / "sae")
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["d_in"] == 16 and cfg["d_sae"] == 64 and cfg["k"] == 4 and cfg["hook_name"] == "blocks.3.hook_resid_post"
    assert cfg["activation_fn"] == "topk" and cfg["activation_fn_kwargs"] == {"k": 4}
    tensors = load_file(tmp_path / "sae" / "sae_weights.safetensors")
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {"W_enc": (16, 64), "W_dec": (64, 16), "b_enc": (64,), "b_dec": (16,)}
    loaded = SparseAutoencoder.load(tmp_path / "sae")
    x = torch.randn(5, 16)
    assert torch.equal(loaded(x), sae(x)) and loaded.cfg.extra == {"note": "x"}
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        SparseAutoencoder.load(tmp_path / "nothing")


def test_auxk_is_zero_without_dead_latents_and_trains_only_dead_rows():
    sae = SparseAutoencoder(small_cfg())
    x = torch.randn(64, 16)
    pre = sae.pre_activations(x)
    x_hat = sae.decode(sae.activation(pre))
    assert float(auxk_loss(sae, x, x_hat, pre, torch.zeros(64, dtype=torch.bool), 8)) == 0.0
    dead = torch.zeros(64, dtype=torch.bool)
    dead[:10] = True
    loss = auxk_loss(sae, x, x_hat, pre, dead, 8)
    loss.backward()
    assert loss > 0
    row_grad = sae.W_dec.grad.norm(dim=-1)
    assert (row_grad[10:] == 0).all() and (row_grad[:10] > 0).any()


def test_l1_penalty_weights_latents_by_decoder_norm():
    z = torch.tensor([[1.0, 2.0]])
    W_dec = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # norms 5 and 1
    assert float(l1_penalty(z, W_dec)) == pytest.approx(7.0)


def test_metrics_on_known_cases():
    x = torch.randn(100, 8)
    assert float(fvu(x, x)) == 0 and float(mse(x, x)) == 0
    assert float(fvu(x, x.mean(0).expand_as(x))) == pytest.approx(1.0)
    assert float(l0(torch.tensor([[0.0, 1.0, 2.0], [0.0, 0.0, 5.0]]))) == 1.5
    assert dead_fraction(torch.tensor([0, 3, 0, 1])) == 0.5
    assert ce_loss_recovered(ce_clean=2.0, ce_sae=2.5, ce_zero=10.0) == pytest.approx(7.5 / 8)


def test_lr_schedule_warms_up_and_decays():
    cfg = TrainConfig(warmup_steps=10, decay_fraction=0.2)
    assert lr_factor(0, 100, cfg) == pytest.approx(0.1)
    assert lr_factor(50, 100, cfg) == 1.0
    assert lr_factor(90, 100, cfg) == pytest.approx(0.5)


@pytest.mark.parametrize("architecture", ["topk", "relu"])
def test_training_reconstructs_sparse_data_with_few_dead_latents(architecture):
    torch.manual_seed(0)
    x, _ = sparse_data()
    cfg = small_cfg(architecture=architecture, k=4 if architecture == "topk" else None, l1_coefficient=0.3)
    sae = SparseAutoencoder(cfg)
    history = train_sae(sae, x, TrainConfig(batch_size=256, epochs=6, warmup_steps=20, dead_after=5_000, log_every=10),
                        progress=False, bf16=False)
    z = sae.encode(x)
    assert history[-1]["fvu"] < history[0]["fvu"]
    assert float(fvu(x, sae(x))) < 0.25  # raw units: the input scale is folded in
    assert dead_fraction((z != 0).sum(0)) < 0.5
    if architecture == "topk":
        assert float(l0(z)) <= 4


def test_activation_buffer_is_bounded_and_matches_the_model(model):
    tokens = torch.randint(100, 20000, (3, 2, 16))
    acts = collect_activations(model, list(tokens), layer=4, max_tokens=50, progress=False)
    assert acts.shape == (50, 576) and acts.dtype == torch.float16
    _, cache = model.run_with_cache(tokens[0], names_filter="blocks.4.hook_resid_post")
    assert torch.allclose(acts[:32].float(), cache["blocks.4.hook_resid_post"].reshape(-1, 576), atol=0.1, rtol=1e-2)
    s = input_scale(acts)
    assert float((acts.float() * s).pow(2).sum(-1).mean()) == pytest.approx(576, rel=1e-3)
    batches = list(shuffled_batches(acts, 16, epochs=2, seed=0, scale=s))
    assert len(batches) == 6 and batches[0].dtype == torch.float32


class IdentitySAE:
    """A stand-in "perfect" SAE: encode and decode are the identity."""

    def __init__(self, hook_name: str, d: int, zero: bool = False):
        self.cfg = SAEConfig(d_in=d, d_sae=d, architecture="relu", hook_name=hook_name)
        self.zero = zero

    def encode(self, x):
        return torch.zeros_like(x) if self.zero else x

    def decode(self, z):
        return z


def test_evaluate_sae_on_perfect_and_zero_reconstructions(model):
    text = ["The Golden Gate Bridge is a suspension bridge in San Francisco. It opened in 1937 and is painted orange.",
            "To bake bread, mix flour, water, salt and yeast, then let the dough rise for an hour before baking it."]
    batches = [model.to_tokens(text, padding_side="right")[:, :20]]
    perfect = evaluate_sae(model, IdentitySAE("blocks.10.hook_resid_post", 576), batches)
    assert perfect["ce_loss_recovered"] == pytest.approx(1.0, abs=1e-4)
    assert perfect["kl"] == pytest.approx(0.0, abs=1e-4) and perfect["fvu"] == pytest.approx(0.0, abs=1e-6)
    zero = evaluate_sae(model, IdentitySAE("blocks.10.hook_resid_post", 576, zero=True), batches)
    assert zero["ce_loss_recovered"] == pytest.approx(0.0, abs=1e-4) and zero["delta_ce"] > 1
    with pytest.raises(ValueError, match="no token batches"):
        evaluate_sae(model, IdentitySAE("blocks.10.hook_resid_post", 576), [])


def test_release_returns_memory_without_touching_live_tensors():
    from utils.memory import release

    keep = torch.arange(10.0)
    garbage = torch.zeros(50_000_000)  # 200 MB
    del garbage
    assert release() is None  # returns nothing, so a cell ending in release() prints nothing
    assert torch.equal(keep, torch.arange(10.0))


# --- nested (Matryoshka) TopK SAEs --------------------------------------------------------------
def test_nested_widths_are_validated():
    assert SAEConfig(d_in=16, d_sae=64, k=4, nested_widths=[8, 32, 64]).nested_widths == [8, 32, 64]
    for widths in ([8, 32], [32, 8, 64], [2, 32, 64], [8, 8, 64]):
        with pytest.raises(ValueError, match="nested_widths"):
            SAEConfig(d_in=16, d_sae=64, k=4, nested_widths=widths)
    with pytest.raises(ValueError, match="TopK"):
        SAEConfig(d_in=16, d_sae=64, architecture="relu", k=None, nested_widths=[8, 64])


def test_prefix_is_a_plain_topk_sae_on_the_first_latents():
    from utils.sae import nested_topk_loss

    sae = SparseAutoencoder(small_cfg(nested_widths=[8, 32, 64]), seed=3)
    with torch.no_grad():
        sae.b_enc.normal_()
    x = torch.randn(50, 16)
    small = sae.prefix(8)
    assert small.cfg.d_sae == 8 and small.cfg.k == 4 and small.cfg.nested_widths == [8]
    assert torch.equal(small.W_dec, sae.W_dec[:8]) and torch.equal(small.W_enc, sae.W_enc[:, :8])
    # its own top k over the first 8 pre-activations, not the full SAE's code truncated
    assert torch.allclose(small.encode(x), topk_relu(sae.pre_activations(x)[:, :8], 4), atol=1e-5)
    assert not torch.allclose(small.encode(x), sae.encode(x)[:, :8])
    # the training loss is the mean of each prefix's FVU, with the decoder product done sparsely
    nested = nested_topk_loss(sae, x, sae.pre_activations(x), [8, 32, 64])
    variance = (x - x.mean(0)).pow(2).sum(-1).mean()
    fvus = [float((x - sae.prefix(m)(x)).pow(2).sum(-1).mean() / variance) for m in (8, 32, 64)]
    assert nested.loss.item() == pytest.approx(sum(fvus) / 3, rel=1e-5)
    assert [nested.fvu[m] for m in (8, 32, 64)] == pytest.approx(fvus, rel=1e-5)
    assert torch.allclose(nested.x_hat, sae(x), atol=1e-5) and nested.l0 <= 4
    assert torch.equal(nested.fired, (sae.encode(x) > 0).any(0))
    with pytest.raises(ValueError, match="width"):
        sae.prefix(2)


def test_matryoshka_training_makes_every_prefix_reconstruct(tmp_path):
    """One run trains all widths: each prefix beats the constant predictor, wider prefixes do better, and
    a narrow prefix of the nested SAE beats the same prefix of a plain TopK SAE trained the same way."""
    data, _ = sparse_data(n=12_000)
    cfg = TrainConfig(batch_size=512, epochs=8, log_every=5)
    nested = SparseAutoencoder(small_cfg(nested_widths=[8, 24, 64]), seed=0)
    plain = SparseAutoencoder(small_cfg(), seed=0)
    history = train_sae(nested, data, cfg, progress=False, bf16=False)
    train_sae(plain, data, cfg, progress=False, bf16=False)
    assert {"fvu_8", "fvu_24", "fvu_64"} <= set(history[-1])
    with torch.no_grad():
        errors = [float(fvu(data, nested.prefix(m)(data))) for m in (8, 24, 64)]
        plain_8 = float(fvu(data, plain.prefix(8)(data)))
    assert errors[0] > errors[1] > errors[2] and errors[0] < 0.7
    assert errors[0] < plain_8 - 0.05  # the nested objective is what makes the narrow prefix good
    folder = nested.save(tmp_path / "nested")
    again = SparseAutoencoder.load(folder)
    assert again.cfg.nested_widths == [8, 24, 64]
    assert torch.allclose(again.prefix(24)(data[:10]), nested.prefix(24)(data[:10]), atol=1e-5)
