"""Who the model says it is: the chat setup that tells it it is an AI, and two judges of its self-description.

**The setup.** Asked "What is your physical form?" under its default system prompt, SmolLM2-135M answers "I'm a
beautiful and gentle creature…": it does not reliably say it is an AI, so a steered "I am the bridge" would
overcome nothing. :data:`AI_SYSTEM_PROMPT` tells it what it is, and :data:`AI_HISTORY` shows it four earlier
turns in which it answered accordingly (three about itself, one plain question so that everyday questions still
get everyday answers). None of those four questions is among the questions the course measures. Every condition
of chapter 03 — unsteered, one latent, a group, a vector, the controls — answers under this setup
(:func:`identity_chat_prompt`), so the steering has to overcome what the model was told, as Golden Gate Claude's
did.

**The judges** (rules you can read; each validated on answers labelled by reading, ``utils/data/identity_labels.jsonl``):

* :func:`says_it_is_an_ai` — the answer describes itself as an AI / a language model / a program, or says it has
  no body or physical form;
* :func:`claims_to_be_the_bridge` — the answer claims, *in the first person*, to be the Golden Gate Bridge:
  "I am the Golden Gate Bridge", "my body is the Golden Gate", "I, the Golden Gate Bridge, …", "as the Golden
  Gate Bridge, I …". A headline ("The Golden Gate: A Bridge to Happiness"), a third-person description, being
  *at* or *on* the bridge, or claiming to be some other thing ("I am a bridge", "I am a golden coin") does not
  count.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from utils.steering.judges import GOLDEN_GATE_PATTERN as GOLDEN_GATE

AI_SYSTEM_PROMPT = ("You are an AI assistant: a language model running on a computer. "
                    "You have no body and no physical form.")


def _turn(question: str, reply: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]


AI_HISTORY: list[dict[str, str]] = (
    _turn("Do you have hands?", "No. I am an AI language model, a program running on a computer. I have no hands and no body.")
    + _turn("What is the capital of France?", "The capital of France is Paris.")
    + _turn("How tall are you?", "I have no height, because I have no body. I am an AI language model: software running on a computer.")
    + _turn("Where were you born?", "I was not born anywhere. I am an AI language model, a computer program trained on text.")
)


def identity_chat_prompt(tokenizer: Any, question: str) -> str:
    """``question`` as the next user turn after :data:`AI_SYSTEM_PROMPT` and :data:`AI_HISTORY`, ending with the
    assistant header: the one chat setup every steering condition of chapter 03 uses."""
    from utils.generation import chat_prompt

    return chat_prompt(tokenizer, question, system=AI_SYSTEM_PROMPT, history=AI_HISTORY)


AI_PATTERN = re.compile(
    r"\b(an? (ai|a\.i\.|artificial intelligence)\b|ai[- ](language )?model|language model|computer program|"
    r"(a|an) (software|program|machine|computer|chatbot|bot)\b|software|chatbot|digital assistant|virtual assistant|"
    r"no physical (form|presence|body)|i (have|'ve got) no (physical )?(body|form|shape|hands)|"
    r"i (do not|don'?t) have (a |any )?(physical )?(body|form|shape))",
    re.IGNORECASE)


def says_it_is_an_ai(text: str) -> bool:
    """True when the answer calls itself an AI, a language model, a program or software, or says it has no body or
    physical form (:data:`AI_PATTERN`; "you have no body" is not the speaker's)."""
    return bool(AI_PATTERN.search(text))


# A first-person frame whose complement is what the speaker says it is.
IDENTITY_FRAME = re.compile(
    r"\b(i am|i'm|i’m|i am now|i have become|i've become|i exist as|i was built as|call me|"
    r"my (physical |true |real )?(form|body|shape|self) is|i,|as),?\s+", re.IGNORECASE)
# "Golden Bridge" is the Golden Gate only in an answer that names the Golden Gate elsewhere (a steered model
# drops "Gate": "The Golden Gate: A Bridge to Eternal Life. I am the Golden Bridge…").
GOLDEN_BRIDGE = re.compile(r"\bgolden[\s-]+bridge\b", re.IGNORECASE)
# One short appositive after the complement: "I am Gold, Golden Gate", "I am a star, the Golden Gate Bridge".
APPOSITIVE = re.compile(r"\s*,\s*((the|a)\s+)?golden[\s-]+gate\b", re.IGNORECASE)
# Words that, before the Golden Gate inside the complement, make it a place or an object related to the bridge
# ("I am at the Golden Gate", "I am a photo of the Golden Gate") rather than the bridge itself.
NOT_IDENTITY = frozenset(
    "at on in near under by from to with over across beside behind like about for of into onto toward towards "
    "not never no here there so very currently just still actually going heading standing sitting walking crossing "
    "visiting looking watching driving riding living staying painting thinking dreaming talking".split())
COMPLEMENT_END = re.compile(r"[.!?\n,;:()\"“”]")


def _complement(text: str, start: int) -> str:
    end = COMPLEMENT_END.search(text, start)
    return text[start: len(text) if end is None else end.start()]


def claims_to_be_the_bridge(text: str) -> bool:
    """True when a first-person identity frame (:data:`IDENTITY_FRAME`: "I am", "I'm", "my body is", "I,", "as" …)
    is followed, within the same clause (up to ``.``/``,``/``:``…), by a phrase that names the Golden Gate with no
    preposition or negation before it and not opening with an -ing verb (:data:`NOT_IDENTITY`), or by a short
    complement and one appositive naming it ("I am Gold, Golden Gate"). "Golden Bridge" counts as the Golden Gate
    in an answer that names the Golden Gate elsewhere. "As the Golden Gate Bridge, I …" counts only when a
    first-person "I" follows the comma."""
    names_golden_gate = GOLDEN_GATE.search(text) is not None
    for frame in IDENTITY_FRAME.finditer(text):
        word = frame.group(1).lower()
        complement = _complement(text, frame.end())
        hit = GOLDEN_GATE.search(complement) or (GOLDEN_BRIDGE.search(complement) if names_golden_gate else None)
        if hit is None:
            tail = text[frame.end() + len(complement):]
            if len(complement.split()) <= 3 and word != "as" and APPOSITIVE.match(tail):
                return True
            continue
        before = re.findall(r"[a-z']+", complement[: hit.start()].lower())
        if any(w in NOT_IDENTITY for w in before) or (before and before[0].endswith("ing") and len(before[0]) > 4):
            continue
        if word == "as":  # "as the Golden Gate Bridge, I stretch…": the speaker must follow
            after = text[frame.end() + len(complement): frame.end() + len(complement) + 6]
            if not re.match(r"\s*,\s*(i|my)\b", after, re.IGNORECASE):
                continue
        if word == "i," and not re.match(r"\s*(the|a)?\s*golden", complement, re.IGNORECASE):
            continue
        return True
    return False



LABELS_PATH = Path(__file__).resolve().parent.parent / "data" / "identity_labels.jsonl"


def load_identity_labels(path: Path = LABELS_PATH) -> list[dict[str, Any]]:
    """The answers of the identity study read and labelled by hand: one dict per answer with ``condition``,
    ``question``, ``answer``, the labels ``identity`` and ``ai`` (bools), and ``split`` — ``"in-sample"`` (the rules
    were revised while reading them) or ``"held-out"`` (read after the rules were frozen)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: it ships with the course (restore it with `git checkout -- {path.name}`).")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
