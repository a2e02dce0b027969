"""The handover listener: the old server's side of the protocol (see protocol.py).

Listens on SITE/gremlin.sock (owner-only; a peer of another user is refused). One handover
at a time: a HANDOVER request puts the server in maintenance and acknowledges; then SOCKET
passes the listening socket and EXIT stops the server for good. ABORT, the connection closing
(the new process died) or `handover_timeout_seconds` without a message all end maintenance:
the store thaws, the writer actors start again (reconciling their jobs), writes are accepted.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import trio

from ..runtime import Mode, Runtime
from ..store import Site, latest
from ..store.handover import Handover, Stage, read_handover, set_stage
from .protocol import Op, reply_error, reply_ok
from .sockets import ControlChannel, ControlClosed, listen_control, unlink_if_ours
from .swap import remove_database

log = logging.getLogger(__name__)


class _Abort(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def serve_handover_listener(
    runtime: Runtime,
    listening: socket.socket,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve handover requests on the control socket until cancelled or handed over."""
    path = runtime.site.control_socket
    listener, inode = await listen_control(path)
    try:
        task_status.started()
        while not runtime.handed_over:
            conn, _ = await listener.accept()
            async with ControlChannel(conn) as channel:
                try:
                    await _serve_one(runtime, listening, channel)
                except (ControlClosed, trio.TooSlowError) as e:
                    log.warning("handover connection dropped before a request: %s", e)
    finally:
        listener.close()
        unlink_if_ours(path, inode)


async def _record(
    runtime: Runtime, handover_id: int, stage: Stage, reason: str | None = None
) -> None:
    await runtime.store.write_unfrozen(set_stage, handover_id, stage, reason)
    log.info(
        "handover id=%d stage=%s%s", handover_id, stage.value, f" reason={reason}" if reason else ""
    )


async def _serve_one(runtime: Runtime, listening: socket.socket, channel: ControlChannel) -> None:
    timeout = runtime.settings.handover_timeout_seconds
    with trio.fail_after(timeout):
        message, fds = await channel.receive()
    for fd in fds:
        os.close(fd)
    handover = await _check_request(runtime, channel, message)
    if isinstance(handover, str):
        log.warning("handover refused: %s", handover)
        await channel.send(reply_error(handover))
        return
    try:
        await _enter_maintenance(runtime, handover.id)
        await channel.send(
            reply_ok(stage=Stage.ACKNOWLEDGED.value, version=runtime.version, schema=latest())
        )
        while True:
            try:
                with trio.fail_after(timeout):
                    message, fds = await channel.receive()
            except trio.TooSlowError:
                raise _Abort(f"no word from the new process for {timeout:g}s") from None
            except ControlClosed as e:
                raise _Abort(f"the new process went away ({e})") from None
            for fd in fds:
                os.close(fd)
            match _op(message):
                case Op.SOCKET:
                    await channel.send(reply_ok(), fds=[listening.fileno()])
                    await _record(runtime, handover.id, Stage.SOCKET_SENT)
                case Op.EXIT:
                    await _record(runtime, handover.id, Stage.EXITING)
                    runtime.handed_over = True
                    await channel.send(reply_ok())
                    log.info("handing over to pid=%d: exiting", handover.new.pid)
                    runtime.stop.set()
                    return
                case Op.ABORT:
                    raise _Abort(str(message.get("reason") or "aborted by the new process"))
                case _:
                    await channel.send(reply_error(f"unexpected message {message!r}"))
    except _Abort as e:
        await _leave_maintenance(runtime, handover, e.reason)
    except BaseException:
        with trio.CancelScope(shield=True):
            await _leave_maintenance(runtime, handover, "the handover listener failed")
        raise


def _op(message: dict[str, Any]) -> Op | None:
    try:
        return Op(message.get("op"))
    except ValueError:
        return None


async def _check_request(
    runtime: Runtime, channel: ControlChannel, message: dict[str, Any]
) -> Handover | str:
    """The recorded handover this request names, or why it is refused."""
    if _op(message) is not Op.HANDOVER:
        return f"expected a handover request, got {message!r}"
    pid, uid, _ = channel.peer()
    if uid not in (os.getuid(), 0):
        return f"peer uid {uid} is not ours"
    if runtime.mode is not Mode.NORMAL or runtime.stop.is_set():
        return f"the server is {'stopping' if runtime.stop.is_set() else runtime.mode.value}"
    handover = await runtime.store.read(read_handover, int(message.get("id", 0)))
    if handover is None:
        return f"no handover request {message.get('id')} is recorded"
    if handover.stage is not Stage.REQUESTED:
        return f"handover {handover.id} is at stage {handover.stage.value}"
    if handover.new.pid != pid or not handover.new.alive():
        return f"handover {handover.id} was requested by pid {handover.new.pid}, not {pid}"
    return handover


async def _enter_maintenance(runtime: Runtime, handover_id: int) -> None:
    """Refuse new writes, let in-flight ones finish, stop the writers, freeze, checkpoint."""
    settings = runtime.settings
    began = trio.current_time()
    await _record(runtime, handover_id, Stage.MAINTENANCE)
    runtime.set_mode(Mode.MAINTENANCE)
    grace = settings.maintenance_write_grace_seconds
    with trio.move_on_after(grace) as waited:
        await runtime.wait_write_requests_idle()
    if waited.cancelled_caught:
        log.warning(
            "write requests still in flight after %.1fs: their writes will be refused", grace
        )
    try:
        with trio.fail_after(settings.handover_timeout_seconds):
            await runtime.wait_writers_stopped()
        with trio.fail_after(grace):
            await runtime.store.freeze()
    except trio.TooSlowError:
        raise _Abort("in-flight writes did not finish in time") from None
    await runtime.store.checkpoint()
    await _record(runtime, handover_id, Stage.ACKNOWLEDGED)
    log.info("maintenance: acknowledged in %.3fs", trio.current_time() - began)


async def _leave_maintenance(runtime: Runtime, handover: Handover, reason: str) -> None:
    """Back to normal: the handover is off (recorded), writes and writers resume."""
    await _record(runtime, handover.id, Stage.ABORTED, reason)
    with trio.move_on_after(1):  # its socket closes a moment before it is gone
        while handover.new.alive():
            await trio.sleep(0.02)
    if not handover.new.alive():  # it cannot clean up after itself any more
        await trio.to_thread.run_sync(remove_database, Site(runtime.settings.site).db_new)
    runtime.store.thaw()
    runtime.set_mode(Mode.NORMAL)
    log.warning("handover aborted, leaving maintenance: %s", reason)
