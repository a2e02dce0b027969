"""Benchmark: fsck's verification of 2 GiB of stored content vs `sha256sum` of the same files,
in the same run. Prints both rates and their ratio (goal: fsck >= 0.8 of sha256sum's speed).

    python bench/bench_fsck.py [--gib 2] [--files 16] [--rounds 2]

Both read the same files from the page cache (a warm-up pass of each runs first), so the
comparison is of hashing and reading, not of the disk. Everything lives in a temporary
directory that is removed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gremlin.actors.fsck import run_fsck  # noqa: E402
from gremlin.settings import load  # noqa: E402
from gremlin.store import connect, init_site, open_store  # noqa: E402

MIB = 1024 * 1024


def make_content(root: Path, total: int, files: int) -> list[Path]:
    """`files` files of random-looking bytes, `total` bytes in all, each with its row."""
    site = init_site(root / "site")
    conn = connect(site.db)
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO users (name, created_at) VALUES ('bench', ?)", (now,))
    block = os.urandom(16 * MIB)
    per_file = total // files
    paths = []
    for i in range(files):
        media_id = f"bench{i:03d}"
        rel = f"originals/{media_id}/original.bin"
        path = site.content / rel
        path.parent.mkdir(parents=True)
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            written = 0
            n = 0
            while written < per_file:
                chunk = (i.to_bytes(4, "big") + n.to_bytes(4, "big") + block)[
                    : min(len(block), per_file - written)
                ]
                f.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                n += 1
        conn.execute(
            "INSERT INTO media (id, owner_id, kind, state, created_at, updated_at)"
            " VALUES (?, 1, 'image', 'ready', ?, ?)",
            (media_id, now, now),
        )
        conn.execute(
            "INSERT INTO files (media_id, role, path, mime, size, sha256, created_at)"
            " VALUES (?, 'original', ?, 'application/octet-stream', ?, ?, ?)",
            (media_id, rel, per_file, digest.hexdigest(), now),
        )
        paths.append(path)
    conn.execute("COMMIT")
    conn.close()
    return paths


def time_sha256sum(paths: list[Path]) -> float:
    began = time.perf_counter()
    subprocess.run(["sha256sum", *map(str, paths)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def time_openssl(paths: list[Path]) -> float | None:
    """A second yardstick: OpenSSL's SHA-256 (uses SHA-NI where the CPU has it)."""
    if shutil.which("openssl") is None:
        return None
    began = time.perf_counter()
    for path in paths:
        subprocess.run(
            ["openssl", "dgst", "-sha256", str(path)], check=True, stdout=subprocess.DEVNULL
        )
    return time.perf_counter() - began


def time_fsck(site_root: Path) -> float:
    settings = load(site_root, environ={})

    async def main() -> float:
        async with open_store(settings.db_path) as store:
            began = time.perf_counter()
            report = await run_fsck(
                store, init_site(site_root), settings, progress=CountingProgress()
            )
            elapsed = time.perf_counter() - began
        assert not report.findings, report.to_json()
        return elapsed

    return trio.run(main)


class CountingProgress:
    """What the CLI's progress bar costs, minus the drawing: a callback per MiB read."""

    def __init__(self) -> None:
        self.done = 0

    def start(self, files: int, total_bytes: int) -> None:
        self.done = 0

    def advance(self, nbytes: int) -> None:
        self.done += nbytes

    def finish(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    total = int(args.gib * 1024 * MIB)

    tmp = Path(tempfile.mkdtemp(prefix="bench-fsck-"))
    try:
        paths = make_content(tmp, total, args.files)
        size = sum(p.stat().st_size for p in paths)
        time_sha256sum(paths)  # warm the page cache for both
        fsck_times, sum_times, ssl_times = [], [], []
        for _ in range(args.rounds):
            fsck_times.append(time_fsck(tmp / "site"))
            sum_times.append(time_sha256sum(paths))
            if (t := time_openssl(paths)) is not None:
                ssl_times.append(t)
        fsck_rate = size / MIB / min(fsck_times)
        sum_rate = size / MIB / min(sum_times)
        ratio = fsck_rate / sum_rate
        print(f"content: {size / MIB:.0f} MiB in {len(paths)} files")
        print(f"sha256sum:    {sum_rate:8.0f} MiB/s  (best of {args.rounds})")
        print(f"gremlin fsck: {fsck_rate:8.0f} MiB/s  (best of {args.rounds})")
        if ssl_times:
            ssl_rate = size / MIB / min(ssl_times)
            print(
                f"openssl dgst: {ssl_rate:8.0f} MiB/s  (for reference; fsck/openssl "
                f"{fsck_rate / ssl_rate:.2f})"
            )
        print(f"ratio fsck/sha256sum: {ratio:.2f} (goal >= 0.80) {'OK' if ratio >= 0.8 else 'LOW'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
