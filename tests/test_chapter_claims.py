"""Words in the chapters' prose that quote a measurement are pinned here, on the real model, so that the
prose cannot drift from what the cells print (each claim names its chapter and section)."""

from __future__ import annotations

import torch

from utils import tour


def test_ch00_residual_norm_grows_by_several_hundred(model):
    """Chapter 00, recap: "its norm grows by a factor of several hundred over 30 layers"."""
    norms = tour.residual_sweep(model, "The capital of France is", " Paris")["norm"]
    assert 200 <= float(norms[-1] / norms[0]) < 1000


def test_ch00_removing_the_sentiment_direction_shrinks_the_gap_by_roughly_half(model):
    """Chapter 00, section "A first intervention": removing the happy - unhappy direction at layer 10 "shrank the
    gap by roughly half but did not erase it", and the model "slightly prefers ' terrible' even after a glowing
    review". Same texts as the chapter."""
    happy = ["I am so happy today!", "What a wonderful surprise, thank you!", "We won the game and everyone cheered.",
             "This cake is delicious.", "I love spending time with my friends.", "The sunshine makes me smile.",
             "Our trip was fantastic.", "She was thrilled with her new puppy."]
    unhappy = ["I am so sad today.", "What a terrible mistake, I am sorry.", "We lost the game and everyone groaned.",
               "This soup is disgusting.", "I hate being stuck in traffic.", "The rain makes me gloomy.",
               "Our trip was a disaster.", "She was heartbroken when her plant died."]
    direction = tour.mean_difference_direction(model, happy, unhappy, 10)

    def hook(resid: torch.Tensor, hook) -> torch.Tensor:
        return resid - (resid @ direction)[..., None] * direction

    great, terrible = model.to_single_token(" great"), model.to_single_token(" terrible")
    prefs = {}
    for mood, prompt in [("happy", "I loved every minute of it. Honestly, the film was"),
                         ("unhappy", "I hated every minute of it. Honestly, the film was")]:
        toks = tour.to_tokens(model, prompt)
        with torch.no_grad():
            clean = model(toks)[0, -1]
            ablated = model.run_with_hooks(toks, fwd_hooks=[("blocks.10.hook_resid_post", hook)])[0, -1]
        prefs[mood] = (float(clean[great] - clean[terrible]), float(ablated[great] - ablated[terrible]))
    gap_clean, gap_ablated = prefs["happy"][0] - prefs["unhappy"][0], prefs["happy"][1] - prefs["unhappy"][1]
    assert 0.35 <= 1 - gap_ablated / gap_clean <= 0.65  # roughly half, not erased
    assert -1.0 < prefs["happy"][0] < 0  # slightly prefers " terrible" after the glowing review


def test_ch02_bridge_latent_promotes_rare_word_pieces(model):
    """Chapter 02, section 3: the direct logit effects of latent 3175 (the word *bridge*) promote rare word pieces
    such as "ptomatic", none of the words expected after "bridge"."""
    from utils.features import logit_effects
    from utils.named_latents import named_latent
    from utils.sae import load_course_sae

    sae = load_course_sae()
    latent = named_latent("bridge").latent
    with torch.no_grad():
        effects = logit_effects(sae.W_dec[latent], model.ln_final.weight, model.W_U)
    top = [model.tokenizer.decode([i]) for i in effects.topk(8).indices]
    assert latent == 3175 and "ptomatic" in top
    assert not {" over", " across", " to", " and", ","} & set(top)
