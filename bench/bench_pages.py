"""Benchmark: HTML pages of a site holding 10,000 media, against /healthz in the same run.

A temporary site gets N media rows (with their thumbnail rows and tags) inserted directly;
a real `gremlin serve` answers over loopback. For each URL a fixed number of requests is sent
by C concurrent keep-alive clients; the script prints requests per second, p50 and p99
latency, and each page's throughput as a fraction of /healthz (the framework's floor).

    python bench/bench_pages.py [--media 10000] [--requests 400] [--concurrency 4]

URLs: /healthz (baseline), / (home: 48 recent public media), /u/<name> (the gallery's first
page), the gallery 100 pages deep (keyset paging), /tag/<tag>, a media page, the site feed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gremlin.store import connect, init_site  # noqa: E402


def populate(root: Path, n: int) -> tuple[Path, str, str]:
    """A site with one user owning `n` ready public media; returns (site, a media id, a cursor)."""
    site = init_site(root / "site")
    conn = connect(site.db)
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO users (name, created_at) VALUES ('bench', ?)", (now,))
    media, files, tags = [], [], []
    for i in range(n):
        mid = f"bench{i:08d}"
        at = now - (n - i)
        media.append((mid, 1, "image", "ready", f"Photo {i}", "A *benchmark* photo.", at, at, at))
        for role, w, h in (("original", 4000, 3000), ("medium", 1280, 960), ("thumb", 360, 270)):
            files.append((mid, role, f"media/{mid}/{role}", "image/webp", 1000, "0" * 64, w, h, at))
        tags.append((mid, f"tag{i % 50}"))
    conn.executemany(
        "INSERT INTO media (id, owner_id, kind, state, title, description, created_at,"
        " updated_at, ready_at) VALUES (?,?,?,?,?,?,?,?,?)",
        media,
    )
    conn.executemany(
        "INSERT INTO files (media_id, role, path, mime, size, sha256, width, height, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        files,
    )
    conn.executemany("INSERT INTO tags (media_id, tag) VALUES (?, ?)", tags)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    # The cursor of page 100 of the gallery (48 per page), as the "Older" links would build it.
    row = conn.execute(
        "SELECT created_at, id FROM media ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET ?",
        (48 * 100 - 1,),
    ).fetchone()
    conn.close()
    cursor = f"{row[0]!r}_{row[1]}" if row else ""
    return site.root, f"bench{n // 2:08d}", cursor


def start_server(site: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gremlin", "serve", str(site), "--bind", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "GREMLIN_LOG_LEVEL": "WARNING"},
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if m := re.search(r"serving (http://\S+)", line):
            return proc, m.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit("the server did not start")


async def measure(url: str, requests: int, concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    left = requests

    async def client() -> None:
        nonlocal left
        async with httpx.AsyncClient(timeout=60) as http:
            while left > 0:
                left -= 1
                t0 = time.perf_counter()
                r = await http.get(url)
                latencies.append(time.perf_counter() - t0)
                if r.status_code != 200:
                    raise SystemExit(f"{url}: HTTP {r.status_code}")

    async with httpx.AsyncClient(timeout=60) as warm:  # warm caches, templates, connections
        for _ in range(5):
            (await warm.get(url)).raise_for_status()
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(client)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


async def run(base: str, urls: dict[str, str], requests: int, concurrency: int) -> list[dict]:
    results = []
    for name, path in urls.items():
        result = await measure(base + path, requests, concurrency)
        results.append({"name": name, "path": path, **result})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=400, help="per URL")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    try:
        t0 = time.perf_counter()
        site, media_id, cursor = populate(tmp, args.media)
        setup = time.perf_counter() - t0
        proc, base = start_server(site)
        try:
            urls = {
                "healthz (baseline)": "/healthz",
                "home": "/",
                "gallery": "/u/bench",
                "gallery page 100": f"/u/bench?before={cursor}",
                "tag page": "/tag/tag7",
                "media page": f"/m/{media_id}",
                "site feed": "/feed.atom",
            }
            results = trio.run(run, base, urls, args.requests, args.concurrency)
        finally:
            proc.terminate()
            proc.wait(30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base_rps = results[0]["rps"]
    if args.json:
        print(json.dumps({"media": args.media, "results": results}, indent=2))
        return
    print(
        f"{args.media} media (inserted in {setup:.1f} s); {args.requests} requests per URL,"
        f" {args.concurrency} concurrent keep-alive clients, loopback"
    )
    print(f"{'URL':<22} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs healthz':>11}")
    for r in results:
        print(
            f"{r['name']:<22} {r['rps']:>8.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f}"
            f" {r['rps'] / base_rps:>10.2f}x"
        )


if __name__ == "__main__":
    main()
