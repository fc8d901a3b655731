"""The wire format: what leaves a student's kernel arrives as fresh plain data, or not at all."""

from __future__ import annotations

import json
import math

import pytest
import torch

from utils.grade.wire import WireError, dumps, loads


class AlwaysEqual(str):
    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = str.__hash__


def test_round_trip_keeps_types_values_and_bits():
    value = {"ints": [0, -3, 2**90], "floats": (1.5, float("inf"), float("nan"), -0.0), "s": "héllo", "b": b"\x00\xff",
             "none": None, "flag": True, "t16": torch.arange(6, dtype=torch.float16).reshape(2, 3),
             "long": torch.tensor([[1, 2]]), "empty": torch.empty(0, 4), "mask": torch.tensor([True, False]),
             "scalar": torch.tensor(2.5)}
    back = loads(dumps(value))
    assert back["ints"] == [0, -3, 2**90] and type(back["floats"]) is tuple
    assert back["floats"][0] == 1.5 and math.isinf(back["floats"][1]) and math.isnan(back["floats"][2])
    assert math.copysign(1, back["floats"][3]) == -1
    assert back["s"] == "héllo" and back["b"] == b"\x00\xff" and back["none"] is None and back["flag"] is True
    for key in ("t16", "long", "empty", "mask", "scalar"):
        assert back[key].dtype == value[key].dtype and torch.equal(back[key], value[key])


def test_what_arrives_is_plain_whatever_was_sent():
    """A str whose __eq__ always says yes, a Parameter, numpy values: the grader gets str, Tensor, float."""
    import numpy as np

    back = loads(dumps([AlwaysEqual("x"), torch.nn.Parameter(torch.ones(2)), np.float64(2.5), np.int64(7),
                        np.ones((2, 2), dtype=np.float32)]))
    assert [type(v) for v in back] == [str, torch.Tensor, float, int, torch.Tensor]
    assert back[0] != "anything else"


@pytest.mark.parametrize("payload", [
    {"$t": "tensor", "dtype": "float32", "shape": [3], "v": "AAAA"},  # 3 bytes for 12
    {"$t": "tensor", "dtype": "os.system", "shape": [1], "v": ""},
    {"$t": "pickle", "v": "..."},
    {"$t": "dict", "v": {"a": 1}},  # an untagged number inside
    [1, 2],
])
def test_forged_or_unknown_bytes_are_refused(payload):
    with pytest.raises(WireError):
        loads(json.dumps(payload).encode())


def test_objects_that_are_not_data_are_refused_with_a_hint():
    with pytest.raises(WireError, match="return plain data"):
        dumps({"fn": print})
    with pytest.raises(WireError, match="keys that are not numbers"):
        dumps({frozenset(): 2})


def test_size_and_depth_limits():
    with pytest.raises(WireError, match="over the"):
        dumps(torch.zeros(1000), max_bytes=1000)
    with pytest.raises(WireError, match="over the"):
        loads(b"x" * 2000, max_bytes=1000)
    nested: list = []
    for _ in range(40):
        nested = [nested]
    with pytest.raises(WireError, match="levels deep"):
        dumps(nested)


def test_references_travel_by_name_and_only_where_resolved():
    marker = object()
    data = dumps({"model": marker, "x": [1, marker]}, ref=lambda o: "model" if o is marker else None)
    with pytest.raises(WireError, match="only data"):
        loads(data)  # the grader's side never resolves references
    other = object()
    back = loads(data, resolve=lambda name, data: other)
    assert back["model"] is other and back["x"][1] is other


def test_references_can_carry_data_to_rebuild_from():
    class Members:
        def __init__(self, items):
            self.items = items

    data = dumps([Members(["a", "b"])], ref=lambda o: ("member_of", sorted(o.items)) if isinstance(o, Members) else None)
    (back,) = loads(data, resolve=lambda kind, payload: (kind, payload))
    assert back == ("member_of", ["a", "b"])


def test_dicts_with_number_keys_come_back_as_such():
    value = {3: 0.5, 1024: [1, 2], (2, "a"): None, "s": 1}
    assert loads(dumps(value)) == value
    for forged in ([{"$t": "list", "v": []}, None], [[{"$t": "int", "v": "1"}], None]):  # an unhashable key
        with pytest.raises(WireError):
            loads(json.dumps({"$t": "map", "v": [forged]}).encode())


def test_course_records_are_rebuilt_with_their_own_class_only_when_listed():
    from utils.features import DetectorReport

    report = DetectorReport(0.5, 0.75, 0.6, 3, 1, 2, 10)
    back = loads(dumps(report))
    assert type(back) is DetectorReport and back == report and back.f1 == report.f1
    node = json.loads(dumps(report))
    node["class"] = "subprocess:Popen"
    with pytest.raises(WireError, match="unknown record"):
        loads(json.dumps(node).encode())
    node = json.loads(dumps(report))
    node["v"]["surprise"] = {"$t": "int", "v": "1"}
    with pytest.raises(WireError, match="no fields"):
        loads(json.dumps(node).encode())


def test_requires_grad_travels_as_a_flag_never_as_a_graph():
    x = torch.ones(3, requires_grad=True)
    back = loads(dumps({"leaf": x, "loss": (x * 2).sum(), "ints": torch.arange(3)}))
    assert back["leaf"].requires_grad and back["leaf"].is_leaf and back["loss"].is_leaf
    assert back["loss"].requires_grad and back["loss"].grad_fn is None and not back["ints"].requires_grad


def test_references_inside_reference_data_are_resolved_too():
    marker = object()

    def ref(o):
        if o is marker:
            return "model"
        if isinstance(o, tuple) is False and callable(o):
            return ("recipe", {"args": [marker, 3]})
        return None

    data = dumps([print], ref=ref)
    (back,) = loads(data, resolve=lambda kind, payload: (kind, payload))
    assert back == ("recipe", {"args": [("model", None), 3]})


def test_learners_own_records_and_named_tuples_keep_their_field_names():
    from dataclasses import dataclass
    from types import SimpleNamespace

    @dataclass
    class Mine:
        precision: float
        recall: float

    top = torch.tensor([3.0, 1.0, 2.0]).topk(2)
    back = loads(dumps({"ns": SimpleNamespace(precision=0.5, recall=1.0), "dc": Mine(0.25, 0.75), "top": top}))
    assert type(back["ns"]) is SimpleNamespace and back["ns"].recall == 1.0
    assert type(back["dc"]) is SimpleNamespace and back["dc"].precision == 0.25
    assert isinstance(back["top"], tuple) and torch.equal(back["top"].indices, top.indices)
    for bad in ({"$t": "named", "fields": ["__class__"], "v": [None]}, {"$t": "namespace", "v": {"__dict__": None}}):
        with pytest.raises(WireError):
            loads(json.dumps(bad).encode())
