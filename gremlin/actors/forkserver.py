"""The pre-warmed fork server: job processes without a fresh interpreter each.

    python -m gremlin.actors.forkserver FD [MODULE ...]

A child of the server with Pillow, gremlin and the media types' worker modules already
imported. It reads one request a line from the unix socket FD ({"jobdir", "warm"}), forks a
launcher that starts the job process exactly as `python -m gremlin.actors.runner JOBDIR` would
(new session, pid file before any work, log, status file), and answers "ok" once the job process
has recorded itself, or "error ...". The job process is re-parented away at once: neither the
server nor this process is ever its parent, so a job outlives both.

It exits when the socket closes (the server stopped or died). It is single-threaded, which keeps
fork safe. Modules named in "warm" are imported after answering, so the next job finds them.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import signal
import socket
import sys
from pathlib import Path

from .runner import launch_detached

PRELOAD = ("PIL.Image", "PIL.ImageOps", "gremlin.actors.runner", "gremlin.media.base")


def _warm(module: str) -> None:
    if module and module not in sys.modules:
        try:
            importlib.import_module(module)
        except Exception as e:  # a worker module that fails to import fails its job, not us
            print(f"forkserver: cannot preload {module}: {e}", file=sys.stderr, flush=True)
        # What is loaded now lives as long as we do: out of the collector's sight, so that a
        # job process's collections never write to (copy-on-write) these inherited pages.
        gc.freeze()


def _launch(sock: socket.socket, jobdir: Path) -> str:
    child = os.fork()
    if child == 0:
        code = 1
        try:
            sock.close()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0 if launch_detached(jobdir) else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return "ok"
    return f"error: job process did not record itself (launcher status {status})"


def serve(fd: int, preload: list[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server; EOF stops us
    for module in (*PRELOAD, *preload):
        _warm(module)
    sock = socket.socket(fileno=fd)
    reader = sock.makefile("rb")
    for line in reader:
        request: dict[str, str] = {}
        try:
            request = json.loads(line)
            answer = _launch(sock, Path(request["jobdir"]))
        except Exception as e:
            answer = f"error: {type(e).__name__}: {e}"
        try:
            sock.sendall(answer.encode() + b"\n")
        except OSError:
            return
        _warm(str(request.get("warm") or ""))


def main() -> int:
    if len(sys.argv) < 2:
        print("usage: python -m gremlin.actors.forkserver FD [MODULE ...]", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        serve(int(sys.argv[1]), sys.argv[2:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
