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


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release() -> bool:
    """Collect garbage, then ask glibc to return free heap pages (``malloc_trim(0)``).
    Returns True when the trim ran (False on platforms without glibc, where it is a no-op)."""
    gc.collect()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def process_tree(pid: int) -> list:
    """``pid``'s process and all its descendants (``psutil.Process`` objects); empty if it is gone."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(procs: list) -> int:
    """Total resident memory (bytes) of ``procs``, skipping any that exited meanwhile."""
    import psutil

    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total
