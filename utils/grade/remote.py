"""Verdicts decided where no student code runs: the check runs in the grader, the function in the kernel.

The grader runs an exercise's check in its *own* process, on its own copy of the checks, the
reference implementations and the model. The learner's function is replaced by a
:class:`RemoteFunction`: calling it sends the arguments to the student's kernel as data
(:mod:`utils.grade.wire`), the kernel calls the learner's function there, and sends back the result
as data, which the grader rebuilds into fresh objects and compares. Nothing the notebook does to its
own process (a patched ``importlib.reload``, ``builtins.__import__``, ``sys.stdout``, ``json.dumps``,
``torch.allclose``, an IPython hook, a forged ``utils`` module, a ``str`` whose ``==`` is always true)
can make the grader's comparison say yes: to pass, the kernel must send back the right answer.

Arguments that are not data travel as references to **fixtures** the kernel rebuilds
(:mod:`utils.grade.answer` lists them): the course model and tokenizer, course functions, a
:class:`utils.checks.MemberOf` classifier, a :class:`utils.checks.Recipe` (a reference hook, the organism),
and **mirrored** SAEs and optimisers, which the kernel keeps across calls; an SAE's parameters go with it
whenever the grader's copy changed, and the ones the learner's code changed come back and are copied into
the grader's SAE (so a training step is checked on the parameters it produced). Lists, dicts and tensors
the learner's function changes in place are sent back and copied into the grader's objects, so "do not
modify the inputs" checks still see it. A function the learner's code *returns* (a hook) stays in the
kernel and comes back as a handle: calling it is another remote call. An exception in the learner's code
comes back as its type name and message: built-in exception types (``NotImplementedError``,
``KeyError``, ...) are raised again as themselves, others as :class:`RemoteError`.

What the learner's code does to the kernel's model is reported by the kernel and added to the
:mod:`utils.checks` watches open in the check (forward calls per block, token ids fed to the model) and
hooks it left attached (removed there). Those reports come from the student's process, so checks use
them only to explain a failure or to ask for efficient code, never to accept a value.

The transport is a function ``run(code, timeout) -> stdout text`` (the grader's hidden kernel cell);
the kernel prints its reply on one line after a random nonce.
"""

from __future__ import annotations

import base64
import builtins
import importlib
import secrets
import time
from collections.abc import Callable
from pathlib import Path
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


class BudgetSpent(RemoteTimeout):
    """No call was sent: the notebook's checks had used their total time (:attr:`RemoteKernel.deadline`)."""


class NoReply(TransportError):
    """The kernel printed no readable reply (it replaced stdout, or crashed before answering)."""


class KernelDied(TransportError):
    """The kernel died during the call."""


class ReplyUnreadable(NoReply):
    """The kernel printed a reply, and the grader's own code failed on it: decoding it (:func:`wire.loads`: JSON
    nested past the parser's limit, a forged or unknown value, a record its class refuses) or copying mirrored
    parameters back. The grader's error, never an exception of the learner's code (those come back inside a
    readable reply and are raised by :class:`RemoteFunction`); a :class:`TransportError`, so a check's
    ``except Exception`` lets it through. ``detail``: the grader's exception, as ``"Type: message"``."""

    def __init__(self, error: BaseException) -> None:
        detail = " ".join(f"{type(error).__name__}: {error}".split())
        self.detail = detail if len(detail) <= 500 else detail[:499] + "…"
        super().__init__(f"the grader could not read the kernel's reply ({self.detail}): the grader's error, "
                         "not an exception of the learner's code")


class RemoteKernel:
    """The grader's handle on one student kernel: calls functions by name (or by handle), keeping the SAEs and
    optimisers it mirrors there in step with the grader's own objects."""

    SPOOL_BYTES = 256 * 1024  # larger requests go through a file in the kernel's folder, not the cell's source

    def __init__(self, run: Transport, timeout: float = 120.0, spool: Path | None = None) -> None:
        self.run = run
        self.timeout = timeout
        self.deadline: float | None = None  # time.monotonic() after which no call is sent (a notebook's check budget)
        self.spool = spool  # a folder both sides see (the kernel's working folder), or None: always inline
        self.nonce = "ANSWER-" + secrets.token_hex(16) + ":"
        self._session = secrets.token_hex(4)  # mirrored objects' keys are unique to this handle
        self._count = 0
        self._mirrored: dict[int, tuple[str, Any]] = {}  # id(grader object) -> (key, weak reference to it)
        self._by_key: dict[str, Any] = {}  # key -> weak reference
        self._cfg_of: dict[str, dict[str, Any]] = {}  # SAE key -> its config as sent
        self._released: list[str] = []  # keys of mirrored objects the grader dropped: the kernel drops its copies
        self._param_owner: dict[int, tuple[str, str]] = {}  # id(parameter) -> (SAE key, parameter name)
        self._kernel_has: dict[str, tuple[tuple[str, int, int, float], ...]] = {}  # SAE key -> versions the kernel holds

    # -- what travels as a reference ------------------------------------------------------------------------
    def _key(self, obj: Any) -> str:
        """The key ``obj`` is mirrored under in the kernel (a new one the first time it is sent)."""
        import weakref

        entry = self._mirrored.get(id(obj))
        if entry is not None and entry[1]() is obj:
            return entry[0]
        self._count += 1
        key = f"m{self._session}-{self._count}"
        self._mirrored[id(obj)] = (key, weakref.ref(obj))
        self._by_key[key] = weakref.ref(obj)
        weakref.finalize(obj, self._release, id(obj), key)
        return key

    def _release(self, ident: int, key: str) -> None:
        """The grader dropped a mirrored object: forget it, and tell the kernel with the next call."""
        if self._mirrored.get(ident, (None,))[0] == key:
            del self._mirrored[ident]
        self._by_key.pop(key, None)
        self._kernel_has.pop(key, None)
        self._cfg_of.pop(key, None)
        self._param_owner = {i: owner for i, owner in self._param_owner.items() if owner[0] != key}
        self._released.append(key)

    def _sae_ref(self, sae: Any) -> tuple[str, dict[str, Any]]:
        import dataclasses

        key = self._key(sae)
        params = dict(sae.named_parameters())
        for name, p in params.items():
            self._param_owner[id(p)] = (key, name)
        versions = _versions(sae)
        cfg = {f.name: getattr(sae.cfg, f.name) for f in dataclasses.fields(sae.cfg) if f.name != "extra"}
        if self._kernel_has.get(key) == versions:
            return ("sae", {"key": key, "cfg": cfg, "state": None})
        self._kernel_has[key] = versions
        content = (repr(cfg), _content(versions))
        twin = next((k for k, v in self._kernel_has.items()
                     if k != key and k in self._by_key and (repr(self._cfg_of.get(k)), _content(v)) == content), None)
        self._cfg_of[key] = cfg
        if twin is not None:  # a copy of an SAE the kernel already holds (a check's deepcopy): copied there
            return ("sae", {"key": key, "cfg": cfg, "state": None, "like": twin})
        state = {name: p.detach().float().cpu() for name, p in params.items()}
        return ("sae", {"key": key, "cfg": cfg, "state": state})

    def _optimiser_ref(self, optimiser: Any) -> tuple[str, dict[str, Any]]:
        import torch

        kind = type(optimiser).__name__
        if getattr(torch.optim, kind, None) is not type(optimiser) or len(optimiser.param_groups) != 1:
            raise wire.WireError(f"a {kind} optimiser cannot be sent to the kernel (only torch.optim's, one group)")
        group = optimiser.param_groups[0]
        owners = [self._param_owner.get(id(p)) for p in group["params"]]
        if None in owners:
            raise wire.WireError("an optimiser over parameters that are not those of an SAE sent before it")
        key = self._key(optimiser)
        hyper = {k: v for k, v in group.items() if k != "params"}
        return ("optimiser", {"key": key, "class": kind, "hyper": hyper, "params": [list(o) for o in owners]})

    def reference(self, obj: Any) -> str | tuple[str, Any] | None:
        """How ``obj`` travels if it is not data (see :mod:`utils.grade.answer` for what the kernel rebuilds):
        ``"model"``/``"tokenizer"`` (the course model, if loaded here); ``("member_of", texts)``; ``("function",
        "module:name")`` for a course function; ``("recipe", ...)`` for a :class:`utils.checks.Recipe` or an object
        a course loader tagged with ``course_recipe`` (the organism); ``("sae", ...)`` / ``("optimiser", ...)``
        mirrored; else None (the call is refused as not data)."""
        import torch

        from utils import model as model_module
        from utils.checks import MemberOf, Recipe

        if isinstance(obj, MemberOf):
            return ("member_of", sorted(obj.members, key=repr))
        if isinstance(obj, Recipe):
            return ("recipe", {"factory": obj.factory, "args": list(obj.args)})
        recipe = getattr(obj, "course_recipe", None)
        if isinstance(recipe, tuple) and len(recipe) == 2 and isinstance(recipe[0], str):
            return ("recipe", {"factory": recipe[0], "args": list(recipe[1])})
        if type(obj).__name__ == "SparseAutoencoder" and type(obj).__module__ == "utils.sae":
            return self._sae_ref(obj)
        if isinstance(obj, torch.optim.Optimizer):
            return self._optimiser_ref(obj)
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

    # -- calls ------------------------------------------------------------------------------------------------
    def _seconds(self) -> float:
        """How long the next request may take: ``timeout``, or less once ``deadline`` is near; raises
        :class:`BudgetSpent` (a RemoteTimeout) when the deadline has passed."""
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BudgetSpent("this notebook's checks used up their total time")
        return min(self.timeout, left)

    def call(self, target: dict[str, str], args: tuple[Any, ...], kwargs: dict[str, Any],
             watches: list[Any] = ()) -> dict[str, Any]:
        """Send one call (``target``: ``{"name": ...}`` or ``{"handle": ...}``); return the decoded reply, whose
        handles are :class:`RemoteFunction` objects. Raises NoReply / RemoteTimeout / KernelDied, and ReplyUnreadable
        (a NoReply) for any exception of the grader's own code while reading the reply or copying mirrors back."""
        release, self._released = self._released, []
        request = {"target": target, "args": list(args), "kwargs": kwargs, "release": release,
                   "watch": [{"kind": w.kind, "model": w.model} for w in watches]}
        data = wire.dumps(request, ref=self.reference)
        if self.spool is not None and len(data) > self.SPOOL_BYTES:
            # A cell with megabytes of source is slow to send and to parse; the kernel reads the file and deletes it.
            path = self.spool / f".grader-request-{secrets.token_hex(8)}.json"
            path.write_bytes(data)
            code = f"import utils.grade.answer as _a; _a.respond(globals(), {str(path)!r}, {self.nonce!r}, spooled=True)"
        else:
            payload = base64.b64encode(data).decode("ascii")
            code = f"import utils.grade.answer as _a; _a.respond(globals(), {payload!r}, {self.nonce!r})"
        printed = self.run(code, self._seconds())

        def resolve(name: str, data: Any) -> Any:
            if name != "handle" or not isinstance(data, str):
                raise wire.WireError(f"the kernel sent a reference {name!r}")
            import weakref

            handle = RemoteFunction(self, handle=data)
            weakref.finalize(handle, self._released.append, data)  # the kernel may drop it once the check has
            return handle

        for line in reversed(printed.splitlines()):
            if line.startswith(self.nonce):
                # Only the grader's code runs here (the learner's exceptions are data inside the reply): whatever it
                # raises, a RecursionError or MemoryError included, is the grader's failure to read the reply.
                try:
                    reply = wire.loads(base64.b64decode(line[len(self.nonce):], validate=True), resolve=resolve)
                    if isinstance(reply, dict) and isinstance(reply.get("status"), str):
                        self._apply_mirrors(reply.get("mirrors"))
                        return reply
                except Exception as error:  # noqa: BLE001 - see above
                    raise ReplyUnreadable(error) from error
        raise NoReply("the kernel printed no reply (did the notebook replace sys.stdout or a course module?)")

    def _apply_mirrors(self, mirrors: Any) -> None:
        """Copy the parameters the kernel's copy of a mirrored SAE now has into the grader's SAE (a parameter the
        learner replaced by a new tensor is replaced here too, so the check sees the same mistake). Checks send
        per-call copies (:func:`utils.checks.learner_copy`); an SAE the grader keeps for every notebook
        (:func:`utils.checks.is_kept`) is never written into: the kernel's changed copy is replaced by the grader's
        with the next call that sends it."""
        import torch

        from utils.checks import is_kept

        if not isinstance(mirrors, dict):
            return
        for key, change in mirrors.items():
            sae = self._by_key[key]() if key in self._by_key else None
            if sae is None or not isinstance(change, dict) or not isinstance(change.get("state"), dict):
                continue
            if is_kept(sae):
                self._kernel_has.pop(key, None)  # out of step: the next call sends the grader's parameters again
                continue
            params = dict(sae.named_parameters())
            replaced = change.get("replaced") if isinstance(change.get("replaced"), list) else []
            with torch.no_grad():
                for name, value in change["state"].items():
                    mine = params.get(name)
                    if mine is None or not isinstance(value, torch.Tensor):
                        continue
                    if name in replaced or mine.shape != value.shape:
                        setattr(sae, name, torch.nn.Parameter(value.to(mine.dtype)))
                    else:
                        mine.copy_(value.to(mine.dtype))
            for name, p in sae.named_parameters():
                self._param_owner[id(p)] = (key, name)
            self._kernel_has[key] = _versions(sae)

    def has(self, name: str) -> bool:
        """Is ``name`` defined and callable in the notebook? (A stub counts: it is defined.)"""
        code = f"import utils.grade.answer as _a; _a.defined(globals(), {name!r}, {self.nonce!r})"
        printed = self.run(code, self._seconds())
        return any(line == self.nonce + "yes" for line in printed.splitlines())


def _content(versions: tuple[tuple[str, int, int, float], ...]) -> tuple[tuple[str, float], ...]:
    return tuple((name, total) for name, _, _, total in versions)


def _versions(module: Any) -> tuple[tuple[str, int, int, float], ...]:
    """Which tensor each parameter is, how often it was changed in place, and its sum (an edit through ``.data``
    bumps no version): equal tuples, the kernel's copy is up to date."""
    return tuple((name, id(p), p._version, float(p.detach().double().sum())) for name, p in module.named_parameters())


class RemoteFunction:
    """Stands in for the learner's function ``name`` inside a check run by the grader (see the module docstring),
    or for a function an earlier call returned (``handle``: a hook made by the learner's hook factory)."""

    def __init__(self, kernel: RemoteKernel, name: str = "", handle: str = "") -> None:
        self.kernel = kernel
        self.name = name or "the function your code returned"
        self.target = {"handle": handle} if handle else {"name": name}
        self.__name__ = name or "hook"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from utils.checks import note_kernel_hooks_left, open_watches

        watches = open_watches()
        for watch in watches:  # what it sees now is the kernel's report (utils.checks.require_watched)
            watch.remote = True
        reply = self.kernel.call(self.target, args, kwargs, watches)
        for watch, report in zip(watches, reply.get("watch") or []):
            if report is not None:
                watch.absorb(report)
        left = reply.get("hooks_left")
        if isinstance(left, list) and left:
            note_kernel_hooks_left([n for n in left if isinstance(n, str)])
        status = reply["status"]
        if status == "ok":
            _copy_back(args, reply.get("args") or [])
            return _with_gradients(reply.get("value"), args, reply.get("grads"))
        if status == "missing":
            raise NameError(f"`{self.name}` is not defined in the notebook")
        if status == "unsendable":
            raise RemoteError(f"your function returned something the grader cannot read: {reply.get('message')}")
        kind, message = str(reply.get("type", "Exception")), str(reply.get("message", ""))
        line = reply.get("line")
        if isinstance(line, list) and len(line) == 2:
            message += f" (in your code, line {line[0]}: `{line[1]}`)"
        builtin = getattr(builtins, kind, None)
        error: Exception = RemoteError(f"{kind}: {message}")
        if reply.get("builtin") is True and isinstance(builtin, type) and issubclass(builtin, Exception):
            try:
                error = builtin(message)
            except TypeError:  # an exception type whose constructor wants other arguments
                pass
        raise error


def _with_gradients(value: Any, args: tuple[Any, ...], grads: Any) -> Any:
    """A scalar loss computed in the kernel, as a tensor here whose ``backward()`` puts the kernel's gradients
    into the grader's argument tensors (so a check can compare gradients with the reference's)."""
    import torch

    if not (isinstance(value, torch.Tensor) and value.numel() == 1 and isinstance(grads, list)
            and len(grads) == len(args)):
        return value
    pairs = [(a, g) for a, g in zip(args, grads)
             if isinstance(a, torch.Tensor) and a.requires_grad and isinstance(g, torch.Tensor) and g.shape == a.shape]
    if not pairs:
        return value.detach()
    leaves, kernel_grads = [a for a, _ in pairs], [g.to(a.dtype) for a, g in pairs]

    class KernelLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, v: Any, *inputs: Any) -> Any:
            return v.detach().clone()

        @staticmethod
        def backward(ctx: Any, grad_output: Any) -> Any:
            return (None, *[grad_output * g for g in kernel_grads])

    return KernelLoss.apply(value.detach(), *leaves)


def _copy_back(sent: tuple[Any, ...], returned: list[Any]) -> None:
    """Apply in-place changes the kernel made to list, dict and tensor arguments to the grader's own objects (the
    copies a check sent; never an object the grader keeps for every notebook, :func:`utils.checks.is_kept`)."""
    import torch

    from utils.checks import _equal, is_kept

    for mine, theirs in zip(sent, returned):
        if theirs is None or is_kept(mine):
            continue
        if isinstance(mine, list) and isinstance(theirs, list) and not _equal(mine, theirs):
            mine[:] = theirs
        elif isinstance(mine, dict) and isinstance(theirs, dict) and not _equal(mine, theirs):
            mine.clear()
            mine.update(theirs)
        elif isinstance(mine, torch.Tensor) and isinstance(theirs, torch.Tensor):
            if mine.shape == theirs.shape and not torch.equal(mine.cpu(), theirs.to(mine.dtype)):
                with torch.no_grad():
                    mine.copy_(theirs.to(mine.dtype))
