"""Benchmark: a 1 GiB upload over loopback, tus and multipart, against `cp` of the same file.

A real `gremlin serve` on a temporary site receives the file from curl (an efficient client,
so the server is what is measured): once as one tus PATCH (`application/offset+octet-stream`),
once as `POST /api/v1/media` multipart. Each upload is acknowledged only after its bytes are
fsynced and committed, so `cp` is timed both alone and followed by `sync` of the copy. Prints
each time, the ratio cp/upload (goal >= 0.9) and the server's peak RSS growth over the run
(VmHWM minus VmRSS before the first upload; goal <= 64 MiB).

    python bench/bench_upload.py [--mib 1024] [--dir /path/on/the/disk/to/test]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def best_of(runs: int, argv: list[str], cleanup: Path) -> float:
    times = []
    for _ in range(runs):
        times.append(timed(argv)[0])
        cleanup.unlink()
    return min(times)


def timed(argv: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return time.perf_counter() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--dir", type=Path, default=None, help="where the site lives")
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

        server = subprocess.Popen(
            [sys.executable, "-m", "gremlin", "serve", str(site.root), "--bind", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "GREMLIN_JOBS_CONCURRENCY": "1"},
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
            cpu = [cpu_seconds(server.pid)]
            auth = f"Authorization: Bearer {token}"

            name = base64.b64encode(b"bench.jpg").decode()
            _, headers = timed(
                ["curl", "-sS", "-D", "-", "-o", "/dev/null", "-X", "POST", "-H", auth,
                 "-H", "Tus-Resumable: 1.0.0", "-H", f"Upload-Length: {size}",
                 "-H", f"Upload-Metadata: filename {name}", f"{url}/api/v1/uploads"]
            )  # fmt: skip
            location = re.search(r"(?im)^location:\s*(\S+)", headers).group(1)  # type: ignore[union-attr]
            tus_seconds, out = timed(
                ["curl", "-sS", "-D", "-", "-o", "/dev/null", "-X", "PATCH", "-H", auth,
                 "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Offset: 0",
                 "-H", "Content-Type: application/offset+octet-stream", "-H", "Expect:",
                 "-T", str(source), location]
            )  # fmt: skip
            assert "gremlin-media-id" in out.lower(), out
            cpu.append(cpu_seconds(server.pid))

            multipart_seconds, out = timed(
                ["curl", "-sS", "-o", "-", "-w", "%{http_code}", "-H", auth, "-H", "Expect:",
                 "-F", f"file=@{source}", "-F", "title=bench", f"{url}/api/v1/media"]
            )  # fmt: skip
            assert out.endswith("201"), out
            cpu.append(cpu_seconds(server.pid))
            peak = proc_kib(server.pid, "VmHWM")
        finally:
            server.terminate()
            server.wait(60)

        gib = size / 1024**3
        print(f"file: {size / MiB:.0f} MiB on {root}; load average {os.getloadavg()[0]:.1f}")
        print(f"cp:          {cp_seconds:6.2f} s  {gib / cp_seconds:5.2f} GiB/s")
        print(f"cp + sync:   {cp_sync_seconds:6.2f} s  {gib / cp_sync_seconds:5.2f} GiB/s")
        runs = (
            ("tus PATCH", tus_seconds, cpu[1] - cpu[0]),
            ("multipart", multipart_seconds, cpu[2] - cpu[1]),
        )
        for label, seconds, used in runs:
            print(
                f"{label + ':':<12} {seconds:6.2f} s  {gib / seconds:5.2f} GiB/s"
                f"  ratio cp/upload {cp_seconds / seconds:4.2f}"
                f"  (cp+sync/upload {cp_sync_seconds / seconds:4.2f})"
                f"  server CPU {used / gib:4.2f} s/GiB"
            )
        growth = (peak - rss_before) / 1024
        print(f"server RSS before {rss_before / 1024:.0f} MiB, peak {peak / 1024:.0f} MiB,")
        print(f"peak growth {growth:.0f} MiB (goal <= 64)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
