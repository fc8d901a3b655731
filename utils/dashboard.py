"""Offline HTML for latent dashboards: coloured tokens, a logit table, a density histogram.

A dashboard is plain HTML, no JavaScript and no SVG: its coloured examples are ``<span>``s whose
background opacity is the activation (:func:`token_spans_html`; hover a token for its value). So it
renders wherever HTML does: a notebook output, an ``ipywidgets.HTML`` in the feature browser (which
never runs scripts), a static HTML page of the reference notebooks, GitHub.

For the interactive circuitsvis view of a few rows, :func:`colored_tokens_html` renders from the
package's inline bundle (``circuitsvis/dist/cdn/iife.js``): circuitsvis's own Jupyter display first
probes google.com (a one-second stall per render offline) and its ``str()`` form loads JavaScript
from a CDN, which renders blank offline. One ``<script>`` carries the 1.3 MB bundle once for all the
rows it renders. Nothing here touches the network.
"""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

    from utils.feature_scan import FeatureStats
    from utils.sae import SparseAutoencoder


@lru_cache(maxsize=1)
def circuitsvis_bundle() -> str:
    """The JavaScript bundle shipped inside the circuitsvis package (defines ``CircuitsVis``)."""
    import circuitsvis

    path = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
    if not path.exists():
        raise FileNotFoundError(f"circuitsvis has no inline bundle at {path}; reinstall it with `make lab`.")
    return path.read_text(encoding="utf-8").replace("</script>", "")


def visible_token(token: str) -> str:
    """Make whitespace visible in a token string (GPT-2-style byte tokens use Ġ for space, Ċ for newline)."""
    return token.replace("Ġ", " ").replace("Ċ", "⏎").replace("\n", "⏎")


def colored_tokens_html(rows: Sequence[tuple[Sequence[str], Sequence[float]]], max_value: float | None = None,
                        labels: Sequence[str] | None = None) -> str:
    """One circuitsvis ``ColoredTokens`` view per ``(tokens, values)`` row, all in one HTML fragment
    with the bundle inlined once. ``max_value`` fixes the colour scale across rows (default: the
    largest value in any row)."""
    if not rows:
        return "<p><em>no examples: this latent never fired on the scanned text</em></p>"
    top = max_value if max_value is not None else max((max(v) for _, v in rows if len(v)), default=1.0)
    top = float(top) if top and top > 0 else 1.0
    base = "cv-" + uuid.uuid4().hex[:10]
    divs, calls = [], []
    for i, (tokens, values) in enumerate(rows):
        if len(tokens) != len(values):
            raise ValueError(f"row {i}: {len(tokens)} tokens but {len(values)} values")
        label = f'<span style="font:12px monospace;color:#666;min-width:4em;display:inline-block">{html.escape(labels[i])}</span>' if labels else ""
        divs.append(f'<div style="display:flex;align-items:center">{label}<div id="{base}-{i}"></div></div>')
        props = {"tokens": [visible_token(t) for t in tokens], "values": [float(v) for v in values], "minValue": 0.0, "maxValue": top}
        calls.append(f'CircuitsVis.render("{base}-{i}", CircuitsVis.ColoredTokens, {json.dumps(props)});')
    script = f'<script type="module">\n{circuitsvis_bundle()}\n{chr(10).join(calls)}\n</script>'
    return "\n".join(divs) + script


EXAMPLE_ROW_CLASS = "sae-example"  # the browser test counts rows by this class


def token_spans_html(rows: Sequence[tuple[Sequence[str], Sequence[float]]], max_value: float | None = None,
                     labels: Sequence[str] | None = None) -> str:
    """Each ``(tokens, values)`` row as one line of ``<span>``s, no JavaScript.

    A token's background is orange with opacity ``clip(value / max_value, 0, 1)``; its ``title`` (shown on
    hover) is the value. ``max_value`` fixes the scale across rows (default: the largest value in any row),
    so equal colours mean equal activations within one dashboard."""
    if not rows:
        return "<p><em>no examples: this latent never fired on the scanned text</em></p>"
    top = max_value if max_value is not None else max((max(v) for _, v in rows if len(v)), default=1.0)
    top = float(top) if top and top > 0 else 1.0
    lines = []
    for i, (tokens, values) in enumerate(rows):
        if len(tokens) != len(values):
            raise ValueError(f"row {i}: {len(tokens)} tokens but {len(values)} values")
        label = (f'<span style="color:#666;min-width:4em;display:inline-block">{html.escape(labels[i])}</span>'
                 if labels else "")
        spans = "".join(
            f'<span title="{float(v):.3f}" style="background:rgba(255,140,0,{min(max(float(v) / top, 0.0), 1.0):.3f});'
            f'white-space:pre">{html.escape(visible_token(t))}</span>'
            for t, v in zip(tokens, values)
        )
        lines.append(f'<div class="{EXAMPLE_ROW_CLASS}" style="font:13px monospace;margin:2px 0">{label}{spans}</div>')
    return "\n".join(lines)


def logit_table_html(top: Sequence[tuple[str, float]], bottom: Sequence[tuple[str, float]]) -> str:
    """Two columns: the tokens a direction promotes most and suppresses most, with their logit effects."""
    def cells(pairs: Sequence[tuple[str, float]], colour: str) -> str:
        return "".join(
            f'<tr><td style="font-family:monospace;text-align:left">{html.escape(visible_token(t))!s}</td>'
            f'<td style="color:{colour};text-align:right">{v:+.2f}</td></tr>' for t, v in pairs
        )
    return (
        '<div style="display:flex;gap:24px">'
        f'<table><tr><th colspan=2>promotes</th></tr>{cells(top, "#1a7f37")}</table>'
        f'<table><tr><th colspan=2>suppresses</th></tr>{cells(bottom, "#cf222e")}</table></div>'
    )


HISTOGRAM_CLASS = "sae-histogram"


def histogram_html(counts: Sequence[int], edges: Sequence[float], width: int = 320, height: int = 80,
                   x_label: str = "activation (log scale)") -> str:
    """A bar chart of ``counts`` over bins ``edges`` (len(counts) + 1) as plain ``<div>``s.

    Not SVG: JupyterLab's sanitiser strips ``<svg>`` from HTML it did not produce in this session (a
    reference notebook opened from disk), leaving only the bars' tooltips as a wall of text. Each bar's
    height is ``count / max(counts)`` of ``height`` pixels; hover it for its bin and count."""
    counts = [int(c) for c in counts]
    peak = max(counts, default=0) or 1
    bar_w = max(width // max(len(counts), 1) - 1, 1)
    bars = "".join(
        f'<div title="{edges[i]:.3g}–{edges[i + 1]:.3g}: {c}" style="width:{bar_w}px;height:{round(height * c / peak)}px;'
        f'background:#4c72b0;margin-right:1px"></div>'
        for i, c in enumerate(counts)
    )
    axis = (f'<div style="display:flex;justify-content:space-between;width:{width}px;font-size:10px;color:#555">'
            f'<span>{edges[0]:.2g}</span><span>{html.escape(x_label)}</span><span>{edges[-1]:.3g}</span></div>')
    return (f'<div class="{HISTOGRAM_CLASS}"><div style="display:flex;align-items:flex-end;height:{height}px;'
            f'width:{width}px;border-bottom:1px solid #999">{bars}</div>{axis}</div>')


@dataclass
class Dashboard:
    """Everything one latent's dashboard shows. ``examples``: (tokens, activations) windows around the
    top-activating tokens; ``top_logits``/``bottom_logits``: (token, effect) pairs; ``hist``: counts
    of the latent's non-zero activations in the bins ``hist_edges``; ``density``: fraction of tokens
    on which it fires."""

    latent: int
    examples: list[tuple[list[str], list[float]]]
    top_logits: list[tuple[str, float]]
    bottom_logits: list[tuple[str, float]]
    hist: list[int]
    hist_edges: list[float]
    density: float
    title: str = ""
    example_labels: list[str] = field(default_factory=list)

    def to_html(self) -> str:
        import math

        head = f"latent {self.latent}" + (f" — {html.escape(self.title)}" if self.title else "")
        density = f"fires on {100 * self.density:.3f} % of tokens (log10 density {math.log10(self.density + 1e-7):.2f})"
        return (
            f'<div style="border:1px solid #ddd;padding:8px;margin:6px 0"><h4 style="margin:2px 0">{head}</h4>'
            f'<div style="color:#555;font-size:12px">{density}</div>'
            '<div style="display:flex;gap:24px;flex-wrap:wrap;margin:6px 0">'
            f'<div><b>activation histogram</b><br>{histogram_html(self.hist, self.hist_edges)}</div>'
            f'<div><b>direct logit effects</b>{logit_table_html(self.top_logits, self.bottom_logits)}</div></div>'
            f'<b>top-activating examples</b> <span style="color:#555;font-size:12px">(one per document: context, '
            f'the peak token, then {DEFAULT_AFTER} tokens after it)</span>'
            f'{token_spans_html(self.examples, labels=self.example_labels or None)}</div>'
        )

    def _repr_html_(self) -> str:
        return self.to_html()


DEFAULT_BEFORE, DEFAULT_AFTER = 10, 3


def build_dashboard(
    latent: int, model: "TransformerBridge", sae: "SparseAutoencoder", stats: "FeatureStats", docs: Sequence[dict],
    n_examples: int = 6, n_logits: int = 8, before: int = DEFAULT_BEFORE, after: int = DEFAULT_AFTER, title: str = "",
) -> Dashboard:
    """Assemble latent ``latent``'s dashboard (the reference for exercise 02.5).

    * examples: the ``n_examples`` documents of ``stats.top_docs[latent]``, re-encoded, each shown as
      :func:`~utils.features.context_window` around ``stats.top_pos`` with the latent's activation on
      every token of the window;
    * logits: :func:`~utils.features.logit_effects` of the *decoder* row ``W_dec[latent]`` (what the
      latent writes), its ``n_logits`` top and bottom tokens;
    * histogram and density: from ``stats`` (the whole corpus)."""
    from utils.feature_scan import HIST_EDGES, encode_batch, tokenize_texts
    from utils.features import context_window, logit_effects, top_and_bottom

    if not 0 <= latent < sae.cfg.d_sae:
        raise IndexError(f"latent must be in [0, {sae.cfg.d_sae}), got {latent}")
    tok = model.tokenizer
    examples, labels = [], []
    for doc, pos, value in zip(stats.top_docs[latent].tolist(), stats.top_pos[latent].tolist(),
                               stats.top_values[latent].tolist()):
        if doc < 0 or len(examples) == n_examples:
            break
        ids = tokenize_texts(tok, [docs[doc]["text"]], stats.max_len)[0]
        acts = encode_batch(model, sae, torch.tensor([ids]))[0, :, latent]  # (pos,)
        window, _ = context_window([tok.decode([i]) for i in ids], pos, before, after)
        start = max(0, pos - before)
        examples.append((window, [float(a) for a in acts[start : start + len(window)]]))
        labels.append(f"{value:.2f}")
    with torch.no_grad():
        effects = logit_effects(sae.W_dec[latent].to(model.W_U.device), model.ln_final.weight, model.W_U).cpu()
    tv, ti, bv, bi = top_and_bottom(effects, n_logits)
    def names(ids: list[int]) -> list[str]:
        return [tok.decode([i]) for i in ids]

    return Dashboard(
        latent=latent, examples=examples,
        top_logits=list(zip(names(ti.tolist()), tv.tolist())), bottom_logits=list(zip(names(bi.tolist()), bv.tolist())),
        hist=stats.hist[latent].tolist(), hist_edges=HIST_EDGES.tolist(), density=float(stats.density[latent]),
        title=title, example_labels=labels,
    )


def dashboard_view(latent: int, model: "TransformerBridge", sae: "SparseAutoencoder", stats: "FeatureStats",
                   docs: Sequence[dict], **options: Any) -> Any:
    """Latent ``latent``'s dashboard, ready to ``display``: the HTML of :func:`build_dashboard` (same ``options``),
    not the :class:`Dashboard` record. For chapters after 02, which show dashboards without rebuilding them (and
    still can in a student build where exercise 02.5's reference is hidden)."""
    from IPython.display import HTML

    return HTML(build_dashboard(latent, model, sae, stats, docs, **options).to_html())


def split_sankey(edges: Sequence[tuple[tuple[int, int], tuple[int, int], float]], labels: dict[tuple[int, int], str],
                 title: str = "", highlight: tuple[int, int] | None = None):
    """A Sankey diagram of feature splitting across nested widths.

    ``edges``: ``((width, parent), (wider width, child), share of the root's tokens)``; ``labels``: text for
    each ``(width, latent)`` node; ``highlight``: a node drawn in orange (e.g. the Golden Gate latent).
    Returns a plotly Figure (plotly renders offline in JupyterLab)."""
    import plotly.graph_objects as go

    nodes = sorted({n for e in edges for n in e[:2]}, key=lambda n: (n[0], n[1]))
    index = {n: i for i, n in enumerate(nodes)}
    widths = sorted({w for w, _ in nodes})
    colours = ["#c0392b" if n == highlight else "#5b7db1" for n in nodes]
    figure = go.Figure(go.Sankey(
        arrangement="snap",
        node={"label": [labels.get(n, f"{n[0]}: #{n[1]}") for n in nodes], "color": colours, "pad": 12,
              "x": [0.02 + 0.96 * widths.index(w) / max(1, len(widths) - 1) for w, _ in nodes]},
        link={"source": [index[a] for a, _, _ in edges], "target": [index[b] for _, b, _ in edges],
              "value": [max(v, 1e-4) for _, _, v in edges],
              "customdata": [f"{100 * v:.1f} % of the root's tokens" for _, _, v in edges],
              "hovertemplate": "%{customdata}<extra></extra>"},
    ))
    figure.update_layout(title=title, height=460, font_size=11, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure
