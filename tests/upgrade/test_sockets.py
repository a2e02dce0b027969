"""The control channel: JSON lines and a listening socket passed by SCM_RIGHTS."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import trio

from gremlin.upgrade.sockets import ControlChannel, ControlClosed, connect_control, listen_control
from gremlin.web.server import listen_socket


async def test_a_listening_socket_passed_over_the_channel_accepts(tmp_path: Path) -> None:
    a, b = trio.socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    left, right = ControlChannel(a), ControlChannel(b)
    tcp = listen_socket("127.0.0.1:0")
    port = tcp.getsockname()[1]
    await left.send({"op": "socket"}, fds=[tcp.fileno()])
    await left.send({"op": "second"})
    message, fds = await right.receive()
    assert message == {"op": "socket"} and len(fds) == 1
    tcp.close()  # the receiver's copy keeps the socket listening
    received = socket.socket(fileno=fds[0])
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    conn, _ = received.accept()
    client.sendall(b"ping")
    assert conn.recv(4) == b"ping"
    for s in (client, conn, received):
        s.close()
    assert (await right.receive()) == ({"op": "second"}, [])
    assert right.peer()[0] == os.getpid()
    left.close()
    with pytest.raises(ControlClosed):
        await right.receive()
    right.close()


async def test_long_site_paths_still_bind_and_connect(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "gremlin.sock"
    assert len(str(path)) > 107
    listener, inode = await listen_control(path)
    assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
    async with trio.open_nursery() as nursery:

        async def serve_one() -> None:
            conn, _ = await listener.accept()
            async with ControlChannel(conn) as channel:
                message, _ = await channel.receive()
                await channel.send({"ok": True, "echo": message["op"]})

        nursery.start_soon(serve_one)
        async with await connect_control(path) as channel:
            await channel.send({"op": "hello"})
            assert (await channel.receive())[0] == {"ok": True, "echo": "hello"}
    listener.close()
