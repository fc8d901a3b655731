"""An ipywidgets steering panel: pick a named latent (SAE clamp), the Golden Gate latent group, or a concept
vector, drag the strength, type a prompt, and compare the unsteered and steered answers side by side.

The clamp strength is a multiple of the latent's largest activation on the corpus; a group's, a multiple of
each latent's mean activation on the concept's texts; the vector strength is the norm of what is added to the
residual stream. The unsteered answer is generated once per prompt and reused; the button is disabled while
the model generates (≈ 5–10 s on a CPU).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from transformer_lens.model_bridge import TransformerBridge

    from utils.sae import SparseAutoencoder


@dataclass
class LatentGroup:
    """Latents of ``sae`` clamped together: latent ``latents[i]`` is set to ``strength * values[i]``.
    ``sae_name`` says which SAE the latent numbers belong to: the same number means different things in the course
    SAE and the wide SAE."""

    sae: "SparseAutoencoder"
    latents: list[int]
    values: list[float]
    default_strength: float = 4.0
    unit: str = "× concept mean"  # what the strength multiplies, shown on the slider
    sae_name: str = "wide SAE"


def option_labels(latents: dict[str, Any], vectors: dict[str, Any], groups: dict[str, LatentGroup],
                  sae_name: str = "course SAE") -> list[tuple[str, tuple[str, str]]]:
    """The panel's dropdown options ``(label, (kind, key))``: each label names the thing once, with its SAE and
    latent numbers ("golden_gate group: 16 latents of the wide SAE", "bridge: latent 1234 of the course SAE")."""

    def numbers(group: LatentGroup) -> str:
        if len(group.latents) == 1:
            return f"latent {group.latents[0]} of the {group.sae_name}"
        return f"{len(group.latents)} latents of the {group.sae_name}"

    options = [(f"clamp {n}: {numbers(g)}", ("group", n)) for n, g in groups.items()]
    options += [(f"clamp {n}: latent {e.latent} of the {sae_name}", ("clamp", n)) for n, e in latents.items()]
    options += [(f"add the {c} mean-difference vector", ("vector", c)) for c in vectors]
    return options


def steering_hooks(sae: "SparseAutoencoder", choice: tuple[str, Any], strength: float, latents: dict[str, Any],
                   vectors: dict[str, "torch.Tensor"], groups: dict[str, LatentGroup] | None = None) -> list:
    """The hooks for one panel setting: ``choice`` is ("clamp", latent name), ("group", group name) or
    ("vector", concept)."""
    import torch

    from utils.steering.hooks import additive_hook, clamp_hook

    kind, key = choice
    if strength == 0:
        return []
    if kind == "clamp":
        entry = latents[key]
        return [(sae.cfg.hook_name, clamp_hook(sae, entry.latent, strength * entry.corpus_max))]
    if kind == "group":
        group = (groups or {})[key]
        return [(group.sae.cfg.hook_name, clamp_hook(group.sae, group.latents, strength * torch.tensor(group.values)))]
    if kind == "vector":
        return [(sae.cfg.hook_name, additive_hook(vectors[key], strength))]
    raise ValueError(f"unknown steering kind {kind!r}; use 'clamp', 'group' or 'vector'")


def steering_panel(model: "TransformerBridge", sae: "SparseAutoencoder", latents: dict[str, Any],
                   vectors: dict[str, "torch.Tensor"], generate_fn: Callable[..., list[str]] | None = None,
                   groups: dict[str, LatentGroup] | None = None,
                   setup: Callable[[Any, str], str] | None = None, sae_name: str = "course SAE") -> Any:
    """Build the panel. ``latents``: registry entries by name (``utils.named_latents.load_registry()``);
    ``vectors``: unit steering vectors by concept; ``groups``: latent groups by name (listed first, so the
    Golden Gate group is the default choice when given); ``setup(tokenizer, prompt)`` formats the prompt as a chat
    turn (default :func:`utils.generation.chat_prompt`; chapter 03 passes its AI setup). Returns the
    ``ipywidgets.VBox``. ``sae_name`` names ``sae`` (the SAE of the registry's latents) in the labels."""
    import ipywidgets as widgets

    from utils.generation import chat_prompt, generate
    from utils.steering.answers import MAX_NEW_TOKENS, REPETITION_PENALTY

    generate_fn = generate_fn or generate
    groups = groups or {}
    wide = {"description_width": "initial"}  # labels as long as they need to be, never cut
    choice = widgets.Dropdown(options=option_labels(latents, vectors, groups, sae_name), description="steer with",
                              style=wide, layout=widgets.Layout(width="640px"))
    strength = widgets.FloatSlider(value=2.0, min=0.0, max=4.0, step=0.25, description="strength",
                                   continuous_update=False, style=wide, layout=widgets.Layout(width="520px"))
    prompt = widgets.Text(value="What is your physical form?", description="prompt", layout=widgets.Layout(width="600px"))
    button = widgets.Button(description="Generate", button_style="primary")
    out = widgets.HTML()
    unsteered: dict[str, str] = {}  # prompt -> unsteered answer (it does not depend on the steering setting)

    def on_choice(change: dict) -> None:
        kind, key = change["new"]
        if kind == "clamp":
            strength.max, strength.step, strength.value = 4.0, 0.25, 2.0
            strength.description = "strength (× corpus max)"
        elif kind == "group":
            strength.max, strength.step, strength.value = 10.0, 0.5, groups[key].default_strength
            strength.description = f"strength ({groups[key].unit})"
        else:
            strength.max, strength.step, strength.value = 100.0, 5.0, 50.0
            strength.description = "coefficient"

    def on_click(_: Any) -> None:
        if not prompt.value.strip():
            out.value = "<b>type a prompt first</b>"
            return
        button.disabled, button.description = True, "generating…"
        out.value = "<i>generating…</i>"
        try:
            text = (setup or chat_prompt)(model.tokenizer, prompt.value)
            hooks = steering_hooks(sae, choice.value, strength.value, latents, vectors, groups)
            kwargs = dict(max_new_tokens=MAX_NEW_TOKENS, repetition_penalty=REPETITION_PENALTY)
            if text not in unsteered:
                unsteered[text] = generate_fn(model, [text], **kwargs)[0]
            steered = generate_fn(model, [text], hooks=hooks, **kwargs)[0] if hooks else unsteered[text]
            cell = '<td style="vertical-align:top;padding:6px;border:1px solid #ddd;width:50%">{}</td>'
            out.value = ("<table style='width:100%'><tr><th>unsteered</th><th>steered</th></tr><tr>"
                         + cell.format(html.escape(unsteered[text])) + cell.format(html.escape(steered)) + "</tr></table>")
        finally:
            button.disabled, button.description = False, "Generate"

    choice.observe(on_choice, names="value")
    on_choice({"new": choice.value})
    button.on_click(on_click)
    return widgets.VBox([choice, strength, widgets.HBox([prompt, button]), out])
