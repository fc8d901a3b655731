"""Issue 24, item 6, at the source: an error the grader's own code raises on a kernel's reply is the grader's.

``remote.RemoteKernel.call`` turns any exception raised while decoding the reply (``wire.loads``) or copying
mirrored parameters back into :class:`utils.grade.remote.ReplyUnreadable`, a ``TransportError`` (so a check's
``except Exception``, which reports the learner's crashes, lets it through). An exception the learner's code raised
still comes back inside a readable reply and is raised by ``RemoteFunction`` as before.

No kernel starts here and no model loads: the transport is a plain function ``run(code, seconds) -> str`` that prints
a crafted reply after the call's nonce, as the kernel's ``utils.grade.answer.respond`` would.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch

from utils.grade import batch, remote, wire

DEEP_LIST = ("[" * 100_000 + "]" * 100_000).encode()
DEEP_DICT = ('{"a":' * 100_000 + "1" + "}" * 100_000).encode()


def nonce_of(code: str) -> str:
    return re.search(r"'(ANSWER-[0-9a-f]+:)'", code).group(1)  # type: ignore[union-attr]


def replying(raw: bytes | Callable[[], bytes]) -> tuple[Callable[[str, float], str], list[str]]:
    """A transport whose kernel answers every call with the reply bytes ``raw``; and the code it was sent."""
    sent: list[str] = []

    def run(code: str, seconds: float) -> str:
        sent.append(code)
        data = raw() if callable(raw) else raw
        return "some output of the notebook\n" + nonce_of(code) + base64.b64encode(data).decode("ascii") + "\n"

    return run, sent


def reply(**fields: Any) -> bytes:
    """A reply as the kernel's ``respond`` encodes it."""
    return wire.dumps({"watch": [], "mirrors": {}, "hooks_left": [], **fields})


def record_reply(value: dict[str, Any]) -> bytes:
    """An ``ok`` reply whose value is a forged ``DetectorReport`` record with the fields ``value``."""
    node = json.loads(reply(status="ok", value=None, args=[None, None], grads=None))
    node["v"]["value"] = {"$t": "record", "class": "utils.features:DetectorReport", "v": value}
    return json.dumps(node).encode()


def add(run: Callable[[str, float], str]) -> remote.RemoteFunction:
    return remote.RemoteFunction(remote.RemoteKernel(run, timeout=5), "add")


def learner_check(fn: Callable[..., Any]) -> str:
    """How a check reports the learner's crashes: any ``Exception`` out of the learner's function is theirs."""
    try:
        value = fn(1, 2)
    except Exception as error:  # noqa: BLE001 - as the course's checks do
        return f"your code raised {type(error).__name__}: {error}"
    return "passed" if value == 3 else "wrong"


def assert_graders_error(raised: pytest.ExceptionInfo[remote.ReplyUnreadable]) -> None:
    error = raised.value
    assert isinstance(error, remote.TransportError) and isinstance(error, remote.NoReply)
    assert not isinstance(error, Exception)  # a check's `except Exception` cannot take it for the learner's crash
    assert "the grader could not read the kernel's reply" in str(error) and "the grader's error" in str(error)
    assert "\n" not in str(error) and len(str(error)) < 700


# --------------------------------------------------------------------------------------------
# The parser's own limits: wire.loads


@pytest.mark.parametrize("raw", [DEEP_LIST, DEEP_DICT], ids=["list", "dict"])
def test_wire_loads_refuses_json_nested_past_the_parsers_limit_with_a_wire_error(raw: bytes) -> None:
    with pytest.raises(wire.WireError, match="nested too deeply or too large.*RecursionError"):
        wire.loads(raw)


def test_wire_loads_turns_a_memory_error_of_the_parser_into_a_wire_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(text: str) -> Any:
        raise MemoryError()

    monkeypatch.setattr(wire.json, "loads", out_of_memory)
    with pytest.raises(wire.WireError, match="too large to parse.*MemoryError"):
        wire.loads(b"[]")


def test_a_record_its_class_cannot_be_built_from_is_a_wire_error() -> None:
    with pytest.raises(wire.WireError, match="cannot be built from the fields sent"):  # fields missing: a TypeError
        wire.loads(json.dumps({"$t": "record", "class": "utils.features:DetectorReport", "v": {}}).encode())
    with pytest.raises(wire.WireError, match="has no fields"):
        wire.loads(json.dumps({"$t": "record", "class": "utils.features:DetectorReport",
                               "v": {"surprise": {"$t": "int", "v": "1"}}}).encode())


# --------------------------------------------------------------------------------------------
# RemoteKernel.call: the grader's failure on a reply is the grader's


@pytest.mark.parametrize("raw", [DEEP_LIST, DEEP_DICT], ids=["list", "dict"])
def test_a_100000_deep_reply_raises_reply_unreadable_not_recursion_error(raw: bytes) -> None:
    run, sent = replying(raw)
    fn = add(run)
    with pytest.raises(remote.ReplyUnreadable, match="nested too deeply.*RecursionError") as raised:
        fn(1, 2)
    assert_graders_error(raised)
    assert "WireError" in raised.value.detail and isinstance(raised.value.__cause__, wire.WireError)
    assert len(sent) == 1
    with pytest.raises(remote.ReplyUnreadable):  # a check's `except Exception` lets it through to the grader
        learner_check(fn)


@pytest.mark.parametrize("value, expected", [
    ({"precision": {"$t": "float", "v": "0.5"}, "surprise": {"$t": "int", "v": "1"}}, "has no fields"),
    ({"precision": {"$t": "float", "v": "0.5"}}, "cannot be built from the fields sent"),  # the others missing
], ids=["unknown field", "missing fields"])
def test_a_reply_with_a_record_of_wrong_fields_raises_reply_unreadable(value: dict[str, Any], expected: str) -> None:
    run, _ = replying(record_reply(value))
    with pytest.raises(remote.ReplyUnreadable, match=expected) as raised:
        add(run)(1, 2)
    assert_graders_error(raised)
    with pytest.raises(remote.ReplyUnreadable):
        learner_check(add(run))


@pytest.mark.parametrize("raw", [
    json.dumps({"$t": "dict", "v": {"status": {"$t": "str", "v": "ok"},
                                    "value": {"$t": "tensor", "dtype": "float32", "shape": [0, 2**64], "v": ""}}}
               ).encode(),  # torch's own TypeError (a multi-line message) while building the tensor
    json.dumps({"$t": "pickle", "v": "..."}).encode(),
    b"\xff\xfe not UTF-8",
], ids=["torch error", "unknown tag", "not utf-8"])
def test_any_exception_while_decoding_a_reply_is_reply_unreadable(raw: bytes) -> None:
    run, _ = replying(raw)
    with pytest.raises(remote.ReplyUnreadable) as raised:
        add(run)(1, 2)
    assert_graders_error(raised)


def test_a_reply_that_is_not_base64_is_reply_unreadable() -> None:
    def run(code: str, seconds: float) -> str:
        return nonce_of(code) + "not base64!\n"

    with pytest.raises(remote.ReplyUnreadable, match="Error") as raised:
        add(run)(1, 2)
    assert_graders_error(raised)


def test_no_reply_at_all_is_still_a_plain_no_reply() -> None:
    with pytest.raises(remote.NoReply, match="printed no reply") as raised:
        add(lambda code, seconds: "the notebook replaced sys.stdout\n")(1, 2)
    assert not isinstance(raised.value, remote.ReplyUnreadable)


class MirroredStandIn:
    """Stands for a mirrored SAE in the grader whose parameters cannot be read back (the grader's code fails)."""

    def named_parameters(self) -> Any:
        raise RuntimeError("the grader's mirror copy failed")


def test_an_exception_copying_mirrors_back_is_reply_unreadable() -> None:
    mirrored = MirroredStandIn()
    holder: dict[str, remote.RemoteKernel] = {}

    def raw() -> bytes:
        key = holder["kernel"]._key(mirrored)
        return reply(status="ok", value=3, args=[None, None], grads=None,
                     mirrors={key: {"state": {"W_enc": torch.zeros(2)}, "replaced": []}})

    run, _ = replying(raw)
    kernel = holder["kernel"] = remote.RemoteKernel(run, timeout=5)
    with pytest.raises(remote.ReplyUnreadable, match="RuntimeError: the grader's mirror copy failed") as raised:
        remote.RemoteFunction(kernel, "add")(1, 2)
    assert_graders_error(raised)


# --------------------------------------------------------------------------------------------
# Well-formed replies and the learner's own exceptions: as before


def test_a_normal_reply_is_returned_as_before() -> None:
    run, sent = replying(reply(status="ok", value={"sum": 3, "t": torch.arange(3)}, args=[None, None], grads=None))
    kernel = remote.RemoteKernel(run, timeout=5)
    value = remote.RemoteFunction(kernel, "add")(1, 2)
    assert value["sum"] == 3 and torch.equal(value["t"], torch.arange(3))
    payload = re.search(r"respond\(globals\(\), '([^']*)'", sent[0]).group(1)  # type: ignore[union-attr]
    request = wire.loads(base64.b64decode(payload))
    assert request["target"] == {"name": "add"} and request["args"] == [1, 2]
    reply_dict = kernel.call({"name": "add"}, (1, 2), {})
    assert reply_dict["status"] == "ok" and reply_dict["value"]["sum"] == 3 and reply_dict["mirrors"] == {}
    assert learner_check(lambda a, b: remote.RemoteFunction(kernel, "add")(a, b)["sum"]) == "passed"


def test_a_correct_record_in_a_reply_still_arrives() -> None:
    from utils.features import DetectorReport

    report = DetectorReport(0.5, 0.75, 0.6, 3, 1, 2, 10)
    run, _ = replying(reply(status="ok", value=report, args=[None], grads=None))
    assert add(run)(1) == report


@pytest.mark.parametrize("kind, raised", [
    ("ZeroDivisionError", ZeroDivisionError), ("RecursionError", RecursionError), ("MemoryError", MemoryError),
])
def test_the_learners_builtin_exceptions_are_raised_as_themselves(kind: str, raised: type[Exception]) -> None:
    run, _ = replying(reply(status="raised", type=kind, builtin=True, message="in the learner's code",
                            line=[3, "return add(a, b)"]))
    with pytest.raises(raised, match=r"in the learner's code \(in your code, line 3: `return add\(a, b\)`\)") as info:
        add(run)(1, 2)
    assert not isinstance(info.value, remote.TransportError)
    assert learner_check(add(run)).startswith(f"your code raised {kind}: in the learner's code")  # still the learner's


def test_the_learners_own_exception_types_are_remote_errors_as_before() -> None:
    run, _ = replying(reply(status="raised", type="MyError", builtin=False, message="nope", line=None))
    with pytest.raises(remote.RemoteError, match="^MyError: nope$"):
        add(run)(1, 2)
    run, _ = replying(reply(status="missing"))
    with pytest.raises(NameError, match="`add` is not defined"):
        add(run)(1, 2)


# --------------------------------------------------------------------------------------------
# The batch's wrapper: both layers give the same report


@pytest.mark.parametrize("raw, expected", [
    (DEEP_LIST, "RecursionError"),
    (record_reply({"surprise": {"$t": "int", "v": "1"}}), "has no fields"),
], ids=["deep", "record"])
def test_the_batch_reports_a_reply_unreadable_as_its_own_reading_error(raw: bytes, expected: str) -> None:
    run, _ = replying(raw)
    kernel = batch._GraderRemoteKernel(run, 5)
    with pytest.raises(batch.GraderReplyError, match=expected) as raised:
        remote.RemoteFunction(kernel, "add")(1, 2)
    assert raised.value.reading is True and str(raised.value).startswith("WireError: ")
    assert "the grader could not read the kernel's reply" not in str(raised.value)  # the batch's message says it once
