"""The one module that wires the whole process. Reading it shows the tree:

    serve
    ├── signals          first SIGTERM/SIGINT: stop gracefully; a second: exit now
    └── tree
        ├── writers      the actors that write, each under `supervise` (restart on crash,
        │   └── ...      capped backoff): job supervisor, watchdog, garbage collector ...
        │                cancelled in maintenance (an upgrade), restarted if it is aborted
        ├── handover     listens on SITE/gremlin.sock for `gremlin upgrade` (gremlin.upgrade)
        └── web          hypercorn's trio worker serving the quart-trio app

A stop drains the web server first (stop accepting, finish in-flight requests within
`shutdown_grace_seconds`), then cancels the actors, then clears the server record.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from .actors import supervise
from .actors.fsck_background import serve_fsck
from .actors.gc import serve_gc
from .actors.jobs import serve_jobs
from .actors.watchdog import serve_watchdog
from .media.registry import load_media_types
from .proc import ProcessId
from .runtime import Mode, Runtime
from .settings import Settings
from .store import Site, init_site, open_store
from .store.server_record import claim_server, refuse_if_running, release_server, update_bind
from .upgrade import serve_handover_listener, upgrade_offline_if_needed
from .web.app import create_app
from .web.auth import first_run_link
from .web.bodies import streams_body_route
from .web.maintenance import maintenance_gate
from .web.server import listen_socket, serve_http, socket_url

log = logging.getLogger(__name__)

ActorFactory = Callable[[Runtime], Callable[..., Awaitable[Any]]]


def actors(runtime: Runtime) -> list[tuple[str, Callable[..., Awaitable[Any]]]]:
    """Every background actor that writes, in start order. They run while the mode is NORMAL.
    Entering maintenance cancels them; an actor that owns transcoders must then leave them
    running when `runtime.keep_jobs_running` (the next process adopts them)."""
    types = load_media_types(runtime.settings)
    return [
        ("jobs", partial(serve_jobs, runtime, types)),  # reconciles earlier servers' jobs first
        ("watchdog", partial(serve_watchdog, runtime)),
        ("gc", partial(serve_gc, runtime.store, runtime.site, runtime.settings)),
        ("fsck", partial(serve_fsck, runtime.store, runtime.site, runtime.settings)),
    ]


async def serve_writers(
    runtime: Runtime, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run `actors(runtime)` while the mode is NORMAL; stop them in MAINTENANCE and start
    them again (start-up reconcile included) when maintenance ends without a handover."""
    while True:
        async with trio.open_nursery() as nursery:
            runtime.writers_started()
            for name, actor in actors(runtime):
                await nursery.start(partial(supervise, actor, name=name), name=name)
            task_status.started()
            task_status = trio.TASK_STATUS_IGNORED
            await runtime.wait_mode(Mode.MAINTENANCE)
            nursery.cancel_scope.cancel()
        runtime.writers_stopped()
        log.info("writer actors stopped for maintenance; transcoders left running")
        await runtime.wait_mode(Mode.NORMAL)


@dataclasses.dataclass
class ServeOutcome:
    graceful: bool = True


async def _watch_signals(runtime: Runtime, outcome: ServeOutcome, root: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if not runtime.stop.is_set():
                log.info("signal=%s: stopping gracefully (again to exit now)", signum)
                runtime.stop.set()
                grace = runtime.settings.shutdown_grace_seconds
                root.deadline = min(root.deadline, trio.current_time() + grace + 10)
            else:
                log.warning("signal=%s again: exiting now", signum)
                outcome.graceful = False
                root.cancel()


async def serve(
    settings: Settings,
    *,
    sock: socket.socket | None = None,
    replacing: ProcessId | None = None,
    handle_signals: bool = True,
    announce: Callable[[str], None] | None = None,
    task_status: trio.TaskStatus[Runtime] = trio.TASK_STATUS_IGNORED,
) -> ServeOutcome:
    """Run a server for `settings.site` until stopped. `sock`: an inherited listening socket,
    `replacing`: the old server it takes over from (an upgrade handover)."""
    load_media_types(settings)  # two types claiming one input: refused before anything starts
    await upgrade_offline_if_needed(Site(settings.site.absolute()))
    site = await trio.to_thread.run_sync(init_site, settings.site)
    outcome = ServeOutcome()
    # The server's writes stop by maintenance (freeze), not by the CLI's handover guard.
    async with open_store(site.db, guard_handover=False) as store:
        runtime = Runtime(settings, store)
        if sock is None:
            # Name the live server before trying its port (claim_server checks again, atomically).
            await store.read(refuse_if_running, runtime.me, replacing)
            sock = listen_socket(settings.bind)
        try:
            await store.write(
                partial(claim_server, replacing=replacing),
                runtime.me,
                runtime.version,
                socket_url(sock),
                str(site.control_socket),
            )
        except BaseException:
            sock.close()
            raise
        runtime.url = socket_url(sock)
        try:
            with trio.CancelScope() as root:
                async with trio.open_nursery() as nursery:
                    if handle_signals:
                        nursery.start_soon(_watch_signals, runtime, outcome, root)
                    await _run_tree(runtime, sock, announce, task_status)
                    nursery.cancel_scope.cancel()
        finally:
            # Handed over: the record went with the data to the new server's database.
            with trio.move_on_after(5, shield=True):
                if not runtime.handed_over:
                    await store.write_unfrozen(release_server, runtime.me)
            log.info("stopped pid=%d graceful=%s", runtime.me.pid, outcome.graceful)
    return outcome


async def _run_tree(
    runtime: Runtime,
    sock: socket.socket,
    announce: Callable[[str], None] | None,
    task_status: trio.TaskStatus[Runtime],
) -> None:
    settings = runtime.settings
    async with trio.open_nursery() as actor_nursery:
        listener = partial(serve_handover_listener, runtime, sock)
        await actor_nursery.start(partial(supervise, listener, name="handover"), name="handover")
        quart_app = create_app(runtime)
        app = maintenance_gate(quart_app, runtime)
        async with trio.open_nursery() as web:
            url = await web.start(
                partial(
                    serve_http,
                    app,
                    sock,
                    runtime.stop,
                    grace_seconds=settings.shutdown_grace_seconds,
                    raw_route=streams_body_route(quart_app),
                ),
                name="web",
            )
            # After the web: in a handover, requests wait in the listen queue until it serves.
            await actor_nursery.start(serve_writers, runtime, name="writers")
            await runtime.store.write(update_bind, runtime.me, url)
            if announce is not None:
                announce(url)
                if (link := await first_run_link(runtime, url)) is not None:
                    announce_first_run(link)
            task_status.started(runtime)
        actor_nursery.cancel_scope.cancel()


def announce_stdout(url: str) -> None:
    print(f"contentgremlin serving {url}", flush=True)
    sys.stdout.flush()


def announce_first_run(link: str) -> None:
    print(f"No admin yet: create the admin account at {link} (this link works once)", flush=True)
