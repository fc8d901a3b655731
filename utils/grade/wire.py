"""What crosses from a student's kernel to the grader: plain data, re-built from bytes, never objects.

The grader never trusts a Python object that came out of the student's process. A kernel answers with
:func:`dumps` of its result; the grader :func:`loads` it into *fresh* objects of a closed set of types:

* ``None``, ``bool``, ``int``, ``float``, ``str``, ``bytes``;
* ``list``, ``tuple``, ``dict`` (string keys) of those;
* ``torch.Tensor`` (dense, CPU; dtype, shape, raw little-endian bytes, and whether it requires grad);
* dicts whose keys are numbers, strings or tuples of them (sent as a list of pairs);
* **records**: instances of the few course dataclasses in :data:`RECORD_TYPES` (a detector report, a
  dashboard, corpus statistics), rebuilt field by field with the class's own constructor; any other
  dataclass or ``SimpleNamespace`` arrives as a ``SimpleNamespace`` of its fields, and a named tuple (or
  ``torch.return_types.topk``) as a named tuple with the same field names.

A ``str`` subclass whose ``__eq__`` always answers True, a tensor subclass, a patched ``torch.allclose``
in the kernel: none of it survives the trip, because the grader builds its own ``str`` and its own
tensor from the bytes. The encoding is JSON with tagged values (``{"$t": "tensor", ...}``) and base64
payloads; :func:`loads` refuses anything over ``max_bytes`` or nested deeper than ``MAX_DEPTH`` (JSON nested
past the parser's own recursion limit included), and raises :class:`WireError` on anything it does not know
(a record whose constructor refuses the fields sent included), with a message a student can act on.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from typing import Any

MAX_BYTES = 64 * 1024 * 1024  # a whole answer; the largest exercise output (per-layer activations) is ~10 MB
MAX_DEPTH = 32
_TAG = "$t"
# Dataclasses that travel as records: plain fields, rebuilt by their own constructor (no code runs but theirs).
RECORD_TYPES = frozenset({
    "utils.features:DetectorReport",
    "utils.dashboard:Dashboard",
    "utils.feature_scan:FeatureStats",
})
_KEY_TYPES = (int, float, str, bool, type(None), tuple)


def _field_names(cls: type, n: int) -> tuple[str, ...] | None:
    """The field names of a named tuple (``_fields``) or a struct sequence such as ``torch.return_types.topk``
    (``__match_args__``), if they name all ``n`` items."""
    names = getattr(cls, "_fields", None) or getattr(cls, "__match_args__", None)
    if isinstance(names, tuple) and len(names) == n and all(_plain_name(x) for x in names) and len(set(names)) == n:
        return names
    return None


def _plain_name(name: Any) -> bool:
    return isinstance(name, str) and name.isidentifier() and not name.startswith("_") and len(name) <= 64


def _is_dataclass_instance(obj: Any) -> bool:
    import dataclasses

    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _record_class(spec: str) -> type:
    """The dataclass named ``spec`` ("module:qualname"), which must be one of :data:`RECORD_TYPES`."""
    import dataclasses
    import importlib

    if spec not in RECORD_TYPES:
        raise WireError(f"unknown record type {spec!r}")
    module, name = spec.split(":")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise WireError(f"{spec} is not a dataclass")
    return cls


class WireError(ValueError):
    """An answer that cannot be sent as data (or bytes that are not a valid answer)."""


def _encode(obj: Any, depth: int, ref: Callable[[Any], Any] | None = None) -> Any:
    import torch

    if depth > MAX_DEPTH:
        raise WireError(f"the answer is nested more than {MAX_DEPTH} levels deep")
    # Sending is lenient (a numpy float or an int subclass goes as the plain value); receiving is strict.
    kind = type(obj)
    if obj is None:
        return obj
    name = ref(obj) if ref is not None and not isinstance(obj, (int, float, str, bytes, list, tuple, dict)) else None
    if isinstance(name, tuple):  # (kind, data): a reference rebuilt on the other side from plain data (and refs)
        return {_TAG: "ref", "v": name[0], "data": _encode(name[1], depth + 1, ref)}
    if name is not None:
        return {_TAG: "ref", "v": name}
    if kind.__module__ == "numpy" and hasattr(obj, "shape"):  # a numpy scalar or array
        return _encode(obj.item() if obj.shape == () else torch.as_tensor(obj), depth, ref)
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return {_TAG: "int", "v": str(int(obj))}  # JSON numbers lose big ints
    if isinstance(obj, float):
        return {_TAG: "float", "v": repr(float(obj))}  # keeps nan, inf and every bit of the value
    if isinstance(obj, str):
        return {_TAG: "str", "v": str.__str__(obj)}
    if isinstance(obj, bytes):
        return {_TAG: "bytes", "v": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, tuple) and type(obj) is not tuple and _field_names(type(obj), len(obj)):
        return {_TAG: "named", "type": type(obj).__name__, "fields": list(_field_names(type(obj), len(obj))),
                "v": [_encode(x, depth + 1, ref) for x in obj]}
    if isinstance(obj, (list, tuple)):
        return {_TAG: "tuple" if isinstance(obj, tuple) else "list", "v": [_encode(x, depth + 1, ref) for x in obj]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {_TAG: "dict", "v": {str.__str__(k): _encode(v, depth + 1, ref) for k, v in obj.items()}}
        if not all(isinstance(k, _KEY_TYPES) for k in obj):
            raise WireError("a dict in the answer has keys that are not numbers, strings or tuples of them")
        return {_TAG: "map", "v": [[_encode(k, depth + 1), _encode(v, depth + 1, ref)] for k, v in obj.items()]}
    if isinstance(obj, torch.Tensor):
        if obj.is_sparse or obj.layout != torch.strided:
            raise WireError("a sparse tensor in the answer: return a dense one")
        t = obj.detach().to("cpu").contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        node = {_TAG: "tensor", "dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape),
                "v": base64.b64encode(raw).decode("ascii")}
        if obj.requires_grad:  # rebuilt as a leaf that requires grad (the graph itself never travels)
            node["grad"] = True
        return node
    from collections.abc import Mapping

    if isinstance(obj, Mapping):  # e.g. a tokenizer's BatchEncoding: sent as the plain dict it holds
        return _encode(dict(obj.items()), depth, ref)
    spec = f"{kind.__module__}:{kind.__qualname__}"
    if spec not in RECORD_TYPES and (kind.__module__ == "types" and kind.__name__ == "SimpleNamespace"
                                     or _is_dataclass_instance(obj)):  # the learner's own record: its fields only
        import dataclasses

        names = [f.name for f in dataclasses.fields(obj)] if _is_dataclass_instance(obj) else list(vars(obj))
        return {_TAG: "namespace", "v": {str(n): _encode(getattr(obj, n), depth + 1, ref) for n in names}}
    if spec in RECORD_TYPES:
        import dataclasses

        return {_TAG: "record", "class": spec,
                "v": {f.name: _encode(getattr(obj, f.name), depth + 1, ref) for f in dataclasses.fields(obj)}}
    raise WireError(
        f"the answer contains a {kind.__module__}.{kind.__qualname__}; return plain data: numbers, strings, "
        f"lists, tuples, dicts or torch tensors"
    )


def dumps(obj: Any, max_bytes: int = MAX_BYTES, ref: Callable[[Any], Any] | None = None) -> bytes:
    """Encode plain data (see the module docstring) as UTF-8 JSON; ``WireError`` for anything else.

    ``ref``: names objects that are not data but that both sides hold (the grader's fixtures, e.g. the
    model): it returns a name, or ``(kind, data)`` for an object the other side rebuilds from plain data (a
    classifier that is a set of texts), or None. They travel as ``{"$t": "ref", "v": name[, "data": ...]}`` and
    only :func:`loads` with ``resolve(name, data)`` accepts them."""
    data = json.dumps(_encode(obj, 0, ref), separators=(",", ":")).encode("utf-8")
    if len(data) > max_bytes:
        raise WireError(f"the answer is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit")
    return data


def _decode(node: Any, depth: int, resolve: Callable[[str, Any], Any] | None = None) -> Any:
    import torch

    if depth > MAX_DEPTH:
        raise WireError(f"nested more than {MAX_DEPTH} levels deep")
    if node is None or type(node) is bool:
        return node
    if type(node) is not dict or type(node.get(_TAG)) is not str:
        raise WireError(f"untagged value of type {type(node).__name__}")
    tag, value = node[_TAG], node.get("v")
    if tag == "int" and type(value) is str:
        return int(value)
    if tag == "float" and type(value) is str:
        number = float(value)
        if math.isnan(number) and value.strip().lower() not in ("nan", "-nan"):
            raise WireError("bad float")
        return number
    if tag == "str" and type(value) is str:
        return str(value)
    if tag == "bytes" and type(value) is str:
        return base64.b64decode(value, validate=True)
    if tag in ("list", "tuple") and type(value) is list:
        items = [_decode(x, depth + 1, resolve) for x in value]
        return items if tag == "list" else tuple(items)
    if tag == "dict" and type(value) is dict:
        return {str(k): _decode(v, depth + 1, resolve) for k, v in value.items()}
    if tag == "map" and type(value) is list:
        out = {}
        for pair in value:
            if type(pair) is not list or len(pair) != 2:
                raise WireError("bad map entry")
            key = _decode(pair[0], depth + 1)
            if not isinstance(key, _KEY_TYPES) or isinstance(key, tuple) and not all(isinstance(k, _KEY_TYPES[:-1]) for k in key):
                raise WireError("a map key that is not a number, a string or a tuple of them")
            out[key] = _decode(pair[1], depth + 1, resolve)
        return out
    if tag == "named" and type(value) is list and type(node.get("fields")) is list:
        import collections

        fields, name = node["fields"], node.get("type")
        if len(fields) != len(value) or not all(_plain_name(f) for f in fields) or len(set(fields)) != len(fields):
            raise WireError("bad named tuple")
        cls = collections.namedtuple(name if _plain_name(name) else "Result", fields)
        return cls(*[_decode(x, depth + 1, resolve) for x in value])
    if tag == "namespace" and type(value) is dict:
        import types

        if not all(_plain_name(k) for k in value):
            raise WireError("bad attribute name")
        return types.SimpleNamespace(**{str(k): _decode(v, depth + 1, resolve) for k, v in value.items()})
    if tag == "record" and type(value) is dict and type(node.get("class")) is str:
        import dataclasses

        cls = _record_class(node["class"])
        names = {f.name for f in dataclasses.fields(cls) if f.init}
        if set(value) - names:
            raise WireError(f"{node['class']} has no fields {sorted(set(value) - names)}")
        fields = {str(k): _decode(v, depth + 1, resolve) for k, v in value.items()}
        try:
            return cls(**fields)
        except TypeError as error:  # fields missing (or others the constructor refuses): not a record of this class
            raise WireError(f"{node['class']} cannot be built from the fields sent ({error})") from None
    if tag == "tensor" and type(value) is str:
        dtype = getattr(torch, str(node.get("dtype")), None)
        shape = node.get("shape")
        if not isinstance(dtype, torch.dtype) or type(shape) is not list or not all(type(s) is int and s >= 0 for s in shape):
            raise WireError("bad tensor header")
        raw = base64.b64decode(value, validate=True)
        count = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if len(raw) != count * itemsize:
            raise WireError(f"tensor payload is {len(raw)} bytes, expected {count * itemsize}")
        if count == 0:
            tensor = torch.empty(shape, dtype=dtype)
        else:
            # a view of a fresh bytearray that nothing else holds: owned by the tensor, no second copy
            tensor = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape)
        if node.get("grad") is True and (tensor.is_floating_point() or tensor.is_complex()):
            tensor.requires_grad_(True)
        return tensor
    if tag == "ref" and type(value) is str:
        if resolve is None:
            raise WireError("a reference where only data is accepted")
        return resolve(value, _decode(node["data"], depth + 1, resolve) if "data" in node else None)
    raise WireError(f"unknown value tag {tag!r}")


def loads(data: bytes, max_bytes: int = MAX_BYTES, resolve: Callable[[str, Any], Any] | None = None) -> Any:
    """Rebuild plain data from :func:`dumps` bytes into fresh objects of the allowed types only. References are
    refused unless ``resolve`` ((name, data) -> object) is given: the grader never passes one."""
    if len(data) > max_bytes:
        raise WireError(f"{len(data) / 1e6:.1f} MB answer, over the {max_bytes / 1e6:.0f} MB limit")
    try:
        node = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WireError(f"not an answer: {error}") from None
    except (RecursionError, MemoryError) as error:  # the JSON parser's own limits, reached before MAX_DEPTH is checked
        raise WireError(f"not an answer: nested too deeply or too large to parse ({type(error).__name__})") from None
    return _decode(node, 0, resolve)
