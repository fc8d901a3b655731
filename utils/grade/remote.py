"""Verdicts decided where no student code runs: the check runs in the grader, the function in the kernel.

The grader runs an exercise's check in its *own* process, on its own copy of the checks, the
reference implementations and the model. The learner's function is replaced by a
:class:`RemoteFunction`: calling it sends the arguments to the student's kernel as data
(:mod:`utils.grade.wire`), the kernel calls the learner's function there, and sends back the result
as data, which the grader rebuilds into fresh objects and compares. Nothing the notebook does to its
own process (a patched ``importlib.reload``, ``builtins.__import__``, ``sys.stdout``, ``json.dumps``,
``torch.allclose``, an IPython hook, a forged ``utils`` module, a ``str`` whose ``==`` is always true)
can make the grader's comparison say yes: to pass, the kernel must send back the right answer.

Arguments that are not data are sent as references to **fixtures** both sides load the same way
(``"model"``: the course model; ``"tokenizer"``: its tokenizer; a course function by its import name; a
:class:`utils.checks.MemberOf` classifier by its texts); the kernel resolves them with its own
``utils.model.load_model()`` and imports. Lists, dicts and tensors the learner's function changes in place are
sent back and copied into the grader's objects, so "do not modify the inputs" checks still see it.
An exception in the learner's code comes back as its type name and message: built-in exception types
(``NotImplementedError``, ``KeyError``, ...) are raised again as themselves, others as
:class:`RemoteError`. Forward calls of the model's blocks inside the kernel are counted there and
added to any open :class:`utils.checks.counting_block_calls` (reported by the kernel, so used only to
ask for efficient code, never to accept a value).

The transport is a function ``run(code, timeout) -> stdout text`` (the grader's hidden kernel cell);
the kernel prints its reply on one line after a random nonce.
"""

from __future__ import annotations

import base64
import builtins
import secrets
from collections.abc import Callable
from typing import Any

from utils.grade import wire

Transport = Callable[[str, float], str]  # (code to run in the kernel, timeout in s) -> what it printed


class RemoteError(Exception):
    """The learner's function raised an exception that is not a built-in type; the message says which."""


class TransportError(BaseException):
    """The call never got an answer. A ``BaseException``, so a check's ``except Exception`` (which reports the
    learner's own crashes) lets it through to the grader."""


class RemoteTimeout(TransportError):
    """The kernel did not answer a call in time."""


class NoReply(TransportError):
    """The kernel printed no readable reply (it replaced stdout, or crashed before answering)."""


class KernelDied(TransportError):
    """The kernel died during the call."""


def fixture_name(obj: Any) -> str | tuple[str, Any] | None:
    """How ``obj`` travels if it is not data: ``"model"``/``"tokenizer"`` (the fixture, if already loaded here);
    ``("member_of", texts)`` for a :class:`utils.checks.MemberOf` classifier; ``("function", "module:name")`` for a
    function of the course's own modules; else None (the call is refused as not data)."""
    import importlib

    from utils import model as model_module
    from utils.checks import MemberOf

    if isinstance(obj, MemberOf):
        return ("member_of", sorted(obj.members, key=repr))
    module, name = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    if callable(obj) and isinstance(module, str) and module.startswith("utils.") and isinstance(name, str):
        try:
            if getattr(importlib.import_module(module), name, None) is obj:
                return ("function", f"{module}:{name}")
        except ImportError:
            pass
    if model_module.load_model.cache_info().currsize:
        model = model_module.load_model()
        if obj is model:
            return "model"
        if obj is model.tokenizer:
            return "tokenizer"
    return None


# The kernel's half. It runs in the student's process, so it is not trusted: it only has to be correct for an
# honest notebook. Whatever it sends back is checked by the grader.
RESPONDER = r'''
def {fn}(payload, nonce, count_blocks):
    import base64, sys, traceback
    from utils.grade import wire
    from utils.model import load_model
    import importlib
    def member_of(texts):
        members = frozenset(texts)
        return lambda text: text in members
    def function(spec):
        module, name = spec.split(":")
        return getattr(importlib.import_module(module), name)
    fixtures = {{"model": lambda data: load_model(), "tokenizer": lambda data: load_model().tokenizer,
                "member_of": member_of, "function": function}}
    made = set()
    def resolve(name, data):
        obj = fixtures[name](data)
        made.add(id(obj))
        return obj
    request = wire.loads(base64.b64decode(payload), resolve=resolve)
    counts, handles = {{}}, []
    if count_blocks:
        for i, block in enumerate(load_model().blocks):
            handles.append(block.register_forward_hook(lambda *_, i=i: counts.__setitem__(str(i), counts.get(str(i), 0) + 1)))
    reply = {{}}
    try:
        fn = globals().get(request["name"])
        if fn is None:
            reply = {{"status": "missing"}}
        else:
            value = fn(*request["args"], **request["kwargs"])
            back = [None if id(a) in made or not isinstance(a, (list, dict)) and type(a).__name__ != "Tensor" else a
                    for a in request["args"]]
            reply = {{"status": "ok", "value": value, "args": back}}
    except BaseException as error:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith("<ipython-input")
                  or "/ipykernel_" in f.filename]
        where = (frames[-1].lineno, (frames[-1].line or "").strip()) if frames else None
        reply = {{"status": "raised", "type": type(error).__name__, "builtin": type(error).__module__ == "builtins",
                 "message": str(error)[:2000], "line": list(where) if where else None}}
    finally:
        for handle in handles:
            handle.remove()
    reply["block_calls"] = counts
    try:
        data = wire.dumps(reply)
    except Exception as error:
        data = wire.dumps({{"status": "unsendable", "message": str(error)[:500], "block_calls": counts}})
    sys.__stdout__.flush()
    print(nonce + base64.b64encode(data).decode("ascii"), flush=True)
'''


class RemoteKernel:
    """The grader's handle on one student kernel: installs the responder once, then calls functions by name."""

    def __init__(self, run: Transport, timeout: float = 120.0) -> None:
        self.run = run
        self.timeout = timeout
        self.nonce = "ANSWER-" + secrets.token_hex(16) + ":"
        self.fn = "_course_grader_" + secrets.token_hex(8)
        self._installed = False

    def _install(self) -> None:
        if not self._installed:
            self.run(RESPONDER.format(fn=self.fn), self.timeout)
            self._installed = True

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], count_blocks: bool) -> dict[str, Any]:
        """Send one call; return the decoded reply (plain data), or raise NoReply / RemoteTimeout."""
        self._install()
        payload = base64.b64encode(wire.dumps({"name": name, "args": list(args), "kwargs": kwargs},
                                              ref=fixture_name)).decode("ascii")
        code = f"{self.fn}({payload!r}, {self.nonce!r}, {count_blocks!r})"
        printed = self.run(code, self.timeout)
        for line in reversed(printed.splitlines()):
            if line.startswith(self.nonce):
                try:
                    reply = wire.loads(base64.b64decode(line[len(self.nonce):], validate=True))
                except (wire.WireError, ValueError) as error:
                    raise NoReply(f"the kernel's reply was not readable ({error})") from None
                if isinstance(reply, dict) and isinstance(reply.get("status"), str):
                    return reply
        raise NoReply("the kernel printed no reply (did the notebook replace sys.stdout or a course module?)")

    def has(self, name: str) -> bool:
        """Is ``name`` defined and callable in the notebook? (A stub counts: it is defined.)"""
        self._install()
        probe = f"print({self.nonce!r} + ('yes' if callable(globals().get({name!r})) else 'no'))"
        printed = self.run(probe, self.timeout)
        return any(line == self.nonce + "yes" for line in printed.splitlines())


class RemoteFunction:
    """Stands in for the learner's function ``name`` inside a check run by the grader (see the module docstring)."""

    def __init__(self, kernel: RemoteKernel, name: str) -> None:
        self.kernel = kernel
        self.name = name
        self.__name__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from utils.checks import active_block_counters

        counters = active_block_counters()
        reply = self.kernel.call(self.name, args, kwargs, count_blocks=bool(counters))
        for counter in counters:
            for block, calls in (reply.get("block_calls") or {}).items():
                if isinstance(block, str) and block.isdigit() and isinstance(calls, int):
                    counter.update({int(block): calls})
        status = reply["status"]
        if status == "ok":
            _copy_back(args, reply.get("args") or [])
            return reply.get("value")
        if status == "missing":
            raise NameError(f"`{self.name}` is not defined in the notebook")
        if status == "unsendable":
            raise RemoteError(f"your function returned something the grader cannot read: {reply.get('message')}")
        kind, message = str(reply.get("type", "Exception")), str(reply.get("message", ""))
        line = reply.get("line")
        if isinstance(line, list) and len(line) == 2:
            message += f" (in your code, line {line[0]}: `{line[1]}`)"
        builtin = getattr(builtins, kind, None)
        if reply.get("builtin") is True and isinstance(builtin, type) and issubclass(builtin, Exception):
            try:
                raise builtin(message)
            except TypeError:  # an exception type whose constructor wants other arguments
                pass
        raise RemoteError(f"{kind}: {message}")


def _copy_back(sent: tuple[Any, ...], returned: list[Any]) -> None:
    """Apply in-place changes the kernel made to list, dict and tensor arguments to the grader's own objects."""
    import torch

    for mine, theirs in zip(sent, returned):
        if theirs is None:
            continue
        if isinstance(mine, list) and isinstance(theirs, list) and not _same(mine, theirs):
            mine[:] = theirs
        elif isinstance(mine, dict) and isinstance(theirs, dict) and not _same(mine, theirs):
            mine.clear()
            mine.update(theirs)
        elif isinstance(mine, torch.Tensor) and isinstance(theirs, torch.Tensor):
            if mine.shape == theirs.shape and not torch.equal(mine.cpu(), theirs.to(mine.dtype)):
                with torch.no_grad():
                    mine.copy_(theirs.to(mine.dtype))


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except RuntimeError:  # lists of tensors: == is elementwise
        return False
