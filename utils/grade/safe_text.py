"""Text from a submission made safe to show on a teacher's terminal and to open in a spreadsheet.

Everything the grader reports can carry text a notebook chose: its file name, its exception messages, what its
functions returned. :func:`printable` removes what a terminal would obey instead of showing (escape sequences that
move the cursor, recolour or rewrite a row, a carriage return that overprints a line, other control characters,
bidirectional overrides that reorder a line) and replaces what cannot be written as UTF-8 (lone surrogates from an
undecodable file name). :func:`csv_cell` also keeps a spreadsheet from reading a cell as a formula.
"""

from __future__ import annotations

import re
from typing import Any

_ESCAPE_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, colours, erase line, ...
    r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)"  # OSC (window title, hyperlinks), ended by BEL or ST
    r"|\x1b[PX^_][^\x1b\n]*\x1b\\"  # DCS, SOS, PM, APC, ended by ST
    r"|\x1b[ -/]*[0-~]"  # the other escape sequences (ESC 7, ESC c, ESC ( B, ...)
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
# C0 controls but \t and \n (\r included), DEL, C1 controls, and the bidirectional marks, embeddings and overrides
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def printable(text: Any) -> str:
    """``text`` (made a ``str``) without terminal control: escape sequences, control characters other than newline
    and tab, bidirectional controls; lone surrogates become U+FFFD. Letters of any script are kept."""
    text = text if isinstance(text, str) else str(text)
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _CONTROL.sub("", text)
    return _SURROGATE.sub("\ufffd", text)


def csv_cell(value: Any) -> Any:
    """A CSV cell: strings made :func:`printable`, and prefixed with ``'`` when a spreadsheet would read them as a
    formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return); other values unchanged."""
    if not isinstance(value, str):
        return value
    text = printable(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
