"""glibc's allocator set to keep freed memory for reuse, as a training loop wants.

By default glibc hands allocations above a moving threshold (128 KiB at first) to ``mmap`` and returns them
to the OS when freed, so every step's activation tensors come back as fresh pages, each one a page fault;
Dask's workers go further and trim the heap at 64 KiB (``MALLOC_TRIM_THRESHOLD_``). On this project's CPU
cells that is time in the kernel, not in the model: ProtoNet's quick T15 1-shot cell, one thread, spent 5.95 s
of system time beside 27.08 s of user time (9.46 s with Dask's setting), and 0.86 s with the thresholds
below, the same F1 to the last digit (``/usr/bin/time``; docs/cost.md). Memory stays with the process that
freed it, up to the trim threshold; a cell's peak is unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 2**20  # blocks below this come from the heap and are reused
TRIM_THRESHOLD = 1 * 2**30  # free memory kept at the heap's top before it goes back to the OS


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's thresholds once per process; False where the C library is not glibc (nothing is changed)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
