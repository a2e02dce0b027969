"""Fixtures for the job engine: fast settings, and the real supervisor + watchdog."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any

import pytest
import trio

from gremlin.actors.jobs import serve_jobs
from gremlin.actors.watchdog import serve_watchdog
from gremlin.runtime import Runtime
from gremlin.settings import Settings
from gremlin.store import open_store


@pytest.fixture
def fast(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        stall_seconds=1.5,
        watchdog_poll_seconds=0.1,
        retry_backoff_seconds=0.05,
        retry_backoff_max_seconds=0.2,
        kill_grace_seconds=1.0,
        jobs_concurrency=2,
        jobs_nice=0,
    )


Engine = Callable[..., contextlib.AbstractAsyncContextManager[Runtime]]


@pytest.fixture
def engine() -> Engine:
    """`async with engine(settings, types) as runtime:` runs the real supervisor and watchdog.
    Leaving the block cancels them like a plain stop (set runtime.mode to MAINTENANCE first to
    leave the job processes running, as a handover or a crash would)."""

    @contextlib.asynccontextmanager
    async def run(
        settings: Settings,
        types: Mapping[str, Any],
        *,
        watchdog: bool = True,
        fork_server: bool = True,
    ) -> AsyncIterator[Runtime]:
        async with open_store(settings.db_path) as store, trio.open_nursery() as nursery:
            runtime = Runtime(settings, store)
            await nursery.start(
                partial(serve_jobs, runtime, types, fork_server=fork_server, poll_seconds=0.2)
            )
            if watchdog:
                await nursery.start(serve_watchdog, runtime)
            yield runtime
            nursery.cancel_scope.cancel()

    return run
