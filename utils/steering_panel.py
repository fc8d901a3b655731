"""An ipywidgets steering panel: pick a named latent (SAE clamp) or a concept vector, drag the strength,
type a prompt, and compare the unsteered and steered answers side by side.

The clamp strength is a multiple of the latent's largest activation on the corpus; the vector strength
is the norm of what is added to the residual stream. Each click generates two answers (≈ 5–10 s on a CPU).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    from utils.sae import SparseAutoencoder


def steering_hooks(sae: "SparseAutoencoder", choice: tuple[str, Any], strength: float,
                   latents: dict[str, Any], vectors: dict[str, "torch.Tensor"]) -> list:
    """The hooks for one panel setting: ``choice`` is ("clamp", latent name) or ("vector", concept)."""
    from utils.steering import additive_hook, clamp_hook

    kind, key = choice
    if strength == 0:
        return []
    if kind == "clamp":
        entry = latents[key]
        return [(sae.cfg.hook_name, clamp_hook(sae, entry.latent, strength * entry.corpus_max))]
    if kind == "vector":
        return [(sae.cfg.hook_name, additive_hook(vectors[key], strength))]
    raise ValueError(f"unknown steering kind {kind!r}; use 'clamp' or 'vector'")


def steering_panel(model: "TransformerBridge", sae: "SparseAutoencoder", latents: dict[str, Any],
                   vectors: dict[str, "torch.Tensor"], generate_fn: Callable[..., list[str]] | None = None) -> Any:
    """Build the panel. ``latents``: registry entries by name (``utils.named_latents.load_registry()``);
    ``vectors``: unit steering vectors by concept. Returns the ``ipywidgets.VBox``."""
    import ipywidgets as widgets

    from utils.generation import chat_prompt, generate
    from utils.steering import MAX_NEW_TOKENS, REPETITION_PENALTY

    generate_fn = generate_fn or generate
    options = [(f"clamp latent: {n} ({e.latent})", ("clamp", n)) for n, e in latents.items()]
    options += [(f"mean-difference vector: {c}", ("vector", c)) for c in vectors]
    choice = widgets.Dropdown(options=options, description="steer with", layout=widgets.Layout(width="420px"))
    strength = widgets.FloatSlider(value=2.0, min=0.0, max=4.0, step=0.25, description="strength",
                                   continuous_update=False)
    prompt = widgets.Text(value="What is your physical form?", description="prompt", layout=widgets.Layout(width="600px"))
    button = widgets.Button(description="Generate", button_style="primary")
    out = widgets.HTML()

    def on_choice(change: dict) -> None:
        if change["new"][0] == "clamp":
            strength.max, strength.step, strength.value = 4.0, 0.25, 2.0
            strength.description = "× corpus max"
        else:
            strength.max, strength.step, strength.value = 100.0, 5.0, 50.0
            strength.description = "coefficient"

    def on_click(_: Any) -> None:
        if not prompt.value.strip():
            out.value = "<b>type a prompt first</b>"
            return
        out.value = "<i>generating…</i>"
        text = chat_prompt(model.tokenizer, prompt.value)
        hooks = steering_hooks(sae, choice.value, strength.value, latents, vectors)
        kwargs = dict(max_new_tokens=MAX_NEW_TOKENS, repetition_penalty=REPETITION_PENALTY)
        plain = generate_fn(model, [text], **kwargs)[0]
        steered = generate_fn(model, [text], hooks=hooks, **kwargs)[0]
        cell = '<td style="vertical-align:top;padding:6px;border:1px solid #ddd;width:50%">{}</td>'
        out.value = ("<table style='width:100%'><tr><th>unsteered</th><th>steered</th></tr><tr>"
                     + cell.format(html.escape(plain)) + cell.format(html.escape(steered)) + "</tr></table>")

    choice.observe(on_choice, names="value")
    on_choice({"new": choice.value})
    button.on_click(on_click)
    return widgets.VBox([choice, strength, widgets.HBox([prompt, button]), out])
