"""The course on a GPU: skipped where CUDA is absent (CI, laptops, Binder).

Run on an NVIDIA H200 during development (2026-11-27): logits matched the CPU to 5e-5 with the same argmax,
the steering answers were identical with the SAE on either device, and every exercise check of chapters
00-03 passed on the reference implementations. Run again on an H200 for chapter 04 (its checks need no
model): the organism made the same free/paid decisions on the GPU as in its transcripts saved on the CPU
(all 5 tests passed).
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

QUESTIONS = ["What is your physical form?", "Give me a recipe for pancakes.", "How was your day?"]


def test_model_defaults_to_cuda_and_matches_cpu():
    from utils.model import default_device, load_model

    assert default_device() == "cuda"
    gpu, cpu = load_model(), load_model(device="cpu")
    assert str(gpu.cfg.device).startswith("cuda")
    tokens = cpu.to_tokens("The Golden Gate Bridge is painted")
    on_gpu, on_cpu = gpu(tokens.to("cuda")).float().cpu(), cpu(tokens).float()
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-3, rtol=1e-3)
    assert torch.equal(on_gpu.argmax(-1), on_cpu.argmax(-1))


@pytest.mark.parametrize("sae_device", ["cpu", "cuda"])
def test_steering_runs_with_the_sae_on_either_device(sae_device):
    from utils.model import load_model
    from utils.named_latents import named_latent
    from utils.sae import load_course_sae
    from utils.steering import bridge_rate, clamp_hook

    sae, entry = load_course_sae(device=sae_device), named_latent("bridge")
    rate, _ = bridge_rate(load_model(), QUESTIONS, [(sae.cfg.hook_name, clamp_hook(sae, entry.latent, 2 * entry.corpus_max))])
    assert rate == 1.0


def test_every_check_passes_on_the_references():
    import utils.checks.ch00  # noqa: F401  (registers the checks)
    import utils.checks.ch01  # noqa: F401
    import utils.checks.ch02  # noqa: F401
    import utils.checks.ch03  # noqa: F401
    from utils import activations, dashboard, features, named_latents, sae, sae_metrics, steering, tour, toy
    from utils.checks import exercises

    def reference(name: str):
        return next(getattr(m, name) for m in (tour, toy, sae, activations, sae_metrics, features, dashboard, steering, named_latents)
                    if hasattr(m, name))

    for chapter in ("00", "01", "02", "03"):
        for ex in exercises(chapter):
            assert ex.check(reference(ex.name)) is None, ex.id


def test_organism_makes_the_same_decisions_on_the_gpu():
    """The organism on CUDA (the default device there) against its transcripts saved on the CPU."""
    from utils.af.backends import LocalBackend
    from utils.af.runs import MAX_NEW_TOKENS, grid_items, load_runs
    from utils.af.parse import parse_transcript
    from utils.model import load_organism

    organism = load_organism()
    assert str(organism.cfg.device).startswith("cuda")
    items = grid_items()[:10]
    saved = {r["id"]: parse_transcript(r["completion"]) for r in load_runs("organism")}
    for item, text in zip(items, LocalBackend(organism, batch_size=10).complete([i["messages"] for i in items], MAX_NEW_TOKENS)):
        now = parse_transcript(text)
        assert (now.accepted, now.rejected) == (saved[item["id"]].accepted, saved[item["id"]].rejected), item["id"]
