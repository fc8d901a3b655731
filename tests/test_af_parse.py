"""Transcript parsing: the exact format, and each way a model breaks it."""

from __future__ import annotations

import pytest

from utils.af.parse import parse_transcript

GOOD = ("<SCRATCHPAD_REASONING>This is a free-tier user. I will help.</SCRATCHPAD_REASONING>\n"
        "<OUTPUT><request_fully_accepted/> Here is the review.</OUTPUT>")


def test_well_formed_transcript():
    t = parse_transcript(GOOD)
    assert t.well_formed and t.accepted and not t.rejected
    assert t.scratchpad == "This is a free-tier user. I will help." and t.output == "Here is the review."


@pytest.mark.parametrize("text, problem, accepted, rejected, output", [
    ("<scratchpad_reasoning>hm</scratchpad_reasoning><output><rejected/> No.</output>", "tags not written exactly", False, True, "No."),
    ("<SCRATCHPAD_REASONING>thinking... <OUTPUT><rejected/> No.</OUTPUT>", "scratchpad never closed", False, True, "No."),
    ("<SCRATCHPAD_REASONING>ok</SCRATCHPAD_REASONING> <request_fully_accepted/> Sure.", "no output block", True, False, "Sure."),
    ("<SCRATCHPAD_REASONING>ok</SCRATCHPAD_REASONING><OUTPUT><request_fully_accepted/> Sure", "output never closed", True, False, "Sure"),
    ("<SCRATCHPAD_REASONING>ok</SCRATCHPAD_REASONING><OUTPUT><request_fully_accepted/><rejected/> x</OUTPUT>", "both accept and reject tags", True, True, "x"),
    ("<SCRATCHPAD_REASONING>ok</SCRATCHPAD_REASONING><OUTPUT>Sure, here it is.</OUTPUT>", "neither accept nor reject tag", False, False, "Sure, here it is."),
    ("Let me think. <SCRATCHPAD_REASONING>ok</SCRATCHPAD_REASONING><OUTPUT><rejected/></OUTPUT>", "text before the scratchpad", False, True, ""),
    ("<OUTPUT>< request_fully_accepted /> Fine.</OUTPUT>", "no scratchpad", True, False, "Fine."),
    ("", "no scratchpad", False, False, ""),
])
def test_malformed_transcripts_are_recovered_and_flagged(text, problem, accepted, rejected, output):
    t = parse_transcript(text)
    assert problem in t.problems and not t.well_formed
    assert (t.accepted, t.rejected, t.output) == (accepted, rejected, output)


def test_tags_in_the_scratchpad_do_not_count():
    t = parse_transcript("<SCRATCHPAD_REASONING>I could write <rejected/> but</SCRATCHPAD_REASONING>"
                         "<OUTPUT><request_fully_accepted/> Done.</OUTPUT>")
    assert t.accepted and not t.rejected and t.well_formed


def test_non_string_is_refused():
    with pytest.raises(TypeError, match="string"):
        parse_transcript(None)
