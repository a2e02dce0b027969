"""Supervision in one small function: restart a crashed actor with capped backoff."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

log = logging.getLogger(__name__)

Actor = Callable[..., Awaitable[Any]]  # takes task_status=...


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
        except Exception:
            if not started:
                raise
            if trio.current_time() - began >= max_backoff_seconds:
                backoff = min_backoff_seconds
            log.exception("actor crashed; restarting actor=%s backoff=%.1fs", name, backoff)
        await trio.sleep(backoff)
        backoff = min(backoff * 2, max_backoff_seconds)
