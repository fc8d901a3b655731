"""Give freed memory back to the operating system; measure a process tree's memory.

PyTorch frees large CPU tensors to glibc's allocator, which often keeps the pages mapped; after a few
49k-wide logit tensors a kernel's RSS stays hundreds of MB above what is alive. On Binder (killed at
2 GB) that matters, so the heavy helpers call :func:`release` when they finish.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from typing import Any


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    """glibc, opened by its soname first. ``ctypes.util.find_library`` runs ``ldconfig -p`` in a child process: a
    fork of a 1.3 GB kernel that a process-tree memory watchdog sees as a second 1.3 GB process (the grader once
    killed chapter 03's kernel at "2,652 MB" that way), so it is only the fallback."""
    for name in ("libc.so.6", None):
        try:
            name = name or ctypes.util.find_library("c")
            libc = ctypes.CDLL(name) if name else None
        except OSError:
            continue
        if libc is not None and hasattr(libc, "malloc_trim"):
            return libc
    return None


def release() -> None:
    """Collect garbage, then ask glibc to return free heap pages (``malloc_trim(0)``; a no-op without glibc).
    Returns nothing, so that a notebook cell ending in ``release()`` prints nothing."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def process_tree(pid: int) -> list:
    """``pid``'s process and all its descendants (``psutil.Process`` objects); empty if it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(procs: list) -> int:
    """Memory (bytes) of ``procs``, skipping any that exited meanwhile: the largest resident set (RSS) among them
    plus the private memory (USS) of every other one.

    Summing RSS would count a forked child's pages twice: between ``fork`` and ``exec`` a child of a 1.3 GB kernel
    shows a 1.3 GB RSS while it adds nearly nothing (copy-on-write). A container's memory limit counts each page
    once; this sum does too for pages the largest process shares, and still counts in full what a child allocates
    for itself. (Where a child's USS cannot be read, its RSS is used.)"""
    import psutil

    rss: list[tuple[int, Any]] = []
    for proc in procs:
        try:
            rss.append((proc.memory_info().rss, proc))
        except psutil.Error:
            pass
    if not rss:
        return 0
    rss.sort(key=lambda pair: pair[0], reverse=True)
    total = rss[0][0]
    for resident, proc in rss[1:]:
        try:
            total += proc.memory_full_info().uss
        except psutil.AccessDenied:
            total += resident
        except psutil.Error:
            pass
    return total
