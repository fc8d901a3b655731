"""A sandbox per graded notebook: bubblewrap around the kernel, and a memory watchdog in the grader.

Each kernel runs under ``bwrap`` (Debian's ``bubblewrap``; ``make grade`` installs it as root) with:

* the whole file system **read-only** (the course, the venv, the model cache, other submissions), a
  private ``/tmp`` (other grading folders are hidden; the course, its venv and the model cache stay
  visible, read-only, if they live under ``/tmp``) and ``$HOME``, and write access only to its own
  grading folder (the notebook's copy; the student build inside it is read-only);
* the **course checkout hidden** (``hidden``, an empty directory over it): no ``solutions/``, ``reference/``,
  ``tests/`` or original ``utils/`` sources; only what the kernel needs of it is shown again, read-only
  (``visible``: the course data the student build links to, the venv when it lives in the checkout);
* its **own namespaces**: no network (``--unshare-net``; the grader talks to it over Unix sockets in
  the grading folder), its own process tree (``--unshare-pid``: it cannot see, signal or read
  ``/proc/<pid>/cmdline`` of the grader or other kernels; everything it starts, detached or not, dies
  with it), a new session (no terminal injection), ``--die-with-parent``, and the kernel runs as uid 65534
  ("nobody") with no capabilities, even when the grader is root;
* an **address-space cap** (``RLIMIT_AS``, default 6 GB: a guard against runaway allocation — torch
  reserves far more address space than it uses, so this cannot be the memory budget), a **CPU-time cap**
  (``RLIMIT_CPU``, 7,200 s per process), a **size cap on the private /tmp** (512 MB) and a **process cap**
  (``RLIMIT_NPROC``: the user's current count plus ``max_processes``; it does not bind for root, so the
  watchdog below counts processes too);
* a **watchdog** in the grader (:class:`MemoryWatchdog`): every 0.2 s it measures the sandbox's process tree (the
  largest RSS plus the other processes' private memory, so a fork is not counted twice, plus what the RAM-backed
  private ``/tmp`` holds) and kills the tree past ``memory_mb`` (default 2,000 MB, Binder's limit) or past
  ``max_processes`` processes; the record then says the kernel was stopped and why.

The grader (:mod:`utils.grade.batch`) adds a time budget for all of a notebook's checks together and cuts long
messages and notes in the records.

Where ``bwrap`` is missing or cannot create namespaces (some containers forbid them),
:func:`unavailable` says why; ``python -m utils.grade`` then refuses to grade unless ``--no-sandbox``
is given (the weaker mode: kernels run as plain processes, with the watchdog still on).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BWRAP = "bwrap"
DEFAULT_MEMORY_MB = 2000
DEFAULT_ADDRESS_SPACE = 6_000_000_000
DEFAULT_MAX_PROCESSES = 256
SANDBOX_UID = 65534  # "nobody" inside the sandbox; the grader's own user, mapped, owns the grading folder
DEFAULT_TMP_BYTES = 512_000_000  # the private /tmp's size (RAM-backed: the watchdog counts what is in it)
DEFAULT_CPU_SECONDS = 7200  # CPU time per process (RLIMIT_CPU): a solved chapter's kernel uses a few hundred seconds


def unavailable() -> str | None:
    """None when bubblewrap works here; otherwise what is wrong and what to do."""
    path = shutil.which(BWRAP)
    if path is None:
        return ("bubblewrap (bwrap) is not installed: `make grade` installs it as root (apt-get install bubblewrap), "
                "or pass --no-sandbox to grade without isolation")
    try:
        probe = subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                               capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap did not run ({error}); pass --no-sandbox to grade without isolation"
    if probe.returncode != 0:
        return (f"bubblewrap cannot create namespaces here ({probe.stderr.strip()[:200]}); pass --no-sandbox to "
                "grade without isolation")
    return None


def bwrap_argv(argv: list[str], workdir: Path, read_only: list[Path], address_space: int = DEFAULT_ADDRESS_SPACE,
               max_processes: int = DEFAULT_MAX_PROCESSES, tmp_bytes: int = DEFAULT_TMP_BYTES,
               cpu_seconds: int = DEFAULT_CPU_SECONDS, hidden: Sequence[Path] = (),
               visible: Sequence[Path] = ()) -> list[str]:
    """``argv`` wrapped to run in the sandbox described in the module docstring. ``workdir`` is writable
    (the notebook copy and the kernel's sockets live there); each of ``read_only`` (inside it) is not. Each of
    ``hidden`` is replaced by an empty directory, and then each of ``visible`` (inside a hidden one) is shown again,
    read-only."""
    nproc = _user_processes() + max_processes
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    wrapped = [
        shutil.which(BWRAP) or BWRAP,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--size", str(tmp_bytes), "--tmpfs", "/tmp",
    ]
    for path in _needed_under_tmp():  # the course or its Python may live in /tmp (a CI checkout): keep them visible
        wrapped += ["--ro-bind", str(path), str(path)]
    for path in hidden:
        wrapped += ["--size", "65536", "--tmpfs", str(path)]
    for path in visible:
        wrapped += ["--ro-bind", str(path), str(path)]
    for path in hidden:  # after the mount points of ``visible`` were made in it
        wrapped += ["--remount-ro", str(path)]
    wrapped += ["--bind", str(workdir), str(workdir)]
    for path in read_only:
        wrapped += ["--ro-bind", str(path), str(path)]
    wrapped += [
        "--setenv", "HOME", str(home),
        "--setenv", "TMPDIR", "/tmp",
        "--unsetenv", "JPY_PARENT_PID",  # the grader's pid means nothing in the kernel's pid namespace (--die-with-parent)
        "--unshare-all",  # net, pid, ipc, uts, cgroup, user
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),  # not root inside either: no capabilities at all
        "--die-with-parent",
        "--new-session",
        "--chdir", str(workdir),
        "prlimit", f"--as={address_space}", f"--nproc={nproc}", f"--cpu={cpu_seconds}", "--",
    ]
    return wrapped + list(argv)


def course_hiding(course_root: Path, checkout: Path | None = None) -> tuple[list[Path], list[Path]]:
    """``(hidden, visible)`` for a kernel that imports the student build at ``course_root``: the course checkout
    (default: this repository) hidden, and shown again only where the kernel must read it — the data the build
    links to (``course_root/utils/data``) and the interpreter's environment when it lives in the checkout. Nothing
    is hidden when ``course_root`` is itself inside the checkout (a kernel on the course's own files)."""
    import sys

    checkout = (checkout or Path(__file__).resolve().parents[2]).resolve()
    if course_root.resolve().is_relative_to(checkout):
        return [], []
    visible = [(course_root / "utils" / "data").resolve(), Path(sys.prefix).resolve()]
    visible = [p for p in dict.fromkeys(visible) if p.exists() and p.is_relative_to(checkout) and p != checkout]
    return [checkout], visible


def _needed_under_tmp() -> list[Path]:
    """The folders a kernel needs that the private ``/tmp`` would hide: the course, the venv, the interpreter, the
    model cache, extra check folders — those that lie under ``/tmp``, outermost only."""
    import sys

    from utils.model import course_cache_dir

    candidates = [Path(__file__).resolve().parents[2], Path(sys.prefix), Path(sys.base_prefix),
                  Path(sys.executable).resolve().parent, course_cache_dir()]
    candidates += [Path(d) for d in os.environ.get("COURSE_CHECKS_PATH", "").split(os.pathsep) if d]
    tmp = Path("/tmp")
    under = sorted({p.resolve() for p in candidates if p.exists() and p.resolve().is_relative_to(tmp)
                    and p.resolve() != tmp}, key=lambda p: len(p.parts))
    outermost: list[Path] = []
    for path in under:
        if not any(path.is_relative_to(o) for o in outermost):
            outermost.append(path)
    return outermost


def _user_processes() -> int:
    import psutil

    me = os.getuid()
    count = 0
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info.get("uids")
        if uids is not None and uids.real == me:
            count += 1
    return count


def private_tmp_bytes(procs: list) -> int:
    """Bytes in use in the private ``/tmp`` of a sandboxed tree (seen through ``/proc/<pid>/root``, from the first
    process whose ``/tmp`` is another file system than ours); 0 for a kernel that shares ours."""
    try:
        ours = os.stat("/tmp").st_dev
    except OSError:
        return 0
    for proc in procs:
        path = f"/proc/{proc.pid}/root/tmp"
        try:
            if os.stat(path).st_dev != ours:
                return shutil.disk_usage(path).used
        except OSError:  # gone, or not ours to read
            continue
    return 0


def sandboxed_kernel_manager(workdir: Path, read_only: list[Path], hidden: Sequence[Path] = (),
                             visible: Sequence[Path] = ()) -> type:
    """A ``KernelManager`` class whose kernels start inside the sandbox and talk over Unix sockets in ``workdir``
    (``hidden`` and ``visible`` as in :func:`bwrap_argv`)."""
    from jupyter_client.manager import AsyncKernelManager

    class SandboxedKernelManager(AsyncKernelManager):  # nbclient drives kernels asynchronously
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(workdir / "kernel-ipc")  # sockets are files <ip>-<port>, reachable across the net namespace
            self.connection_file = str(workdir / "kernel-connection.json")  # visible inside (its /tmp is private)

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            # A signal to bubblewrap's process group never reaches the kernel (its own session and pid namespace):
            # interrupt by a message on the control channel instead, which ipykernel turns into KeyboardInterrupt.
            self.kernel_spec.interrupt_mode = "message"
            return bwrap_argv(super().format_kernel_cmd(extra_arguments), workdir, read_only, hidden=hidden,
                              visible=visible)

    return SandboxedKernelManager


class MemoryWatchdog:
    """Kills a process tree (polled every ``interval`` s, from a thread) whose memory passes ``limit_mb`` — the
    largest RSS plus the others' private memory (:func:`utils.memory.tree_rss`) plus what its private ``/tmp``
    holds (RAM-backed, so Binder would count it too) — or that holds more than ``max_processes`` processes (a cap
    that binds even where ``RLIMIT_NPROC`` does not: a grader running as root). ``tripped_mb`` or
    ``tripped_processes`` then says which."""

    def __init__(self, pid: int, limit_mb: float = DEFAULT_MEMORY_MB, interval: float = 0.2,
                 max_processes: int = DEFAULT_MAX_PROCESSES) -> None:
        self.pid = pid
        self.limit = limit_mb * 1_000_000
        self.interval = interval
        self.max_processes = max_processes
        self.tripped_mb: float | None = None
        self.tripped_processes: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        from utils.memory import process_tree, tree_rss

        while not self._stop.wait(self.interval):
            tree = process_tree(self.pid)
            if len(tree) > self.max_processes:
                self.tripped_processes = len(tree)
            else:
                total = tree_rss(tree) + private_tmp_bytes(tree)
                if total <= self.limit:
                    continue
                self.tripped_mb = total / 1_000_000
            for proc in reversed(tree):
                try:
                    proc.kill()
                except psutil.Error:
                    pass
            return

    def __enter__(self) -> MemoryWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
