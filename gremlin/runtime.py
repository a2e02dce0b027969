"""What the actors and the web app of one running server share."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import time
from collections.abc import Iterator

import trio

from .errors import Maintenance
from .proc import ProcessId
from .settings import Settings
from .store import Site, Store
from .store.schema import APP_VERSION


class Mode(enum.Enum):
    NORMAL = "normal"
    MAINTENANCE = "maintenance"


@dataclasses.dataclass
class Runtime:
    settings: Settings
    store: Store
    me: ProcessId = dataclasses.field(default_factory=ProcessId.current)
    version: str = APP_VERSION
    mode: Mode = Mode.NORMAL
    url: str = ""
    started_at: float = dataclasses.field(default_factory=time.time)
    # Set when new work may be waiting (an upload committed, a retry): wakes the job supervisor.
    jobs_changed: trio.Event = dataclasses.field(default_factory=trio.Event)
    # Set to stop the server gracefully (a signal, or the handover telling us to exit).
    stop: trio.Event = dataclasses.field(default_factory=trio.Event)
    # True once this server handed its socket and site to a new version: on exit it leaves
    # the server record (it belongs to the set-aside database now) and its transcoders alone.
    handed_over: bool = False
    _mode_changed: trio.Event = dataclasses.field(default_factory=trio.Event, repr=False)
    _write_requests: int = 0
    _write_requests_idle: trio.Event = dataclasses.field(default_factory=trio.Event, repr=False)
    _writers_running: bool = False
    _writers_stopped: trio.Event = dataclasses.field(default_factory=trio.Event, repr=False)

    @property
    def site(self) -> Site:
        return Site(self.settings.site)

    def nudge_jobs(self) -> None:
        """Wake the job supervisor now rather than at its next poll."""
        self.jobs_changed.set()

    # -- maintenance (upgrade handover) ------------------------------------------------------
    #
    # In MAINTENANCE the web refuses new write requests (503), serve.py cancels the actors that
    # write (job supervisor, watchdog, GC ...), and those actors, seeing `keep_jobs_running`,
    # leave their transcoders running for the next process to adopt.

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        self._mode_changed.set()
        self._mode_changed = trio.Event()

    async def wait_mode(self, mode: Mode) -> None:
        while self.mode is not mode:
            await self._mode_changed.wait()

    def writers_started(self) -> None:
        self._writers_running = True
        self._writers_stopped = trio.Event()

    def writers_stopped(self) -> None:
        self._writers_running = False
        self._writers_stopped.set()

    async def wait_writers_stopped(self) -> None:
        """Until the actors that write (serve.py's `actors`) have all returned."""
        if self._writers_running:
            await self._writers_stopped.wait()

    @property
    def keep_jobs_running(self) -> bool:
        """Actors being cancelled now must leave transcoders running (an upgrade), rather
        than stop them and requeue their jobs (a plain stop)."""
        return self.mode is Mode.MAINTENANCE or self.handed_over

    @contextlib.contextmanager
    def write_request(self) -> Iterator[None]:
        """Around one HTTP request that may write: refused (Maintenance) unless NORMAL;
        counted, so maintenance can let those in flight finish."""
        if self.mode is not Mode.NORMAL:
            raise Maintenance()
        if self._write_requests == 0:
            self._write_requests_idle = trio.Event()
        self._write_requests += 1
        try:
            yield
        finally:
            self._write_requests -= 1
            if self._write_requests == 0:
                self._write_requests_idle.set()

    async def wait_write_requests_idle(self) -> None:
        if self._write_requests:
            await self._write_requests_idle.wait()
