"""Benchmark: a 1 GiB upload over loopback, tus and multipart, against `cp` of the same file.

A real `gremlin serve` on a temporary site receives the file from a client that sends it with
sendfile(2) (efficient, so that the server is what is measured; curl -T alone reaches only
~0.7 GiB/s here): as one tus PATCH (`application/offset+octet-stream`) and as
`POST /api/v1/media` multipart, `--rounds` times each, taking turns with the bare receiver
below (best counts, as for cp; `sync` and memory warmed before every timing, cp's included:
see `settle`). Jobs are held back meanwhile
(they would hash and decode the uploads). Each upload is acknowledged only after its bytes
are SHA-256'd, fsynced and committed, so `cp` is timed both alone and followed by `sync` of
the copy. Two floors are timed too: SHA-256 of the file alone, and the same client sending the
file to `bare_receiver.py` (socket to file, the hash beside, fsync; no HTTP, no database).
Prints each time, the ratio cp/upload (goal >= 0.9), upload against the bare receiver, the
server's CPU per GiB, and its peak RSS growth over the run (VmHWM minus VmRSS before the first
upload; goal <= 64 MiB).

    python bench/bench_upload.py [--mib 1024] [--rounds 3] [--dir /path/on/the/disk/to/test]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import h11
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gremlin.accounts import create_token, create_user  # noqa: E402
from gremlin.store import connect, init_site, transaction  # noqa: E402

MiB = 1024 * 1024


def make_file(path: Path, mib: int) -> None:
    """A JPEG head (so the commit accepts it) and pseudo-random filler."""
    from io import BytesIO

    from PIL import Image

    head = BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 10)).save(head, "JPEG")
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        f.write(head.getvalue())
        written = len(head.getvalue())
        while written < mib * MiB:
            n = min(MiB, mib * MiB - written)
            f.write(block[:n])
            written += n


def proc_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(scratch: Path, size: int) -> None:
    """The same before every timing, cp's and the uploads': everything written back, then
    `size` bytes of memory made warm. On this VM the guest returns freed memory to the host
    within seconds, and writing 1 GiB into pages the host must supply again runs at ~0.5 GB/s
    instead of ~2.7 (dd after a delete and a 3 s pause, vs right after the delete); a file of
    `size` bytes written and deleted just before leaves that many pages ready for the next
    writer. Without it, whichever timing follows a pause loses several times over."""
    subprocess.run(["sync"], check=True)
    block = b"\0" * MiB
    with scratch.open("wb") as f:
        for _ in range(size // MiB + 64):
            f.write(block)
    scratch.unlink()


def drop_uploads(content: Path) -> None:
    """Delete what the last upload stored, as cp's copy is deleted between its runs."""
    for path in content.rglob("*"):
        if path.is_file() and path.stat().st_size > MiB:
            path.unlink()


def best_of(runs: int, argv: list[str], cleanup: Path) -> float:
    times = []
    for _ in range(runs):
        settle(cleanup.with_name("scratch"), cleanup.with_name("source.jpg").stat().st_size)
        times.append(timed(argv)[0])
        cleanup.unlink()
    return min(times)


def send(url: str, method: str, headers: dict[str, str], source: Path,
         prefix: bytes = b"", suffix: bytes = b"") -> tuple[int, dict[str, str]]:  # fmt: skip
    """One request whose body is `prefix`, the file, `suffix`, sent with sendfile(2): an
    efficient client (curl -T sends 64 KiB at a time, ~0.7 GiB/s here, slower than cp), so
    that the server is what is measured. Returns the status and headers."""
    parts = urlsplit(url)
    size = len(prefix) + source.stat().st_size + len(suffix)
    conn = h11.Connection(h11.CLIENT)
    fields = [("Host", parts.netloc), ("Content-Length", str(size)), *headers.items()]
    with socket.create_connection((parts.hostname, parts.port)) as sock, source.open("rb") as f:
        sock.sendall(conn.send(h11.Request(method=method, target=parts.path, headers=fields)))
        sock.sendall(prefix)
        offset, length = 0, source.stat().st_size
        while offset < length:
            offset += os.sendfile(sock.fileno(), f.fileno(), offset, length - offset)
        sock.sendall(suffix)
        # Tell h11 the body went out (it counts it against Content-Length), without making
        # it: a `b"x" * size` here cost this client 1-2 s per GiB, timed as the upload's.
        step = memoryview(bytes(MiB))
        for sent in range(0, size, MiB):
            conn.send_with_data_passthrough(h11.Data(data=step[: min(MiB, size - sent)]))
        conn.send(h11.EndOfMessage())
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                return event.status_code, {k.decode(): v.decode() for k, v in event.headers}


def bare_upload(root: Path, source: Path) -> float:
    """Seconds for the same client to send `source` to bare_receiver.py (started beforehand,
    not timed), until the receiver's digest comes back."""
    size = source.stat().st_size
    receiver = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bare_receiver.py")), str(root / "bare"),
         str(size)], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline())
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port)) as sock, source.open("rb") as f:
            offset = 0
            while offset < size:
                offset += os.sendfile(sock.fileno(), f.fileno(), offset, size - offset)
            reply = sock.makefile("rb").readline()
        seconds = time.perf_counter() - start
        assert len(reply.strip()) == 64, reply
        return seconds
    finally:
        receiver.wait(60)
        (root / "bare").unlink(missing_ok=True)


def hash_seconds(source: Path) -> float:
    """SHA-256 of the (cached) file in this process: the hash alone, on one core."""
    start = time.perf_counter()
    with source.open("rb") as f:
        hashlib.file_digest(f, "sha256")
    return time.perf_counter() - start


def tus_upload(url: str, auth: dict[str, str], source: Path) -> None:
    tus = {**auth, "Tus-Resumable": "1.0.0"}
    name = base64.b64encode(source.name.encode()).decode()
    length = str(source.stat().st_size)
    created = httpx.post(f"{url}/api/v1/uploads", headers={
        **tus, "Upload-Length": length, "Upload-Metadata": f"filename {name}"})  # fmt: skip
    assert created.status_code == 201, created.text
    patch = {**tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    status, headers = send(created.headers["Location"], "PATCH", patch, source)
    assert status == 204 and "gremlin-media-id" in headers, (status, headers)


def multipart_upload(url: str, auth: dict[str, str], source: Path) -> None:
    boundary = "bench" + os.urandom(8).hex()
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nbench\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{source.name}"'
            '\r\nContent-Type: image/jpeg\r\n\r\n').encode()  # fmt: skip
    tail = f"\r\n--{boundary}--\r\n".encode()
    ctype = f"multipart/form-data; boundary={boundary}"
    status, headers = send(f"{url}/api/v1/media", "POST", {**auth, "Content-Type": ctype},
                           source, head, tail)  # fmt: skip
    assert status == 201, (status, headers)


def measured(pid: int, upload: Callable[[], None]) -> tuple[float, float]:
    """(seconds, server CPU seconds) of one upload."""
    cpu = cpu_seconds(pid)
    start = time.perf_counter()
    upload()
    return time.perf_counter() - start, cpu_seconds(pid) - cpu


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="where the site lives")
    parser.add_argument("--rounds", type=int, default=3, help="uploads of each kind (best counts)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-upload-", dir=args.dir))
    try:
        site = init_site(root / "site")
        conn = connect(site.db)
        with transaction(conn):
            token = create_token(conn, create_user(conn, "bench", None), "bench")
        conn.close()
        source = root / "source.jpg"
        make_file(source, args.mib)
        subprocess.run(["sync"], check=True)  # no writeback of the source during the timings
        size = source.stat().st_size

        copy = root / "copy.jpg"
        cp_seconds = best_of(3, ["cp", str(source), str(copy)], copy)
        cp_sync_seconds = best_of(3, ["sh", "-c", f"cp '{source}' '{copy}' && sync '{copy}'"], copy)
        sha_seconds = min(hash_seconds(source) for _ in range(3))

        server = subprocess.Popen(
            [sys.executable, "-m", "gremlin", "serve", str(site.root), "--bind", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            # No job runs during the timings (they would hash and decode the uploads):
            # the supervisor waits while free space is under this, i.e. always.
            env={**os.environ, "GREMLIN_JOBS_MIN_FREE_BYTES": str(2**62)},
        )
        try:
            assert server.stdout is not None
            url = ""
            while not url:
                line = server.stdout.readline()
                if not line:
                    raise SystemExit("the server did not start")
                if m := re.search(r"serving (http://\S+)", line):
                    url = m.group(1)
            rss_before = proc_kib(server.pid, "VmRSS")
            auth = {"Authorization": f"Bearer {token}"}
            tus_runs, multipart_runs, bare_runs = [], [], []
            for _ in range(args.rounds):
                settle(root / "scratch", size)
                bare_runs.append(bare_upload(root, source))
                settle(root / "scratch", size)
                tus_runs.append(measured(server.pid, lambda: tus_upload(url, auth, source)))
                drop_uploads(site.content)
                settle(root / "scratch", size)
                multipart_runs.append(
                    measured(server.pid, lambda: multipart_upload(url, auth, source))
                )
                drop_uploads(site.content)
            peak = proc_kib(server.pid, "VmHWM")
        finally:
            server.terminate()
            server.wait(60)

        gib, bare_seconds = size / 1024**3, min(bare_runs)
        print(f"file: {size / MiB:.0f} MiB on {root}; load average {os.getloadavg()[0]:.1f}")
        print(f"cp:          {cp_seconds:6.2f} s  {gib / cp_seconds:5.2f} GiB/s")
        print(f"cp + sync:   {cp_sync_seconds:6.2f} s  {gib / cp_sync_seconds:5.2f} GiB/s")
        print(
            f"SHA-256:     {sha_seconds:6.2f} s  {gib / sha_seconds:5.2f} GiB/s  (the hash alone,"
            f" one core: no upload that hashes beats cp/SHA-256 = {cp_seconds / sha_seconds:4.2f})"
        )
        print(
            f"bare:        {bare_seconds:6.2f} s  {gib / bare_seconds:5.2f} GiB/s  ratio cp/bare"
            f" {cp_seconds / bare_seconds:4.2f}  (bare_receiver.py: socket to file, hash, fsync;"
            f" no HTTP)  [all runs: {', '.join(f'{r:.2f}' for r in bare_runs)} s]"
        )
        for label, runs in (("tus PATCH", tus_runs), ("multipart", multipart_runs)):
            seconds, used = min(runs)
            print(
                f"{label + ':':<12} {seconds:6.2f} s  {gib / seconds:5.2f} GiB/s"
                f"  ratio cp/upload {cp_seconds / seconds:4.2f}"
                f"  (cp+sync/upload {cp_sync_seconds / seconds:4.2f},"
                f" bare/upload {bare_seconds / seconds:4.2f})"
                f"  server CPU {used / gib:4.2f} s/GiB"
                f"  [all runs: {', '.join(f'{r[0]:.2f}' for r in runs)} s]"
            )
        growth = (peak - rss_before) / 1024
        print(f"server RSS before {rss_before / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB,")
        print(f"peak growth {growth:.0f} MiB (goal <= 64)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
