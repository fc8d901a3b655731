"""Exercise checks: one module per chapter (``ch00``, ``ch01``, ...).

In a notebook::

    from utils.checks import ch00 as check
    check.next_token_distribution(next_token_distribution)   # prints one pass line or raises

A check runs the learner's object on fixed and randomised inputs, compares it with the reference
implementation in ``utils/`` and, on a mismatch, raises :class:`CheckFailure` whose message names
the most likely mistake. Every check is registered with :func:`exercise`, which is also how the
grader (``python -m utils.grade``) finds them: ``exercises("00")`` lists a chapter's exercises in
order, each with the name of the object the learner must define.
"""

from __future__ import annotations

import functools
import importlib
import math
import numbers
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class CheckFailure(AssertionError):
    """The learner's code ran but gave a wrong answer; the message says what is probably wrong."""


PASS_MARK = "PASS"  # plain ASCII: renders everywhere, also without emoji fonts
FAIL_MARK = "FAIL"


def _learner_line(error: BaseException) -> str:
    """`` (your line 4: `x = cache[...]`)`` for the deepest frame of ``error`` that is the learner's notebook code
    (not this package, not a library), or ``""``."""
    import linecache
    import traceback

    package = __file__.rsplit("/", 2)[0]  # .../utils
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(package) and "site-packages" not in f.filename
              and not f.filename.startswith("<frozen")]
    if not frames:
        return ""
    frame = frames[-1]
    line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
    return f" (in your code, line {frame.lineno}: `{line}`)" if line else ""


def _display_failure(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    """IPython handler for :class:`CheckFailure`: the message alone, no traceback through the checker's frames."""
    stb = [f"\x1b[1;31m{FAIL_MARK}\x1b[0m {value}"]
    shell._showtraceback(etype, value, stb)
    return stb


def _show_failures_plainly() -> None:
    """In a notebook, show a failing check as one plain message instead of a traceback (registered on the first
    failure; the cell still counts as failed, so *Run All* stops there). Does nothing outside IPython, or when the
    notebook already has its own custom exception handler."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return
    current = tuple(getattr(shell, "custom_exceptions", ()))
    if CheckFailure in current or any(c.__name__ != "CheckFailure" for c in current):
        return
    shell.set_custom_exc((CheckFailure,), _display_failure)


@dataclass(frozen=True)
class Exercise:
    chapter: str  # "00"
    number: int  # 1, 2, ... within the chapter
    name: str  # the object the learner defines, and the check's name: check.<name>(<name>)
    title: str
    check: Callable[[Any], None]  # the wrapped check: prints one pass line and returns None, or raises CheckFailure

    @property
    def id(self) -> str:
        return f"{self.chapter}.{self.number}"


_REGISTRY: dict[str, list[Exercise]] = {}


def exercise(chapter: str, number: int, name: str, title: str) -> Callable[[Callable[[Any], str]], Callable[[Any], None]]:
    """Register a check. The decorated function receives the learner's object and either returns a
    short detail string (pass) or raises :class:`CheckFailure` with a diagnostic message.

    The wrapper turns the stub's ``NotImplementedError`` and any other exception the learner's code
    raises into a ``CheckFailure`` with a readable message (naming the learner's own line when their code crashed),
    and prints the single pass line and returns ``None`` (so a notebook cell shows that line and nothing else). In a
    notebook a failure is shown as one plain message, without the checker's frames.
    """

    def decorate(fn: Callable[[Any], str]) -> Callable[[Any], None]:
        label = f"Exercise {chapter}.{number} `{name}`"

        @functools.wraps(fn)
        def wrapper(candidate: Any) -> None:
            _UNVERIFIED.clear()
            try:
                if not callable(candidate):
                    raise CheckFailure(f"{label}: expected a function or class, got {type(candidate).__name__}.")
                try:
                    detail = fn(candidate)
                except CheckFailure as failure:
                    raise CheckFailure(f"{label} failed: {failure}") from None
                except NotImplementedError:
                    raise CheckFailure(
                        f"{label} is not attempted yet: it still raises NotImplementedError. "
                        "Replace the `raise NotImplementedError(...)` line with your code."
                    ) from None
                except Exception as error:  # the learner's code crashed inside the check
                    raise CheckFailure(f"{label}: your code raised {type(error).__name__}: {error}"
                                       f"{_learner_line(error)}") from error
            except CheckFailure:
                _show_failures_plainly()
                raise
            finally:
                unverified, _UNVERIFIED[:] = list(_UNVERIFIED), []
            detail = "; ".join(filter(None, [detail, *unverified]))
            print(f"{PASS_MARK} {label} passed" + (f" — {detail}" if detail else ""))

        entry = Exercise(chapter, number, name, title, wrapper)
        chapter_list = _REGISTRY.setdefault(chapter, [])
        chapter_list[:] = [e for e in chapter_list if e.number != number] + [entry]
        chapter_list.sort(key=lambda e: e.number)
        return wrapper

    return decorate


def exercises(chapter: str) -> list[Exercise]:
    """All registered exercises of ``chapter`` ("00", "01", ...), in order (imports its module)."""
    importlib.import_module(f"{__name__}.ch{chapter}")
    return list(_REGISTRY.get(chapter, []))


def fail(message: str) -> None:
    """Raise a :class:`CheckFailure` (a readable shorthand inside checks)."""
    raise CheckFailure(message)


# --- helpers shared by the chapter check modules -----------------------------------------------
def course_model() -> Any:
    """The embedded model, memoised by ``load_model`` (the notebook's ``model`` is the same object)."""
    from utils.model import load_model

    return track_model(load_model())


def as_tensor(x: Any, what: str) -> Any:
    """The learner's output as a detached float32 CPU tensor, or a readable failure."""
    import torch

    if x is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    if not isinstance(x, torch.Tensor):
        fail(f"{what} should return a torch.Tensor, got {type(x).__name__}.")
    return x.detach().float().cpu()


def as_number(x: Any, what: str) -> float:
    """A Python float from a number or a one-element tensor; a readable failure otherwise."""
    import torch

    if x is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    if isinstance(x, torch.Tensor):
        if x.numel() != 1:
            fail(f"{what} returned a tensor of shape {tuple(x.shape)}; expected a single number.")
        x = x.detach().float().cpu().item()
    if not isinstance(x, numbers.Real) or isinstance(x, bool):
        fail(f"{what} should return a number, got {type(x).__name__}.")
    x = float(x)
    if not math.isfinite(x):
        fail(f"{what} returned {x}: look for a division by zero or an overflow.")
    return x


def dict_result(out: Any, what: str, keys: tuple[str, ...], note: str = "") -> dict[str, Any]:
    """``out`` if it is a dict with every one of ``keys``; else a failure that says what to return (``note`` is added
    to the missing-keys message, e.g. what one of them holds)."""
    if out is None:
        fail(f"{what} returned None: did you forget the `return` statement?")
    if isinstance(out, (tuple, list)) and len(out) == len(keys):
        fail(f"{what} returned a {type(out).__name__} of {len(out)} values; return a dict with the keys {list(keys)}, "
             "so that no one has to remember their order.")
    if not isinstance(out, dict):
        fail(f"{what} returned {type(out).__name__}; return a dict with the keys {list(keys)}.")
    missing = [k for k in keys if k not in out]
    if missing:
        fail(f"{what}: the dict lacks {missing}; return the keys {list(keys)}{note}.")
    return out


def close(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Numbers: math.isclose; tensors: same shape and torch.allclose."""
    import torch

    if isinstance(a, numbers.Real) or isinstance(b, numbers.Real):
        return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=atol)
    # On the CPU: the learner's tensor (see as_tensor) and a reference computed on a GPU may differ in device.
    return a.shape == b.shape and torch.allclose(a.detach().float().cpu(), b.detach().float().cpu(), atol=atol, rtol=rtol)


# --- helpers shared by the chapter check modules ----------------------------------------------
def generator(seed: int | None = None) -> Any:
    """A torch generator: seeded with ``seed`` for the fixed cases, with a fresh seed otherwise."""
    import torch

    return torch.Generator().manual_seed(random.Random().randrange(2**62) if seed is None else seed)


def is_shape_error(error: BaseException) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("shape", "size", "dimension"))


def call_checked(fn: Callable, names: tuple[str, ...], *args: Any, shape_hint: str = "", **kwargs: Any) -> tuple[Any, list[str]]:
    """Call ``fn`` on copies of ``args``; return its result and the names of the tensor (or list)
    arguments it changed in place. A shape error is turned into a failure that explains the shapes."""
    import torch

    def copy(a: Any) -> Any:
        return a.clone() if isinstance(a, torch.Tensor) else learner_copy(a)

    passed = [copy(a) for a in args]
    kwargs = {k: learner_copy(v) for k, v in kwargs.items()}
    try:
        out = fn(*passed, **kwargs)
    except NotImplementedError:  # a subclass of RuntimeError: the wrapper reports the stub
        raise
    except RuntimeError as error:
        if shape_hint and is_shape_error(error):
            shapes = ", ".join(f"{n} {tuple(a.shape)}" for n, a in zip(names, args) if isinstance(a, torch.Tensor))
            fail(f"your code raised a shape error ({error}) on {shapes}. {shape_hint}")
        raise
    changed = []
    for name, a, p in zip(names, args, passed):
        if isinstance(a, torch.Tensor) and (a.shape != p.shape or not torch.equal(a, p.detach())):
            changed.append(name)
        elif isinstance(a, list) and not _equal(a, p):
            changed.append(name)
    return out, changed


def _equal(a: Any, b: Any) -> bool:
    """``a == b`` for the data checks pass (numbers, strings, tensors, and lists, tuples and dicts of them)."""
    import torch

    if a is b:
        return True
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and torch.equal(a.detach().cpu(), b.detach().cpu()))
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) or isinstance(b, dict):
        return (isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
                and all(_equal(a[k], b[k]) for k in a))
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - an object without a usable ==
        return False


def no_in_place(changed: list[str]) -> None:
    if changed:
        name = changed[0]
        fail(f"right values, but your code changed its input `{name}` in place (e.g. `{name} -= ...`, "
             f"`{name}[...] = ...`, `{name}.pop()` or `{name}.div_(...)`), which silently corrupts the caller's "
             f"data. Compute a new object instead.")


def diagnose(got: Any, candidates: list[tuple[Any, str]], **tol: float) -> None:
    """Fail with the message of the first catalogued mistake whose output ``got`` matches."""
    for value, message in candidates:
        if value is not None and close(got, value, **tol):
            fail(message)


# --- behaviour the grader measures inside the learner's kernel --------------------------------------
#
# When the grader calls a function that lives in a student's kernel (utils.grade.remote), what that function does
# to the kernel's model is invisible here. The kernel then reports it (forward calls per block, the token ids fed to
# the model, hooks left attached) and the grader adds the reports to the watches open here. Those reports come from
# the student's process, so a check uses them only to explain a failure or to ask for efficient code, never to
# accept a value.

_OPEN_WATCHES: list[Any] = []  # read by utils.grade.remote
_UNVERIFIED: list[str] = []  # notes of requirements the current check could not verify (see require_watched)
UNVERIFIED = "not verified"  # how those notes begin
_KERNEL_HOOKS_LEFT: list[str] = []  # hook points a remote call left hooks on (the kernel has removed them)


def open_watches() -> list[Any]:
    """The :class:`counting_block_calls` and :class:`recording_tokens` blocks now open (innermost last)."""
    return list(_OPEN_WATCHES)


def note_kernel_hooks_left(names: list[str]) -> None:
    """Called by the grader: a remote call left hooks attached at ``names`` in the kernel."""
    _KERNEL_HOOKS_LEFT.extend(str(n) for n in names)


def take_kernel_hooks_left() -> list[str]:
    """Hook points a remote call has left hooks on since the last call of this function (then forgotten)."""
    names = list(_KERNEL_HOOKS_LEFT)
    _KERNEL_HOOKS_LEFT.clear()
    return names


class _Watch:
    """A context manager that installs hooks on ``model`` while open and registers itself for remote reports."""

    kind = ""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._handles: list[Any] = []
        self.remote = False  # set by utils.grade.remote when a learner's function ran in a kernel meanwhile

    def _install(self) -> None:
        raise NotImplementedError

    def absorb(self, report: Any) -> None:
        """Add what a student's kernel reported for this watch."""
        raise NotImplementedError

    @property
    def value(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Any:
        self._install()
        _OPEN_WATCHES.append(self)
        return self.value

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self in _OPEN_WATCHES:
            _OPEN_WATCHES.remove(self)


def require_watched(watch: _Watch, ok: bool, requirement: str, problem: str) -> None:
    """A requirement on how the learner's code ran (``ok``: what ``watch`` saw meets ``requirement``).

    In this process (self-study: the learner's function ran on this model) a failed requirement fails the check
    with ``problem``. When the learner's function ran in a kernel (``watch.remote``: graded remotely), what the
    watch saw is the kernel's own report, which code in that kernel can forge; so no mark rests on it: the check
    goes on, and its pass line says the requirement was not verified (and what the kernel reported, if it was
    not met). Used for efficiency requirements only; the values a check compares are always computed here."""
    if not watch.remote:
        if not ok:
            fail(problem)
        return
    if ok:
        _UNVERIFIED.append(f"{UNVERIFIED}: {requirement} (your kernel reported it; the grader cannot check it)")
    else:
        _UNVERIFIED.append(f"{UNVERIFIED}, no marks taken: {requirement} — your kernel reported otherwise: {problem}")


class counting_block_calls(_Watch):  # noqa: N801 - used as a context manager, like a function
    """``with counting_block_calls(model) as calls: fn(model, ...)`` counts forward calls of each of
    ``model.blocks`` during the block: ``calls[i]`` (a ``Counter``, 0 for blocks never run). Counts a student's
    kernel reports for a remote call are added (see above: used only to ask for efficient code)."""

    kind = "blocks"

    def __init__(self, model: Any) -> None:
        from collections import Counter

        super().__init__(model)
        self.counts: Counter[int] = Counter()

    @property
    def value(self) -> Any:
        return self.counts

    def _install(self) -> None:
        for i, block in enumerate(self.model.blocks):
            self._handles.append(block.register_forward_hook(lambda *_, i=i: self.counts.update([i])))

    def absorb(self, report: Any) -> None:
        if isinstance(report, dict):
            for block, calls in report.items():
                if isinstance(block, int) and not isinstance(block, bool) and isinstance(calls, int) and calls >= 0:
                    self.counts.update({block: calls})


class recording_tokens(_Watch):  # noqa: N801
    """``with recording_tokens(model) as seen: ...`` records the token ids of every forward pass of ``model``
    during the block, one list per row (read at the embedding; nothing for a model without ``embed``). Rows a
    student's kernel reports for a remote call are added (used only to explain a failure)."""

    kind = "tokens"

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.seen: list[list[int]] = []

    @property
    def value(self) -> Any:
        return self.seen

    def _install(self) -> None:
        embed = getattr(getattr(self.model, "embed", None), "original_component", None)
        if embed is None:
            return

        def pre(module: Any, args: tuple, kwargs: dict) -> None:
            x = args[0] if args else kwargs.get("input")
            if x is not None and hasattr(x, "dim") and not x.is_floating_point():
                rows = x.detach().cpu().reshape(-1, x.shape[-1]) if x.dim() else x.detach().cpu().reshape(1, 1)
                self.seen.extend(r.tolist() for r in rows)

        self._handles.append(embed.register_forward_pre_hook(pre, with_kwargs=True))

    def absorb(self, report: Any) -> None:
        if isinstance(report, list):
            self.seen.extend([t for t in row if isinstance(t, int)] for row in report if isinstance(row, list))


class Recipe:
    """A callable made from data by a course factory: ``Recipe("utils.steering.hooks:clamp_hook", sae, 3175, 40.0)``
    behaves as ``clamp_hook(sae, 3175, 40.0)`` (built on first use). A check hands a learner's function a Recipe
    instead of a closure so that the grader can send it to a student's kernel, which rebuilds it there from the
    factory's name and the (data) arguments."""

    def __init__(self, factory: str, *args: Any) -> None:
        if ":" not in factory or not factory.startswith("utils."):
            raise ValueError(f"a recipe's factory is 'utils.module:function', got {factory!r}")
        self.factory = factory
        self.args = args
        self._made: Any = None

    def build(self) -> Any:
        if self._made is None:  # in a student build the reference is renamed _reference_<name>
            module_name, name = self.factory.split(":")
            module = importlib.import_module(module_name)
            self._made = (getattr(module, "_reference_" + name, None) or getattr(module, name))(*self.args)
        return self._made

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.build()(*args, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> "Recipe":
        """A new recipe over copies of the arguments, not yet built (the built object holds the originals)."""
        import copy

        return Recipe(self.factory, *copy.deepcopy(self.args, memo))

    def __repr__(self) -> str:
        return f"Recipe({self.factory})"


class MemberOf:
    """A classifier that is data: ``MemberOf(texts)(text)`` is ``text in texts``. Checks hand it to a learner's
    function that takes a classifier, so that the grader can send it to a student's kernel (a lambda cannot
    travel; this is rebuilt there from its texts)."""

    def __init__(self, members: Any) -> None:
        self.members = frozenset(members)

    def __call__(self, text: Any) -> bool:
        return text in self.members

    def __repr__(self) -> str:
        return f"MemberOf({len(self.members)} texts)"


# --- isolation between notebooks: what the grader keeps, and what a learner's function gets -----------------------
#
# The grader grades one notebook after another in one process (utils.grade.batch), with the checks' caches (the
# course model, the course SAE, the corpus, the labelled sets, reference results) kept from notebook to notebook.
# Two rules keep one submission from changing another's grade (issue 24):
#
# * a learner's function never receives an object the grader keeps: checks hand it :func:`learner_copy` (or the
#   copies :func:`call_checked` makes), so what it does to its arguments, in this process or through the remote
#   copy-back of changed arguments and mirrored SAEs (utils.grade.remote), lands in a copy;
# * :func:`reset_between_notebooks`, which the grader calls before each notebook, resets the per-notebook state
#   (hook reports, open watches, hooks on the models, the random seeds) and verifies what is kept: the models'
#   weights and every object registered with :func:`keep`. Anything found changed is dropped with every cache of
#   the checks, and loaded afresh when next needed.
#
# The models are never copied (a gigabyte): their hooks are removed and their weights verified instead.

import weakref  # noqa: E402 - this section's own import

_MODELS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()  # model -> fingerprint of its weights
_KEPT: dict[str, tuple[Any, Any, frozenset[int]]] = {}  # name -> (object, fingerprint, ids of its mutable parts)
_KEPT_IDS: set[int] = set()


def _is_model(obj: Any) -> bool:
    """A TransformerLens model (the course model or an organism): never copied."""
    import torch

    return isinstance(obj, torch.nn.Module) and hasattr(obj, "hook_dict")


def track_model(model: Any) -> Any:
    """Note that checks run on ``model`` (its weights' fingerprint is taken the first time): between notebooks its
    hooks are removed and its weights verified. Returns ``model``."""
    if model not in _MODELS:
        _MODELS[model] = _model_fingerprint(model)
    return model


def _model_fingerprint(model: Any) -> Any:
    """A model's weights, cheaply: each parameter's identity, storage, shape, dtype and version counter (bumped by
    every in-place change through the tensor API), and its first 16 values (an edit through ``.data`` bumps no
    version). Sampling values across each tensor would fault in every page of weights the forward pass never
    reads (the bridge computes with its own copies): +280 MB peak in chapter 02's kernel, measured."""
    out = []
    for name, p in model.named_parameters():
        head = p.detach().reshape(-1)[:16].tolist()
        out.append((name, id(p), p.data_ptr(), tuple(p.shape), str(p.dtype), p._version,
                    tuple(repr(x) if math.isfinite(x) else str(x) for x in head)))
    return tuple(out)


def keep(name: str, obj: Any) -> Any:
    """Register ``obj``, an object a check module caches for every notebook (``name``: its cache, for messages),
    as one the grader keeps: its fingerprint is verified between notebooks, and the remote copy-back never writes
    into it or into its parts. Call it where the object is made (a cache miss): its fingerprint then is the
    reference. Returns ``obj``."""
    if name in _KEPT and _KEPT[name][0] is obj:
        return obj
    parts: set[int] = set()
    _KEPT[name] = (obj, _fingerprint(obj, parts), frozenset(parts))
    _KEPT_IDS.clear()
    for _, _, kept_parts in _KEPT.values():
        _KEPT_IDS.update(kept_parts)
    return obj


def is_kept(obj: Any) -> bool:
    """Is ``obj`` (or the object it is part of) one the grader keeps (registered with :func:`keep`)?"""
    return id(obj) in _KEPT_IDS


def learner_copy(obj: Any) -> Any:
    """A copy of ``obj`` to hand to a learner's function, so that nothing it does to it reaches an object the
    grader keeps: a deep copy, except that models and their tokenizers are passed as they are (never copied: the
    grader resets their hooks and verifies their weights between notebooks) and that a :class:`Recipe` is rebuilt
    over copies of its arguments. An SAE is copied too (about 20 MB for the course SAE)."""
    import copy

    if _is_model(obj):
        return obj
    memo: dict[int, Any] = {}
    for model in list(_MODELS):
        memo[id(model)] = model
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is not None:
            memo[id(tokenizer)] = tokenizer
    if id(obj) in memo:
        return obj
    return copy.deepcopy(obj, memo)


def _fingerprint(obj: Any, parts: set[int] | None = None, depth: int = 0) -> Any:
    """What :func:`reset_between_notebooks` compares: values of numbers and strings, each tensor's dtype, shape and
    float64 sum, recursively through lists, tuples, dicts, dataclasses, SAEs and models; other objects by identity.
    ``parts`` collects the ids of the mutable objects met on the way."""
    import dataclasses
    import math

    import torch

    def number(x: float) -> str:
        return repr(x) if math.isfinite(x) else str(x)

    if depth > 50:
        return ("deep", id(obj))
    if depth and _is_model(obj):  # a model inside a kept object: verified on its own (see track_model)
        return ("model", id(obj))
    if parts is not None and not isinstance(obj, (str, bytes, int, float, bool, type(None), tuple, frozenset)):
        parts.add(id(obj))
    if obj is None or isinstance(obj, (str, bytes, bool, int)):
        return obj
    if isinstance(obj, float):
        return number(obj)
    if isinstance(obj, torch.Tensor):
        total = float(torch.sum(obj.detach(), dtype=torch.float64)) if obj.numel() else 0.0
        return ("tensor", str(obj.dtype), tuple(obj.shape), number(total))
    if isinstance(obj, torch.nn.Module):
        tensors = list(obj.named_parameters()) + list(obj.named_buffers())
        return ("module", type(obj).__name__, tuple((n, _fingerprint(t, parts, depth + 1)) for n, t in tensors))
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, tuple(_fingerprint(x, parts, depth + 1) for x in obj))
    if isinstance(obj, (set, frozenset)):
        return (type(obj).__name__, tuple(sorted(repr(_fingerprint(x, None, depth + 1)) for x in obj)))
    if isinstance(obj, dict):
        return ("dict", tuple((repr(k), _fingerprint(v, parts, depth + 1)) for k, v in obj.items()))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return (type(obj).__name__, tuple((f.name, _fingerprint(getattr(obj, f.name), parts, depth + 1))
                                          for f in dataclasses.fields(obj)))
    if isinstance(obj, Recipe):
        return ("recipe", obj.factory, _fingerprint(obj.args, parts, depth + 1))
    if isinstance(obj, MemberOf):
        return ("member_of", _fingerprint(obj.members, None, depth + 1))
    return ("object", type(obj).__name__, id(obj))


def _hooked(model: Any) -> list[str]:
    """Hook points of ``model`` that carry (non-permanent) hooks."""
    try:
        return sorted(name for name, hp in model.hook_dict.items()
                      if any(not getattr(h, "is_permanent", False) for h in list(hp.fwd_hooks) + list(hp.bwd_hooks)))
    except Exception:  # noqa: BLE001 - a model without TransformerLens hook points
        return []


def clear_check_caches() -> None:
    """Empty every memoised function of the loaded check modules (``utils.checks.ch*``), and forget the objects
    they kept."""
    import sys

    for name, module in list(sys.modules.items()):
        if name.startswith(__name__ + ".ch") and module is not None:
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == name:
                    value.cache_clear()
    _KEPT.clear()
    _KEPT_IDS.clear()


def reset_between_notebooks() -> list[str]:
    """Reset what one notebook's grading may leave behind for the next, in the grader's process; called by
    :func:`utils.grade.batch.grade_notebook` before each notebook. It forgets the hooks remote calls reported and
    the open watches, removes every hook from the models the checks ran on, reseeds ``random``, ``torch`` (and
    ``numpy``) with 0, and verifies the weights of those models and every object registered with :func:`keep`: if
    any changed, every cache of the checks is emptied (a changed model is loaded afresh). Returns what it found,
    one line each (nothing after a clean notebook)."""
    import random
    import sys

    import torch

    found: list[str] = []
    for watch in list(_OPEN_WATCHES):
        try:
            watch.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - a watch whose model is gone
            pass
    if _OPEN_WATCHES:
        found.append(f"{len(_OPEN_WATCHES)} watches were still open")
        _OPEN_WATCHES.clear()
    if _KERNEL_HOOKS_LEFT:
        found.append(f"hooks a kernel left (at {', '.join(sorted(set(_KERNEL_HOOKS_LEFT))[:3])}) were still reported")
        _KERNEL_HOOKS_LEFT.clear()
    stale_models = []
    for model, reference in list(_MODELS.items()):
        left = _hooked(model)
        if left:
            found.append(f"the model had hooks attached (at {', '.join(left[:3])})")
        try:
            model.reset_hooks()
        except Exception:  # noqa: BLE001
            pass
        if _model_fingerprint(model) != reference:
            found.append("a model's weights had changed")
            stale_models.append(model)
    stale = [name for name, (obj, reference, _) in _KEPT.items() if _fingerprint(obj) != reference]
    found += [f"the kept {name} had changed" for name in stale]
    if stale or stale_models:
        clear_check_caches()
        if stale_models:
            from utils import model as model_module

            for loader in (model_module.load_model, model_module.load_organism):
                loader.cache_clear()
            for model in stale_models:
                _MODELS.pop(model, None)
    random.seed(0)
    torch.manual_seed(0)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(0)
    return found
