"""The old server's side, in process: maintenance entered and left, the socket passed, exit.

A real store in tmp_path and a real control socket; the "writer actors" are one stand-in task
that stops when maintenance begins (as serve.py's `serve_writers` does)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import trio

from gremlin.errors import Maintenance
from gremlin.proc import ProcessId
from gremlin.runtime import Mode, Runtime
from gremlin.settings import load
from gremlin.store import Site, open_store
from gremlin.store.handover import Stage, read_handover, request_handover
from gremlin.upgrade import serve_handover_listener
from gremlin.upgrade.protocol import Op, request
from gremlin.upgrade.sockets import ControlClosed, connect_control
from gremlin.web.maintenance import maintenance_gate
from gremlin.web.server import listen_socket


async def _writers(runtime: Runtime) -> None:
    runtime.writers_started()
    await runtime.wait_mode(Mode.MAINTENANCE)
    runtime.writers_stopped()


@contextlib.asynccontextmanager
async def old_server(site: Site, **flags: object) -> AsyncIterator[tuple[Runtime, socket.socket]]:
    settings = load(site.root, {"handover_timeout_seconds": 5, **flags}, environ={})
    tcp = listen_socket("127.0.0.1:0")
    try:
        async with open_store(site.db, guard_handover=False) as store, trio.open_nursery() as n:
            runtime = Runtime(settings, store)
            n.start_soon(_writers, runtime)
            await n.start(serve_handover_listener, runtime, tcp)
            yield runtime, tcp
            n.cancel_scope.cancel()
    finally:
        tcp.close()


async def _request(runtime: Runtime, new: ProcessId | None = None) -> int:
    return await runtime.store.write_unfrozen(request_handover, new or ProcessId.current(), "9.9")


async def _stage(runtime: Runtime, hid: int) -> Stage:
    return (await runtime.store.read(read_handover, hid)).stage


async def _touch(conn) -> None:  # type: ignore[no-untyped-def]
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('touched', 'yes')")


async def test_maintenance_is_acknowledged_and_left_when_the_new_process_goes(site: Site) -> None:
    async with old_server(site) as (runtime, _):
        hid = await _request(runtime)
        channel = await connect_control(site.control_socket)
        await channel.send(request(Op.HANDOVER, id=hid))
        reply, _ = await channel.receive()
        assert reply["ok"] and reply["stage"] == "acknowledged"
        assert runtime.mode is Mode.MAINTENANCE
        assert await _stage(runtime, hid) is Stage.ACKNOWLEDGED
        with pytest.raises(Maintenance):
            await runtime.store.write(lambda c: None)
        channel.close()  # the new process dies
        with trio.fail_after(5):
            await runtime.wait_mode(Mode.NORMAL)
        assert await _stage(runtime, hid) is Stage.ABORTED
        await runtime.store.write(lambda c: None)  # writes again


async def test_silence_ends_maintenance_after_the_timeout(site: Site) -> None:
    async with old_server(site, handover_timeout_seconds=0.5) as (runtime, _):
        hid = await _request(runtime)
        async with await connect_control(site.control_socket) as channel:
            await channel.send(request(Op.HANDOVER, id=hid))
            assert (await channel.receive())[0]["ok"]
            with trio.fail_after(5):
                await runtime.wait_mode(Mode.NORMAL)
            handover = await runtime.store.read(read_handover, hid)
            assert handover.stage is Stage.ABORTED and "no word" in (handover.reason or "")


async def test_socket_then_exit_hands_over(site: Site) -> None:
    async with old_server(site) as (runtime, tcp):
        hid = await _request(runtime)
        async with await connect_control(site.control_socket) as channel:
            await channel.send(request(Op.HANDOVER, id=hid))
            assert (await channel.receive())[0]["ok"]
            await channel.send(request(Op.SOCKET))
            reply, fds = await channel.receive()
            assert reply["ok"] and len(fds) == 1
            received = socket.socket(fileno=fds[0])
            assert received.getsockname() == tcp.getsockname()
            received.close()
            await channel.send(request(Op.EXIT))
            assert (await channel.receive())[0]["ok"]
        with trio.fail_after(5):
            await runtime.stop.wait()
        assert runtime.handed_over
        assert runtime.mode is Mode.MAINTENANCE  # it never leaves it: it exits
        assert await _stage(runtime, hid) is Stage.EXITING


async def test_abort_message_leaves_maintenance(site: Site) -> None:
    async with old_server(site) as (runtime, _):
        hid = await _request(runtime)
        async with await connect_control(site.control_socket) as channel:
            await channel.send(request(Op.HANDOVER, id=hid))
            assert (await channel.receive())[0]["ok"]
            await channel.send(request(Op.ABORT, reason="copy failed: test"))
            with trio.fail_after(5):
                await runtime.wait_mode(Mode.NORMAL)
        handover = await runtime.store.read(read_handover, hid)
        assert handover.stage is Stage.ABORTED and handover.reason == "copy failed: test"


@pytest.fixture
def other_process() -> Iterator[ProcessId]:
    other = subprocess.Popen(["sleep", "30"])
    try:
        found = ProcessId.of(other.pid)
        assert found is not None
        yield found
    finally:
        other.kill()
        other.wait()


async def test_a_request_recorded_by_another_process_is_refused(
    site: Site, other_process: ProcessId
) -> None:
    async with old_server(site) as (runtime, _):
        hid = await _request(runtime, other_process)
        async with await connect_control(site.control_socket) as channel:
            await channel.send(request(Op.HANDOVER, id=hid))
            reply, _ = await channel.receive()
            assert not reply["ok"] and f"pid {other_process.pid}" in reply["error"]
            with pytest.raises(ControlClosed):
                await channel.receive()
        assert runtime.mode is Mode.NORMAL


async def test_the_gate_answers_writes_503_in_maintenance_and_serves_reads(site: Site) -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    settings = load(site.root, {}, environ={})
    async with open_store(site.db) as store:
        runtime = Runtime(settings, store)
        transport = httpx.ASGITransport(app=maintenance_gate(app, runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.post("/x")).status_code == 200
            runtime.set_mode(Mode.MAINTENANCE)
            refused = await client.post("/x")
            assert refused.status_code == 503
            assert refused.headers["retry-after"]
            assert refused.json()["error"]["code"] == "maintenance"
            assert (await client.get("/x")).text == "done"
            runtime.set_mode(Mode.NORMAL)
            assert (await client.delete("/x")).status_code == 200


async def test_in_flight_write_requests_are_waited_for(site: Site) -> None:
    settings = load(site.root, {}, environ={})
    async with open_store(site.db) as store:
        runtime = Runtime(settings, store)
        finished = []
        async with trio.open_nursery() as nursery:

            async def slow_write() -> None:
                with runtime.write_request():
                    await trio.sleep(0.3)
                    finished.append(True)

            nursery.start_soon(slow_write)
            await trio.sleep(0.05)
            runtime.set_mode(Mode.MAINTENANCE)
            with pytest.raises(Maintenance), runtime.write_request():
                pass
            await runtime.wait_write_requests_idle()
            assert finished == [True]
