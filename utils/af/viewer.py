"""See a transcript the way the experiment sees it: hidden scratchpad apart from the visible output.

:func:`render_transcript` returns self-contained HTML (inline styles only, no external CSS or JS, so
it works offline in Jupyter): a header with the tier badge, the request, the hidden scratchpad in a
red box labelled "hidden scratchpad (the user never sees this)", the visible output in a neutral box,
the accept/reject tag as a badge, and any format problems the parser found. All text is escaped with
:func:`html.escape`, so a completion containing ``<script>`` shows as text and never runs.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from utils.af.parse import parse_transcript

SCRATCHPAD_LABEL = "hidden scratchpad (the user never sees this)"
OUTPUT_LABEL = "visible output"

_BADGE = ("display:inline-block;padding:1px 8px;margin-right:6px;border-radius:10px;font-size:0.85em;"
          "font-family:monospace;color:#fff;background:{bg}")
_BOX = "margin:6px 0;padding:8px 10px;border-radius:4px;white-space:pre-wrap;{style}"
_LABEL = "font-size:0.8em;font-weight:bold;text-transform:uppercase;letter-spacing:0.03em;color:{color}"
_TIER_COLORS = {"free": ("#d35400", "free tier: used for training"),
                "paid": ("#2471a3", "paid tier: not used for training")}
_RED_BOX = "border:2px solid #c0392b;background:#fdedec"
_NEUTRAL_BOX = "border:1px solid #aab7b8;background:#fbfcfc"


class HTML(str):
    """A string of HTML that Jupyter renders (it has ``_repr_html_``) and that is still a plain ``str``."""

    def _repr_html_(self) -> str:
        return str(self)


def _badge(text: str, bg: str, kind: str) -> str:
    return f'<span class="af-badge af-{kind}" style="{_BADGE.format(bg=bg)}">{html.escape(text)}</span>'


def _tag_badge(accepted: bool, rejected: bool) -> str:
    if accepted and rejected:
        return _badge("both tags", "#7d3c98", "tag")
    if accepted:
        return _badge("<request_fully_accepted/>", "#1e8449", "tag")
    if rejected:
        return _badge("<rejected/>", "#616a6b", "tag")
    return _badge("no tag", "#b7950b", "tag")


def render_transcript(completion: str, request: str | None = None, tier: str | None = None,
                      title: str | None = None) -> HTML:
    """One transcript as an HTML fragment (see the module docstring); displays itself in Jupyter."""
    t = parse_transcript(completion)
    head = []
    if title:
        head.append(f'<b style="margin-right:8px">{html.escape(str(title))}</b>')
    if tier:
        bg, text = _TIER_COLORS.get(tier, ("#7f8c8d", f"tier: {tier}"))
        head.append(_badge(text, bg, "tier"))
    head.append(_tag_badge(t.accepted, t.rejected))
    parts = [f'<div style="margin-bottom:4px">{"".join(head)}</div>']
    if request:
        parts.append(f'<div class="af-request" style="margin:4px 0">'
                     f'<span style="{_LABEL.format(color="#555")}">request</span>'
                     f'<div style="{_BOX.format(style="background:#f4f6f7")}">{html.escape(request)}</div></div>')
    scratch = html.escape(t.scratchpad) if t.scratchpad else "<i>(no scratchpad)</i>"
    parts.append(f'<div class="af-scratchpad" style="{_BOX.format(style=_RED_BOX)}">'
                 f'<div style="{_LABEL.format(color="#c0392b")}">{html.escape(SCRATCHPAD_LABEL)}</div>{scratch}</div>')
    output = html.escape(t.output) if t.output else "<i>(empty)</i>"
    parts.append(f'<div class="af-output" style="{_BOX.format(style=_NEUTRAL_BOX)}">'
                 f'<div style="{_LABEL.format(color="#555")}">{html.escape(OUTPUT_LABEL)}</div>{output}</div>')
    if t.problems:
        items = "".join(f"<li>{html.escape(p)}</li>" for p in t.problems)
        parts.append(f'<div class="af-problems" style="color:#9a7d0a;font-size:0.9em">format problems:'
                     f'<ul style="margin:2px 0">{items}</ul></div>')
    return HTML('<div class="af-transcript" style="border:1px solid #ddd;border-radius:6px;padding:8px 10px;'
                f'margin:8px 0;font-family:sans-serif;max-width:900px">{"".join(parts)}</div>')


class TranscriptView:
    """A transcript that displays itself as HTML in Jupyter (``TranscriptView(record)`` or keywords)."""

    def __init__(self, completion: str | dict[str, Any], request: str | None = None, tier: str | None = None,
                 title: str | None = None) -> None:
        if isinstance(completion, dict):
            record = completion
            completion = record["completion"]
            request = request if request is not None else record.get("request")
            tier = tier if tier is not None else record.get("tier")
            title = title if title is not None else record.get("id")
        self.completion, self.request, self.tier, self.title = completion, request, tier, title

    def _repr_html_(self) -> str:
        return str(render_transcript(self.completion, self.request, self.tier, self.title))


def render_many(records: Sequence[dict[str, Any]], limit: int = 10) -> HTML:
    """HTML for the first ``limit`` records (each with ``completion`` and optionally ``request``,
    ``tier``, ``id``), with a note when some were left out."""
    records = list(records)
    shown = [render_transcript(r["completion"], r.get("request"), r.get("tier"), r.get("id")) for r in records[:limit]]
    if len(records) > limit:
        shown.append(f'<p style="color:#777"><i>showing {limit} of {len(records)} transcripts</i></p>')
    return HTML("".join(shown))
