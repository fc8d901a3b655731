"""The kernel's half of remote grading: call the learner's function on the grader's inputs, answer as data.

This module runs **inside the student's kernel** (from the course files that kernel imports), so nothing
here is trusted: it only has to be right for an honest notebook. Whatever it sends back is rebuilt and
judged by the grader (:mod:`utils.grade.remote`). The grader runs one hidden cell per call::

    import utils.grade.answer as _a; _a.respond(globals(), "<base64 request>", "ANSWER-<nonce>:")

and reads the line that starts with the nonce. A request names its target (a function defined in the
notebook, or a *handle*: a function an earlier call returned), carries the arguments as data
(:mod:`utils.grade.wire`) with references to **fixtures** rebuilt here, and may ask for **watches**
(forward calls per block, token ids fed to a model). Fixtures:

* ``"model"`` / ``"tokenizer"``: :func:`utils.model.load_model` and its tokenizer;
* ``("function", "utils.module:name")``: a course function; ``("member_of", texts)``: a set-membership classifier;
* ``("recipe", {"factory", "args"})``: ``factory(*args)``, e.g. a loaded organism or a reference hook;
* ``("sae", {"key", "cfg", "state"})``: a **mirrored** SAE, kept here under ``key`` across calls; ``state`` (its
  parameters) is sent when the grader's copy changed, and the parameters this call changed (or replaced) are
  sent back;
* ``("optimiser", {"key", "class", "hyper", "params"})``: a ``torch.optim`` optimiser over mirrored parameters,
  kept here so its state (Adam's moments) carries over from call to call, as in a notebook.

The reply: ``status`` (``ok`` / ``missing`` / ``raised`` / ``unsendable``), the ``value`` (functions in it
travel as handles), the list, dict and tensor arguments the call changed in place, the mirrored SAEs it
changed, the watches' reports, and the hook points it left hooks on (removed here, reported so the check
can say so).
"""

from __future__ import annotations

import base64
import copy
import importlib
import sys
import traceback
from typing import Any

OBJECTS: dict[str, Any] = {}  # mirrored SAEs and optimisers (grader's keys) and handles ("h1", "h2", ...)
_HANDLES = [0]


def _import(spec: str) -> Any:
    """The course function ``spec`` ("utils.module:name"). In a student build (:mod:`utils.grade.student_build`)
    an exercise's function is reached as ``_reference_<name>``: in the sealed build a graded kernel gets, that is the
    learner's own function of that name (the build holds no reference implementation), so a fixture built from an
    exercise (chapter 03's clamp hook handed to ``steering_rate``) is built by the learner's code."""
    module_name, name = spec.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, "_reference_" + name, None) or getattr(module, name)


def _sae(data: dict[str, Any]) -> Any:
    import torch

    from utils.sae import SAEConfig, SparseAutoencoder

    key, cfg = data["key"], SAEConfig(**data["cfg"])
    sae = OBJECTS.get(key)
    twin = OBJECTS.get(data.get("like") or "")
    if twin is not None:  # the grader's new SAE is a copy of one this kernel holds
        sae = OBJECTS[key] = copy.deepcopy(twin)
    elif sae is None or sae.cfg != cfg:
        sae = OBJECTS[key] = SparseAutoencoder(cfg)
    state = data.get("state")
    if state is not None:
        with torch.no_grad():
            for name, value in state.items():
                current = getattr(sae, name)
                if current.shape == value.shape:
                    current.copy_(value)
                else:
                    setattr(sae, name, torch.nn.Parameter(value.clone()))
    return sae


def _optimiser(data: dict[str, Any]) -> Any:
    import torch

    key = data["key"]
    if key not in OBJECTS:
        params = [getattr(OBJECTS[owner], name) for owner, name in data["params"]]
        OBJECTS[key] = getattr(torch.optim, data["class"])(params, **data["hyper"])
    return OBJECTS[key]


class _Call:
    """One request being answered: the fixtures it resolved and what to report about them."""

    def __init__(self) -> None:
        self.made: set[int] = set()  # ids of fixture objects (never sent back as changed arguments)
        self.models: list[Any] = []

    def resolve(self, name: str, data: Any) -> Any:
        from utils.checks import MemberOf
        from utils.model import load_model

        if name == "model":
            obj = load_model()
        elif name == "tokenizer":
            obj = load_model().tokenizer
        elif name == "function":
            obj = _import(data)
        elif name == "member_of":
            obj = MemberOf(data)
        elif name == "recipe":
            obj = _import(data["factory"])(*data["args"])
        elif name == "sae":
            obj = _sae(data)
        elif name == "optimiser":
            obj = _optimiser(data)
        else:
            raise ValueError(f"unknown fixture {name!r}")
        if hasattr(obj, "hook_dict") and all(obj is not m for m in self.models):
            self.models.append(obj)
        self.made.add(id(obj))
        return obj


def _snapshot_module(module: Any) -> dict[str, tuple[int, Any]]:
    """Each parameter's identity and a fingerprint of its values (an edit through ``.data`` leaves no version
    behind), without copying it: this runs in a kernel capped at 2 GB, and a course SAE is 21 MB."""
    return {name: (id(p), _fingerprint(p)) for name, p in module.named_parameters()}


def _fingerprint(p: Any) -> tuple[Any, ...]:
    import torch

    x = p.detach()
    return (tuple(x.shape), x.dtype, float(x.sum(dtype=torch.float64)), float(torch.linalg.vector_norm(x if x.is_floating_point() else x.double())),
            float(x.reshape(-1)[:: max(1, x.numel() // 4096)].sum(dtype=torch.float64)))


def _same_tensor(a: Any, fingerprint: tuple[Any, ...]) -> bool:
    return _fingerprint(a) == fingerprint


def _snapshot(arg: Any) -> Any:
    """What an argument looked like before the call (tensors: a fingerprint, so an edit through ``.data`` shows
    too; lists, dicts: a copy)."""
    import torch

    if isinstance(arg, torch.Tensor):
        return ("tensor", _fingerprint(arg))
    if isinstance(arg, (list, dict)):
        try:
            return ("copy", copy.deepcopy(arg))
        except Exception:  # noqa: BLE001 - not copyable: reported as unchanged
            return None
    return None


def _changed(arg: Any, before: Any) -> bool:
    if before is None:
        return False
    if before[0] == "tensor":
        return not _same_tensor(arg, before[1])
    try:
        return bool(arg != before[1])
    except Exception:  # noqa: BLE001 - e.g. lists of tensors: == is elementwise
        return True


def _gradients(value: Any, args: list[Any]) -> list[Any] | None:
    """For a scalar tensor that requires grad (a loss): its gradient with respect to each tensor argument that
    requires grad (None for the others, and where no gradient reaches), so the grader can backpropagate through
    it; else None."""
    import torch

    if not (isinstance(value, torch.Tensor) and value.requires_grad and value.numel() == 1):
        return None
    leaves = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.requires_grad]
    if not leaves:
        return None
    grads = torch.autograd.grad(value.reshape(()), [args[i] for i in leaves], allow_unused=True, retain_graph=True)
    out: list[Any] = [None] * len(args)
    for i, grad in zip(leaves, grads):
        out[i] = grad
    return out


def _left_hooks(model: Any) -> list[str]:
    return sorted(name for name, hp in model.hook_dict.items()
                  if any(not getattr(h, "is_permanent", False) for h in list(hp.fwd_hooks) + list(hp.bwd_hooks)))


def _open_watches(request: dict[str, Any]) -> list[Any]:
    from utils.checks import counting_block_calls, recording_tokens

    kinds = {"blocks": counting_block_calls, "tokens": recording_tokens}
    watches = []
    for spec in request.get("watch") or []:
        model = spec.get("model")
        kind = kinds.get(spec.get("kind"))
        if kind is None or not hasattr(model, "blocks"):
            watches.append(None)
            continue
        watch = kind(model)
        watch._install()  # not registered as open: this kernel reports to nobody but the grader
        watches.append(watch)
    return watches


def _store_handle(obj: Any) -> Any:
    if callable(obj) and not isinstance(obj, type):
        _HANDLES[0] += 1
        key = f"h{_HANDLES[0]}"
        OBJECTS[key] = obj
        return ("handle", key)
    return None


def respond(namespace: dict[str, Any], payload: str, nonce: str, spooled: bool = False) -> None:
    """Answer one grader request (see the module docstring); prints ``nonce + base64(reply)`` on one line.
    ``payload``: the request, base64; or with ``spooled``, the path of a file holding it (read, then deleted)."""
    from utils.grade import wire

    call = _Call()
    reply: dict[str, Any] = {}
    mirrored: dict[str, tuple[Any, dict[str, tuple[int, Any]]]] = {}
    watches: list[Any] = []
    try:
        if spooled:
            from pathlib import Path

            raw = Path(payload).read_bytes()
            Path(payload).unlink()
        else:
            raw = base64.b64decode(payload)
        request = wire.loads(raw, resolve=call.resolve)
        for key in request.get("release") or []:  # objects the grader no longer holds
            OBJECTS.pop(key, None)
        # every mirrored SAE, not only this call's arguments: a hook made earlier may change the SAE it holds
        mirrored = {k: (o, _snapshot_module(o)) for k, o in OBJECTS.items() if type(o).__name__ == "SparseAutoencoder"}
        target = request["target"]
        fn = OBJECTS.get(target["handle"]) if "handle" in target else namespace.get(target["name"])
        if fn is None:
            reply = {"status": "missing"}
        else:
            args, kwargs = request["args"], request["kwargs"]
            before = [None if id(a) in call.made else _snapshot(a) for a in args]
            watches = _open_watches(request)
            try:
                value = fn(*args, **kwargs)
            finally:
                for watch in watches:
                    if watch is not None:
                        watch.__exit__()
            back = [a if _changed(a, b) else None for a, b in zip(args, before)]
            reply = {"status": "ok", "value": value, "args": back, "grads": _gradients(value, args)}
    except BaseException as error:  # noqa: BLE001 - every failure of the learner's code is reported as data
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if f.filename.startswith("<ipython-input") or "/ipykernel_" in f.filename]
        where = (frames[-1].lineno, (frames[-1].line or "").strip()) if frames else None
        reply = {"status": "raised", "type": type(error).__name__, "builtin": type(error).__module__ == "builtins",
                 "message": str(error)[:2000], "line": list(where) if where else None}
    reply["watch"] = [w.value if w is not None else None for w in watches]
    mirrors = {}
    for key, (sae, before) in mirrored.items():
        params = dict(sae.named_parameters())
        replaced = [n for n, p in params.items() if n in before and id(p) != before[n][0]]
        edited = [n for n, p in params.items() if n in before and not _same_tensor(p.detach(), before[n][1])]
        if replaced or edited or set(params) != set(before):
            mirrors[key] = {"state": {n: p.detach() for n, p in params.items()}, "replaced": replaced}
    reply["mirrors"] = mirrors
    left: list[str] = []
    for model in call.models:
        names = _left_hooks(model)
        if names:
            left += names
            model.reset_hooks()
    reply["hooks_left"] = left
    try:
        data = wire.dumps(reply, ref=_store_handle)
    except Exception as error:  # noqa: BLE001
        data = wire.dumps({"status": "unsendable", "message": str(error)[:500], "watch": [], "mirrors": {},
                           "hooks_left": left})
    sys.__stdout__.flush()
    print(nonce + base64.b64encode(data).decode("ascii"), flush=True)


def defined(namespace: dict[str, Any], name: str, nonce: str) -> None:
    """Print ``nonce + "yes"`` if ``name`` is a callable the notebook defined, else ``nonce + "no"``."""
    print(nonce + ("yes" if callable(namespace.get(name)) else "no"), flush=True)
