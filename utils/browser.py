"""An ipywidgets feature browser: pick a latent (by number or registry name) or type a word, see its dashboard.

Typing text looks up the latents that fire most strongly on the *last* token of the text (in a
sentence context if you give one, e.g. "We walked across the bridge"), and shows the strongest.
Dashboards are built on demand by :func:`utils.dashboard.build_dashboard` (about a second each) and
remembered, so going back to a latent is instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.feature_scan import FeatureStats
    from utils.sae import SparseAutoencoder


def latents_for_text(model: "TransformerBridge", sae: "SparseAutoencoder", text: str, k: int = 5) -> list[tuple[int, float]]:
    """The ``k`` latents with the largest activation on the last token of ``text``: [(latent, value)]."""
    from utils.feature_scan import encode_batch, tokenize_texts

    if not text.strip():
        raise ValueError("type a word or a short phrase first")
    ids = tokenize_texts(model.tokenizer, [text], max_len=256)[0]
    z = encode_batch(model, sae, torch.tensor([ids]))[0, -1]  # (d_sae,)
    values, latents = z.topk(k)
    return [(int(i), float(v)) for i, v in zip(latents, values) if v > 0]


def feature_browser(
    model: "TransformerBridge", sae: "SparseAutoencoder", stats: "FeatureStats", docs: Sequence[dict],
    names: dict[str, int] | None = None, build: Callable[..., Any] | None = None, start: int | None = None,
) -> Any:
    """A widget: a latent number box, a dropdown of named latents, a text box for a word, and the
    dashboard below. ``build`` defaults to the reference ``build_dashboard``; pass your own to browse
    with it. Returns the ``ipywidgets.VBox`` (display it, or read ``.children`` in tests)."""
    import ipywidgets as widgets

    from utils.dashboard import build_dashboard

    build = build or build_dashboard
    names = dict(names or {})
    label_of = {latent: name for name, latent in names.items()}
    cache: dict[int, str] = {}
    number = widgets.BoundedIntText(value=start if start is not None else next(iter(names.values()), 0),
                                    min=0, max=sae.cfg.d_sae - 1, description="latent")
    named = widgets.Dropdown(options=[("—", None)] + [(n, i) for n, i in names.items()], description="named")
    word = widgets.Text(placeholder="type a word or phrase, press Enter", description="text", continuous_update=False)
    status = widgets.HTML()
    out = widgets.HTML()

    def show(latent: int) -> None:
        if latent not in cache:
            status.value = f"<i>building dashboard for latent {latent}…</i>"
            cache[latent] = build(latent, model, sae, stats, docs, title=label_of.get(latent, "")).to_html()
        out.value = cache[latent]
        status.value = ""

    def on_number(change: dict) -> None:
        show(int(change["new"]))

    def on_named(change: dict) -> None:
        if change["new"] is not None:
            number.value = int(change["new"])

    def on_word(_: dict) -> None:
        try:
            found = latents_for_text(model, sae, word.value)
        except ValueError as error:
            status.value = f"<b>{error}</b>"
            return
        if not found:
            status.value = "<b>no latent fires on the last token of that text</b>"
            return
        listing = ", ".join(f"{i} ({v:.1f})" for i, v in found)
        number.value = found[0][0]
        show(found[0][0])  # also when the number did not change
        status.value = f"strongest on the last token of {word.value!r}: {listing}"

    number.observe(on_number, names="value")
    named.observe(on_named, names="value")
    word.observe(on_word, names="value")
    show(number.value)
    return widgets.VBox([widgets.HBox([number, named]), word, status, out])
