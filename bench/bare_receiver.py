"""The bare baseline of bench_upload.py: the least any server can do for what an upload's
acknowledgement promises (DESIGN.md invariant 2), written by hand with nothing else around it.

One connection, its first SIZE bytes: received into 1 MiB buffers and written to DEST, their
SHA-256 computed in a second thread beside the copy, write-back started every 64 MiB, fsync at
the end; then the hex digest and a newline go back. No HTTP, no database, no event loop. As a
script (prints the port it listens on, then serves one upload):

    python bench/bare_receiver.py DEST SIZE

The gap between this and the real upload is what the server adds; this against `cp` is what
the promise costs on the machine at hand (the client's sending, the copy into the page cache,
the hash, on the cores there are).
"""

from __future__ import annotations

import hashlib
import os
import queue
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gremlin.web.rawcopy import BUFFER_BYTES, BUFFERS, WRITEBACK_BYTES, start_writeback  # noqa: E402


def receive(conn: socket.socket, fd: int, size: int) -> str:
    digest = hashlib.sha256()
    free: queue.Queue[bytearray] = queue.Queue()
    full: queue.Queue[tuple[bytearray, int] | None] = queue.Queue()
    for _ in range(BUFFERS):
        free.put(bytearray(BUFFER_BYTES))

    def hash_loop() -> None:
        while (item := full.get()) is not None:
            buf, n = item
            digest.update(memoryview(buf)[:n])
            free.put(buf)

    hasher = threading.Thread(target=hash_loop)
    hasher.start()
    left, written, synced = size, 0, 0
    try:
        while left:
            buf = free.get()
            view = memoryview(buf)[: min(BUFFER_BYTES, left)]
            n = conn.recv_into(view)  # at least one byte, then whatever else is there
            if n == 0:
                raise SystemExit("the client closed early")
            while n < len(view):
                try:
                    more = conn.recv_into(view[n:], 0, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if more == 0:
                    break
                n += more
            view = view[:n]
            while view:
                view = view[os.write(fd, view) :]
            left -= n
            written += n
            full.put((buf, n))
            if written - synced >= WRITEBACK_BYTES:
                start_writeback(fd, synced, written - synced)
                synced = written
    finally:
        full.put(None)
        hasher.join()
    os.fsync(fd)
    return digest.hexdigest()


def main() -> None:
    dest, size = sys.argv[1], int(sys.argv[2])
    with socket.create_server(("127.0.0.1", 0)) as server:
        print(server.getsockname()[1], flush=True)
        conn, _ = server.accept()
        with conn:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                conn.sendall(receive(conn, fd, size).encode() + b"\n")
            finally:
                os.close(fd)


if __name__ == "__main__":
    main()
