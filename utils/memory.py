"""Give freed memory back to the operating system.

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
