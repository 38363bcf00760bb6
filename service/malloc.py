"""glibc's allocator, set for a process that serves requests of up to a few megabytes.

By default glibc serves every allocation over 128 KiB with its own ``mmap`` and returns it
with ``munmap`` on free, and it gives the top of the heap back to the kernel once more
than twice that is free there. It raises both thresholds by itself when a large block
is freed, up to 32 MiB. A worker that imported TensorFlow freed such blocks while
loading, so it runs with high thresholds. A LiteRT worker never did: a request of 256
beats (a 405 KB body, its arrays, a 520 KB answer) then pays fresh, zero-filled pages
for each of its large buffers, every time. That made the LiteRT runtime 8-10 % slower
than TensorFlow at 256 beats over HTTP, though its signature call is faster
(``benchmarks/NOTES.md``, section 13).

Fixed thresholds (which also turn glibc's adjustment off) keep those buffers in the heap
between requests: a worker keeps up to ``TRIM_THRESHOLD_BYTES`` of free heap instead of
returning it, the memory its largest request needed, which a TensorFlow worker keeps
anyway. Other C libraries (musl, macOS) are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024  # blocks at least this big get their own mmap
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024  # free heap kept before it goes back to the kernel
_M_TRIM_THRESHOLD = -1  # <malloc.h>
_M_MMAP_THRESHOLD = -3


def tune_for_requests() -> bool:
    """Set the two thresholds in this process (and in any it forks later); whether glibc
    took them."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
