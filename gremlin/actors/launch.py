"""Starting job processes: through the pre-warmed fork server, or a fresh `python -m` runner.

Either way the job process is detached and has recorded itself in JOBDIR/pid by the time
`launch` returns; which launcher made it makes no difference to anyone watching it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import trio

log = logging.getLogger(__name__)

LAUNCH_TIMEOUT_SECONDS = 30.0


class LaunchFailed(Exception):
    pass


def _child_env() -> dict[str, str]:
    """Our environment, with our sys.path so that jobs import what the server can."""
    paths = [p for p in sys.path if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


async def launch_with_runner(jobdir: Path) -> None:
    """The fallback: a fresh interpreter (`python -m gremlin.actors.runner JOBDIR`)."""
    result = await trio.run_process(
        [sys.executable, "-m", "gremlin.actors.runner", str(jobdir)],
        check=False,
        env=_child_env(),
    )
    if result.returncode != 0:
        raise LaunchFailed(f"runner exited {result.returncode}")


class Launcher:
    """Launches through a fork server when one is up, else through the plain runner."""

    def __init__(self) -> None:
        self._sock: trio.socket.SocketType | None = None
        self._buffer = b""
        self._lock = trio.Lock()

    @property
    def warm(self) -> bool:
        return self._sock is not None

    async def launch(self, jobdir: Path, *, warm_module: str = "") -> None:
        if self._sock is not None:
            try:
                with trio.fail_after(LAUNCH_TIMEOUT_SECONDS):
                    return await self._ask(jobdir, warm_module)
            except (OSError, trio.TooSlowError, EOFError) as e:
                log.warning("fork server unavailable, using the plain runner: %s", e)
                self._drop()
        await launch_with_runner(jobdir)

    async def _ask(self, jobdir: Path, warm_module: str) -> None:
        assert self._sock is not None
        async with self._lock:
            request = json.dumps({"jobdir": str(jobdir), "warm": warm_module}) + "\n"
            await self._sock.send(request.encode())
            while b"\n" not in self._buffer:
                data = await self._sock.recv(4096)
                if not data:
                    raise EOFError("fork server closed its socket")
                self._buffer += data
            line, _, self._buffer = self._buffer.partition(b"\n")
        answer = line.decode()
        if answer != "ok":
            raise LaunchFailed(answer)

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@contextlib.asynccontextmanager
async def open_launcher(
    *, fork_server: bool = True, preload: Iterable[str] = ()
) -> AsyncIterator[Launcher]:
    """A Launcher; with `fork_server`, backed by a fork server that lives as long as this."""
    launcher = Launcher()
    if not fork_server:
        yield launcher
        return
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "gremlin.actors.forkserver", str(theirs.fileno()), *preload],
            pass_fds=(theirs.fileno(),),
            env=_child_env(),
            stdin=subprocess.DEVNULL,
        )
    except OSError as e:
        log.warning("cannot start the fork server, using the plain runner: %s", e)
        ours.close()
        theirs.close()
        yield launcher
        return
    theirs.close()
    launcher._sock = trio.socket.from_stdlib_socket(ours)
    try:
        yield launcher
    finally:
        launcher._drop()  # EOF: the fork server exits
        with trio.move_on_after(5, shield=True):
            await process.wait()
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
