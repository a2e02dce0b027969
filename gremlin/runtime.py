"""What the actors and the web app of one running server share."""

from __future__ import annotations

import dataclasses
import enum
import time

import trio

from . import __version__
from .proc import ProcessId
from .settings import Settings
from .store import Site, Store


class Mode(enum.Enum):
    NORMAL = "normal"
    MAINTENANCE = "maintenance"


@dataclasses.dataclass
class Runtime:
    settings: Settings
    store: Store
    me: ProcessId = dataclasses.field(default_factory=ProcessId.current)
    version: str = __version__
    mode: Mode = Mode.NORMAL
    url: str = ""
    started_at: float = dataclasses.field(default_factory=time.time)
    # Set when new work may be waiting (an upload committed, a retry): wakes the job supervisor.
    jobs_changed: trio.Event = dataclasses.field(default_factory=trio.Event)
    # Set to stop the server gracefully (a signal, or the handover telling us to exit).
    stop: trio.Event = dataclasses.field(default_factory=trio.Event)

    @property
    def site(self) -> Site:
        return Site(self.settings.site)

    def nudge_jobs(self) -> None:
        """Wake the job supervisor now rather than at its next poll."""
        self.jobs_changed.set()
