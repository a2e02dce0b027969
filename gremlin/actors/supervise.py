"""Supervision in one small function: restart a crashed actor with capped backoff."""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..errors import GremlinError

log = logging.getLogger(__name__)

Actor = Callable[..., Awaitable[Any]]  # takes task_status=...


def _handled(e: BaseException) -> str | None:
    """The message of a handled error (GremlinError, or a full disk) inside `e`, if that is
    all `e` is; None for anything that deserves a traceback."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    if isinstance(e, GremlinError):
        return e.message
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device ({e.filename or 'a write'})"
    return None


async def supervise(
    actor: Actor,
    *,
    name: str,
    min_backoff_seconds: float = 0.5,
    max_backoff_seconds: float = 30.0,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run `actor` under `nursery.start`; restart it when it raises, stop when it returns.

    A start-up failure of the first run reaches our caller (so `serve` fails loudly); later
    crashes are logged and restarted after a backoff that doubles up to `max_backoff_seconds`
    and resets once the actor has run healthily for that long. Only `Exception` is caught:
    cancellation and KeyboardInterrupt pass through.
    """
    backoff = min_backoff_seconds
    started = False
    while True:
        began = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                handle = await nursery.start(actor)
                if not started:
                    started = True
                    task_status.started(handle)
            return
        except Exception as e:
            if not started:
                raise
            if trio.current_time() - began >= max_backoff_seconds:
                backoff = min_backoff_seconds
            if (handled := _handled(e)) is not None:
                # A condition of the machine (a full disk ...), not a bug: one line, no traceback.
                log.error("actor=%s stopped: %s; restarting in %.1fs", name, handled, backoff)
            else:
                log.exception("actor crashed; restarting actor=%s backoff=%.1fs", name, backoff)
        await trio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff_seconds)
