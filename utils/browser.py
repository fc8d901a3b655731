"""An ipywidgets feature browser: pick a latent (by number or registry name) or type a word, see its dashboard.

Typing text looks up the latents that fire on the *last* token of the text (in a sentence context if
you give one, e.g. "We walked across the bridge"), ranked by activation times specificity (latents
that fire on a large share of all tokens are down-weighted), and shows the best.
Dashboards are built on demand by :func:`utils.dashboard.build_dashboard` (about a second each) and
remembered, so going back to a latent is instant.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.feature_scan import FeatureStats
    from utils.sae import SparseAutoencoder


QUERY_LEAD = "Text: "


def specificity(density: torch.Tensor) -> torch.Tensor:
    """How much a search trusts a latent's activation: ``log10(1 / density) / 2``.

    1 for a latent that fires on 1 % of tokens, 1.5 at 0.1 %, 0.37 at 18 % (a dense latent that fires on
    almost anything would otherwise win every query). ``density`` is clamped at 1e-6."""
    return (-density.clamp_min(1e-6).log10()) / 2


def latents_for_text(model: "TransformerBridge", sae: "SparseAutoencoder", text: str, k: int = 5,
                     density: torch.Tensor | None = None, lead: str = QUERY_LEAD) -> list[tuple[int, float]]:
    """Up to ``k`` latents for the last token of ``text``, best first: [(latent, activation)].

    The text is read after the neutral lead-in ``lead`` ("Text: "): the first position after
    ``<|im_start|>`` has latents of its own (they peak on the first word of documents), and a bare
    query like "phone" would land on them. With ``density`` (the corpus scan's, ``(d_sae,)``) latents
    are ranked by ``activation × specificity(density)``, so a concept query lands on a concept latent
    rather than on one that fires on a fifth of all tokens; without it, by activation."""
    from utils.feature_scan import encode_batch, tokenize_texts

    if not text.strip():
        raise ValueError("type a word or a short phrase first")
    ids = tokenize_texts(model.tokenizer, [lead + text.strip()], max_len=256)[0]
    z = encode_batch(model, sae, torch.tensor([ids]))[0, -1]  # (d_sae,)
    score = z * specificity(density.to(z.device)) if density is not None else z
    order = score.topk(k).indices
    return [(int(i), float(z[i])) for i in order if z[i] > 0]


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
    unnamed = -1  # the dropdown's "—" entry: the latent shown has no name
    named = widgets.Dropdown(options=[("—", unnamed)] + [(n, i) for n, i in names.items()], description="named",
                             value=number.value if number.value in label_of else unnamed)
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
        latent = int(change["new"])
        named.value = latent if latent in label_of else unnamed  # the dropdown always names what is shown
        show(latent)

    def on_named(change: dict) -> None:
        if change["new"] != unnamed and change["new"] != number.value:
            number.value = int(change["new"])

    def on_word(_: dict) -> None:
        try:
            found = latents_for_text(model, sae, word.value, density=stats.density)
        except ValueError as error:
            status.value = f"<b>{html.escape(str(error))}</b>"
            return
        if not found:
            status.value = "<b>no latent fires on the last token of that text</b>"
            return
        listing = ", ".join(f"{i} ({v:.1f})" + (f" {label_of[i]}" if i in label_of else "") for i, v in found)
        number.value = found[0][0]
        show(found[0][0])  # also when the number did not change
        status.value = html.escape(f"best on the last token of {word.value!r} (activation × specificity; "
                                   f"activations in brackets): {listing}")

    number.observe(on_number, names="value")
    named.observe(on_named, names="value")
    word.observe(on_word, names="value")
    show(number.value)
    return widgets.VBox([widgets.HBox([number, named]), word, status, out])
