"""Giving the C heap's free pages back to the system after a burst of work.

The operator's memory rises while it handles a burst (ten thousand
certificates issued, a wave of notification retries) and most of it is freed
when the burst ends. CPython frees its objects, but the C allocator (glibc
malloc, which holds every object larger than 512 bytes: bodies, PEM blocks,
JSON text) keeps freed pages that do not sit at the very top of a heap as part
of the process: after a burst over ten thousand objects about 20 MB of the
operator's resident memory was such free pages. ``malloc_trim`` hands them
back (without moving anything, so nothing is copied and nothing breaks).

:func:`trim` is that call where the C library has it (glibc), and does nothing
elsewhere (musl, macOS). :class:`HeapTrimmer` decides when: after resident
memory has grown, so a burst is followed by a trim and a quiet process is left
alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function: Any = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None  # a C library without malloc_trim (musl)
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim_function: Callable[[int], int] = function
    return trim_function


def available() -> bool:
    """Whether this process's C library can give free heap pages back."""
    return _malloc_trim() is not None


def trim() -> bool:
    """Give the C heap's free pages back to the system; True when some were given back."""
    function = _malloc_trim()
    return bool(function(0)) if function is not None else False


def resident_bytes() -> int | None:
    """This process's resident memory (Linux ``/proc/self/statm``); None where there is no such file."""
    try:
        pages = int(Path("/proc/self/statm").read_text(encoding="ascii").split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass
class HeapTrimmer:
    """When to trim: when resident memory grew by ``growth`` bytes since the last trim left it.

    A burst leaves the process larger than the last trim left it, so the next
    check trims; a quiet process stays where the trim left it and is not
    trimmed again and again for nothing.
    """

    growth: int = 8 * 2**20
    _after_last: int | None = field(default=None, init=False)

    def due(self, resident: int) -> bool:
        return self._after_last is None or resident - self._after_last >= self.growth

    def trimmed(self, resident: int) -> None:
        """Record what the trim left (a later decrease, and so a later growth, counts from there)."""
        self._after_last = resident

    def observed(self, resident: int) -> None:
        """A check that did not trim: memory that went down lowers the mark growth is counted from."""
        if self._after_last is not None and resident < self._after_last:
            self._after_last = resident


__all__ = ["HeapTrimmer", "available", "resident_bytes", "trim"]
