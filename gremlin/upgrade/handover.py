"""`gremlin upgrade SITE`, the new process's side of the protocol (see protocol.py).

The data is copied twice (recopy.py): in full, with the new version's steps and integrity
check, BEFORE the request is recorded (a failure then aborts without disturbing the old
server), and again inside the maintenance window from the frozen file, which is fast.

`hand_over` returns the listening socket (None if the old server died before passing it) once
the old server has exited and db.sqlite is the new database; the caller then serves on it.
With no live server it upgrades offline and returns nothing to serve.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

import trio

from ..errors import SchemaTooNew, SiteError
from ..proc import ProcessId
from ..store import Site, connect, latest, transaction, version_of
from ..store.handover import (
    Stage,
    read_handover,
    refuse_during_handover,
    request_handover,
    set_stage,
)
from ..store.schema import APP_VERSION
from ..store.server_record import ServerRecord, live_server
from .copy import CopyFailed, CopyReport, copy_database
from .offline import UpgradeResult, app_version_of, finish_swap, record_stage, upgrade_offline
from .protocol import HandoverAborted, HandoverRefused, HandoverTimeout, Op, request
from .recopy import recopy_database
from .sockets import ControlChannel, ControlClosed, connect_control
from .swap import holds_database, remove_database

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Handed:
    """What the new process takes over: the old server, its socket (if passed), the result."""

    old: ServerRecord
    sock: socket.socket | None
    result: UpgradeResult


class _OldGone(Exception):
    """The old server died mid-handover: carry on as with a stale record."""


def _inspect(site: Site) -> tuple[ServerRecord | None, str]:
    if not site.db.exists():
        raise SiteError(
            f"no database at {site.db}", hint=f"Create the site: gremlin init {site.root}"
        )
    conn = connect(site.db)
    try:
        found = version_of(conn)
        if found > latest():
            raise SchemaTooNew(str(site.db), found, latest())
        refuse_during_handover(conn)  # before copying for nothing
        return live_server(conn), app_version_of(conn)
    finally:
        conn.close()


def _request(site: Site) -> int:
    conn = connect(site.db)
    try:
        with transaction(conn):
            return request_handover(conn, ProcessId.current(), APP_VERSION)
    finally:
        conn.close()


def _record_failed_precopy(site: Site, reason: str) -> None:
    """The attempt, recorded as aborted at once (the old server never saw it)."""
    conn = connect(site.db)
    try:
        with transaction(conn):
            handover_id = request_handover(conn, ProcessId.current(), APP_VERSION)
            set_stage(conn, handover_id, Stage.ABORTED, reason)
    finally:
        conn.close()


def _stage_of(site: Site, handover_id: int) -> Stage | None:
    conn = connect(site.db)
    try:
        handover = read_handover(conn, handover_id)
    finally:
        conn.close()
    return None if handover is None else handover.stage


async def hand_over(settings: Any) -> Handed | UpgradeResult:
    """Steps 2-6 of the protocol; an offline upgrade when no server is running."""
    site = Site(settings.site.absolute())
    old, old_version = await trio.to_thread.run_sync(_inspect, site)
    if old is None:
        log.info("no server running: upgrading offline")
        return await trio.to_thread.run_sync(upgrade_offline, site)
    precopy = await _precopy(site)
    handover_id = await trio.to_thread.run_sync(_request, site)
    log.info(
        "handover id=%d requested from pid=%d version=%s", handover_id, old.process.pid, old.version
    )
    handover = _Handover(settings, site, old, old.version or old_version, handover_id, precopy)
    return await handover.run()


async def _precopy(site: Site) -> CopyReport:
    """The full copy of the live database, before the old server is asked for anything."""
    try:
        report = await trio.to_thread.run_sync(lambda: copy_database(site.db, site.db_new))
    except CopyFailed as e:
        log.error("the copy failed before the server entered maintenance: %s", e.message)
        e.hint = (
            "The running server was not disturbed (it never entered maintenance) and"
            " db_new.sqlite was removed. Report this with the log."
        )
        await trio.to_thread.run_sync(
            _record_failed_precopy, site, f"before maintenance: CopyFailed: {e.message}"
        )
        raise
    log.info(
        "copied before the window in %.2fs by %s; the window copies again from the frozen file",
        report.seconds,
        report.method,
    )
    return report


@dataclasses.dataclass
class _Handover:
    settings: Any
    site: Site
    old: ServerRecord
    old_version: str
    id: int
    precopy: CopyReport
    channel: ControlChannel | None = None
    stage: Stage = Stage.REQUESTED

    @property
    def timeout(self) -> float:
        return float(self.settings.handover_timeout_seconds)

    async def record(self, stage: Stage, reason: str | None = None) -> None:
        self.stage = stage
        await trio.to_thread.run_sync(record_stage, self.site.db, self.id, stage, reason)

    async def ask(self, op: Op, **fields: Any) -> list[int]:
        """Send `op`, wait for the reply; the old's death becomes _OldGone."""
        assert self.channel is not None
        try:
            with trio.fail_after(self.timeout):
                await self.channel.send(request(op, **fields))
                reply, fds = await self.channel.receive()
        except (ControlClosed, trio.TooSlowError) as e:
            if not self.old.process.alive():
                raise _OldGone() from e
            if isinstance(e, trio.TooSlowError):
                raise HandoverTimeout(self.stage, self.timeout) from e
            raise HandoverAborted(self.stage, f"the old server closed the connection ({e})") from e
        if not reply.get("ok"):
            for fd in fds:
                os.close(fd)
            raise HandoverRefused(str(reply.get("error")))
        return fds

    async def run(self) -> Handed:
        sock: socket.socket | None = None
        try:
            with contextlib.suppress(_OldGone):
                await self.connect()
                await self.ask(Op.HANDOVER, id=self.id, version=APP_VERSION)
                self.stage = Stage.ACKNOWLEDGED  # recorded by the old server
            report = await self.copy()
            try:
                fds = await self.ask(Op.SOCKET)
                sock = socket.socket(fileno=fds[0])
                for fd in fds[1:]:
                    os.close(fd)
                await self.ask(Op.EXIT)
            except _OldGone:
                log.warning("the old server died mid-handover: taking over as from a stale record")
            except BaseException:
                if (
                    await trio.to_thread.run_sync(_stage_of, self.site, self.id)
                    is not Stage.EXITING
                ):
                    raise
                log.warning("no reply to EXIT, but the old server recorded it is exiting")
            await self.wait_old_exit()
        except BaseException as e:
            if sock is not None:
                sock.close()
            with trio.CancelScope(shield=True):
                await self.abort(e)
            raise
        finally:
            if self.channel is not None:
                self.channel.close()
        set_aside = await trio.to_thread.run_sync(finish_swap, self.site, self.id, self.old_version)
        log.info("handover id=%d done: old database kept as %s", self.id, set_aside.name)
        result = UpgradeResult(set_aside, report, self.old_version, self.precopy)
        return Handed(self.old, sock, result)

    async def connect(self) -> None:
        path = Path(self.old.control_socket or self.site.control_socket)
        try:
            with trio.fail_after(self.timeout):
                self.channel = await connect_control(path)
        except (OSError, trio.TooSlowError) as e:
            if not self.old.process.alive():
                raise _OldGone() from e
            raise HandoverAborted(self.stage, f"cannot reach the control socket {path}: {e}") from e
        pid, _, _ = self.channel.peer()
        if pid != self.old.process.pid:
            raise HandoverAborted(self.stage, f"{path} belongs to pid {pid}, not the server")

    async def copy(self) -> CopyReport:
        """Inside the window: from the frozen file; a drifted schema in full (recopy.py)."""
        await self.record(Stage.COPYING)
        db, db_new = self.site.db, self.site.db_new
        if self.precopy.method == "rows":
            report = await trio.to_thread.run_sync(
                lambda: copy_database(db, db_new, handover_id=self.id)
            )
        else:
            report = await trio.to_thread.run_sync(
                lambda: recopy_database(db, db_new, handover_id=self.id)
            )
        await self.record(Stage.COPIED)
        return report

    async def wait_old_exit(self) -> None:
        """pidfd: until the old server has exited, or has closed every file of db.sqlite (it
        drained and closed its store: what is left is the interpreter's own teardown, ~0.15 s
        that need not be in the window). Past the bound it is killed (it is frozen, its data
        already copied, so nothing is lost)."""
        bound = float(self.settings.shutdown_grace_seconds) + self.timeout
        pid = self.old.process.pid
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            if not self.old.process.alive():
                return
            with trio.move_on_after(bound):
                while holds_database(pid, self.site.db):
                    with trio.move_on_after(0.005):
                        await trio.lowlevel.wait_readable(pidfd)
                        return
                log.info("old server pid=%d closed the database; it is exiting", pid)
                return
            log.warning(
                "old server pid=%d still running after %.0fs: killing it",
                pid,
                bound,
            )
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            with trio.fail_after(10):
                await trio.lowlevel.wait_readable(pidfd)
        finally:
            os.close(pidfd)

    async def abort(self, error: BaseException) -> None:
        reason = f"{type(error).__name__}: {error}"
        log.error("handover id=%d aborted at stage=%s: %s", self.id, self.stage.value, reason)
        await trio.to_thread.run_sync(remove_database, self.site.db_new)
        with contextlib.suppress(Exception):
            await trio.to_thread.run_sync(
                record_stage, self.site.db, self.id, Stage.ABORTED, reason
            )
        if self.channel is not None:
            with contextlib.suppress(ControlClosed, OSError), trio.move_on_after(2):
                await self.channel.send(request(Op.ABORT, reason=reason))
