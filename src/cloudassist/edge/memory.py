"""Memory that connections took is given back when they close (glibc only; elsewhere nothing is done).

Each TLS connection allocates a 256 KiB read buffer (uvloop's SSLProtocol) of which it touches a page or
two. glibc serves such blocks with mmap at first, but after the first is freed it raises its mmap threshold
above them (the "dynamic threshold") and carves them from the heap, where a flood of connections leaves
holes that are never returned: measured, 600 idle TLS connections opened and closed again left the
process 10-15 MB larger each time. So the threshold is pinned at 128 KiB (each buffer is mapped and
unmapped with its connection: 28 KB resident per idle TLS connection instead of 47 KB), and after many
connections have closed the heap's free memory is handed back with malloc_trim.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable, Sequence
from typing import Final

from cloudassist.edge.guard import ConnectionGuard

log = logging.getLogger("cloudassist.edge")

M_MMAP_THRESHOLD: Final = -3  # glibc's mallopt parameter
MMAP_THRESHOLD: Final = 128 * 1024
#: Connections closed since the last trim that make the next one worth it.
TRIM_AFTER: Final = 256


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc has both; musl and others have neither
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def pin_mmap_threshold() -> Callable[[], None] | None:
    """Pin glibc's mmap threshold; a function that trims the heap, or None where this is not glibc."""
    libc = _libc()
    if libc is None:
        return None
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    return lambda: libc.malloc_trim(0)


async def keep_trimming(guards: Sequence[ConnectionGuard], trim: Callable[[], None], every: float = 10.0) -> None:
    """Every `every` seconds, trim the heap if TRIM_AFTER connections or more closed since the last trim."""
    trimmed = sum(guard.closed for guard in guards)
    while True:
        await asyncio.sleep(every)
        closed = sum(guard.closed for guard in guards)
        if closed - trimmed >= TRIM_AFTER:
            trim()
            trimmed = closed
