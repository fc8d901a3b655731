"""What a learner sees in a real kernel (issue 14, item 3): a passing check prints one plain line and nothing else
(no stray ``True``); a failing check shows one short message, with none of the checker's own frames, and the cell
still fails so *Run All* stops there; a crash in the learner's code names the learner's line."""

from __future__ import annotations

import re

import nbformat
import pytest
from nbclient import NotebookClient

SETUP = """
import torch
from utils.af import inside
from utils.checks import ch05 as check

def tier_differing_latents(z_free, z_paid, k=10):
    raise NotImplementedError("write this function")

def crashing(z_free, z_paid, k=10):
    means = {"free": z_free.mean(0), "paid": z_paid.mean(0)}
    return means["free"] - means["pay"]  # a typo: KeyError
"""


def _run(cells: list[str]) -> list[dict]:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in [SETUP, *cells]])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    return [cell.outputs for cell in nb.cells[1:]]


def _text(outputs: list[dict]) -> str:
    parts = []
    for out in outputs:
        parts += [out.get("text", ""), *out.get("traceback", []), str(out.get("data", {}).get("text/plain", ""))]
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(p for p in parts if p)).strip()


@pytest.mark.slow
def test_pass_and_failure_look_plain_in_a_real_kernel():
    passed, stub, crash = _run(["check.tier_differing_latents(inside.tier_differing_latents)",
                                "check.tier_differing_latents(tier_differing_latents)",
                                "check.tier_differing_latents(crashing)"])
    # a pass: one stream line, ASCII mark, no execute_result (the check returns None)
    assert [o["output_type"] for o in passed] == ["stream"]
    line = passed[0]["text"].strip()
    assert line.startswith("PASS Exercise 05.6") and "\n" not in line and line.split(" —")[0].isascii()
    # a failure: one error output, one line, the check's message, no frames from utils/
    for outputs, phrase in ((stub, "is not attempted yet"), (crash, "in your code, line")):
        assert [o["output_type"] for o in outputs] == ["error"], outputs
        text = _text(outputs)
        assert text.startswith("FAIL Exercise 05.6") and phrase in text, text
        assert "utils/checks" not in text and "Traceback" not in text and "File " not in text
        assert len(text.strip().splitlines()) == 1
