"""A full disk, as the job engine sees it: an environmental condition, never the job's fault.

`is_disk_full` recognises the ways a full disk reaches us (an OSError ENOSPC/EDQUOT, our
DiskFull, SQLite's "database or disk is full"); `free_bytes` and `Gate` decide whether there is
room to launch a job; `retry_on_full_disk` repeats a step (finishing a job) until it fits.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

from ..errors import DiskFull

log = logging.getLogger(__name__)

T = TypeVar("T")

FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 30.0


def is_disk_full(e: BaseException) -> bool:
    """True if `e` (or the single exception a group wraps) says the disk is full."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    if isinstance(e, DiskFull):
        return True
    if isinstance(e, OSError):
        return e.errno in FULL_ERRNOS
    if isinstance(e, sqlite3.OperationalError):
        return "database or disk is full" in str(e).lower()
    return False


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def low_on_space(path: Path, margin_bytes: int) -> bool:
    try:
        return free_bytes(path) < margin_bytes
    except OSError:
        return False  # cannot tell: assume not (a missing dir is someone else's problem)


class Gate:
    """Whether jobs may be launched: pauses below `margin_bytes` free, logging one line when it
    pauses and one when it resumes (not one per poll)."""

    def __init__(self, path: Path, margin_bytes: int) -> None:
        self.path = path
        self.margin_bytes = margin_bytes
        self.paused = False
        self._hold_until = 0.0

    def open(self) -> bool:
        if self.paused and time.monotonic() < self._hold_until:
            return False
        try:
            free = free_bytes(self.path)
        except OSError:
            return True
        low = free < self.margin_bytes
        if low and not self.paused:
            log.warning(
                "jobs paused: disk full, free=%d bytes on %s (need %d); waiting for space",
                free, self.path, self.margin_bytes,
            )  # fmt: skip
        elif not low and self.paused:
            log.warning("jobs resumed: free=%d bytes on %s", free, self.path)
        self.paused = low
        return not low

    def pause(self, why: str, hold_seconds: float = 30.0) -> None:
        """Pause after a write failed for a full disk although free space looked fine (quotas,
        reserved blocks): `open()` stays shut for `hold_seconds`, then looks again."""
        if not self.paused:
            log.warning("jobs paused: disk full (%s); waiting for space", why)
        self.paused = True
        self._hold_until = time.monotonic() + hold_seconds


@contextlib.contextmanager
def postponed_if_full(what: str) -> Iterator[None]:
    """Swallow a full disk (one warning line: `what`) for a step that will be redone later."""
    try:
        yield
    except Exception as e:
        if not is_disk_full(e):
            raise
        log.warning("%s: disk full", what)


async def retry_on_full_disk(
    step: Callable[[bool], Awaitable[T]], *, what: str, max_seconds: float = RETRY_MAX_SECONDS
) -> T:
    """`await step(retrying)` until it does not fail for a full disk: with backoff, one log line
    when it first fails and one when it finally goes through. Other errors pass through."""
    import trio  # here, not at the top: the runner imports this module and never needs trio

    delay, retrying = RETRY_MIN_SECONDS, False
    while True:
        try:
            result = await step(retrying)
        except Exception as e:
            if not is_disk_full(e):
                raise
            if not retrying:
                log.warning("%s: disk full; retrying until there is space", what)
            retrying = True
            await trio.sleep(delay)
            delay = min(max_seconds, delay * 2)
            continue
        if retrying:
            log.warning("%s: went through now that there is space", what)
        return result
