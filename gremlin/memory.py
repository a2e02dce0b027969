"""The server's memory: how many malloc arenas glibc may make.

glibc gives threads that allocate at once arenas of their own, up to 8 per core, and memory
freed in one arena serves only that arena. A server's threads come and go (trio's worker
threads for SQLite and file reads, the uploads' copy and hash threads), so the long-running
process keeps fragments in many arenas: measured with tests/torture/soak.py (4 client threads,
8 minutes, ~40,000 requests, ~5,000 uploads), the server's RSS grew from 77 to 142 MiB and was
still growing; with 2 arenas it stayed between 83 and 94 MiB, and its Python objects did not
grow in either run. The threads mostly hold the GIL, so they rarely contend for an arena.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's <malloc.h>
SERVER_ARENAS = 2


def limit_malloc_arenas(count: int = SERVER_ARENAS) -> bool:
    """Ask glibc for at most `count` arenas; call before the process starts threads. Does
    nothing (False) off Linux/glibc, or if the admin set MALLOC_ARENA_MAX (theirs stands)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    done = bool(mallopt(M_ARENA_MAX, count))
    log.debug("malloc arenas limited count=%d done=%s", count, done)
    return done
