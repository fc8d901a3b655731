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

    return load_model()


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
        return a.clone() if isinstance(a, torch.Tensor) else list(a) if isinstance(a, list) else a

    passed = [copy(a) for a in args]
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
        elif isinstance(a, list) and a != p:
            changed.append(name)
    return out, changed


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
