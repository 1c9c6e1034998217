"""Give host memory that was freed back to the operating system between the phases of a step.

XLA:CPU's compiler (LLVM) and the host-side work of a step allocate many small and medium
blocks; once freed, glibc keeps them in its heaps, so a process's RSS stays at its highest
point plus fragmentation. Measured on the tiny_cpu demo (benchmarks/demo_memory.py), about
1.3 GB of freed-but-held heap after the first generation call, which the next phase's large
arrays (mmapped, so they cannot reuse it) then pile on top of. `malloc_trim(0)` returns those
pages; it costs milliseconds, and does nothing where the C library has no such call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any


@functools.cache
def _malloc_trim() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return getattr(libc, "malloc_trim", None)  # glibc only


def release() -> None:
    """Return the C heap's free pages to the system (no-op outside glibc)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
