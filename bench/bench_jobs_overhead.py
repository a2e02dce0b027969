"""Job spawn overhead: one trivial job from queued to done, through the real supervisor.

Compares, in the same run: the bare in-process call of the job's function (the baseline),
the pre-warmed fork server, and the plain `python -m gremlin.actors.runner` fallback. Each job
is a recorded, detached process either way (pid file, log, status file, pidfd watch, one SQLite
transaction to finish it). Prints the median latency of each and the ratios. The work is
trivial on purpose, so the ratio to the bare call is all overhead; the figure that matters is
the overhead in milliseconds, added to any real job (bench/bench_images.py measures 12 MP
JPEGs against bare Pillow).

    python bench/bench_jobs_overhead.py [ROUNDS]
"""

from __future__ import annotations

import dataclasses
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gremlin.actors.jobs import serve_jobs  # noqa: E402
from gremlin.media.base import Command, JobView, Kind, PlannedJob  # noqa: E402
from gremlin.runtime import Runtime  # noqa: E402
from gremlin.settings import Settings, load  # noqa: E402
from gremlin.store import Site, connect, init_site, open_store  # noqa: E402
from gremlin.store.jobs import insert_planned_jobs  # noqa: E402


def trivial(input: Path, out: Path) -> dict[str, Any]:
    """The job: read the input, write one small output."""
    (out / "copy.bin").write_bytes(hashlib.sha256(input.read_bytes()).digest())
    return {}


class Trivial:
    name = "bench"
    kind = Kind.IMAGE
    mimes = ("application/octet-stream",)

    def sniff(self, head: bytes) -> str | None:
        return None

    def plan(self, media_id: str, mime: str, settings: Settings) -> list[PlannedJob]:
        return []

    def command(self, job: JobView, settings: Settings) -> Command:
        return Command(python="bench.bench_jobs_overhead:trivial")

    def on_done(self, conn: Any, job: JobView, result: Mapping[str, Any], settings: Settings):  # noqa: ANN201
        return []


def add_media(site: Site, n: int) -> str:
    media_id = f"bench{n:05d}"
    data = b"x" * 4096
    (site.queue / media_id).write_bytes(data)
    conn = connect(site.db)
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT OR IGNORE INTO users (id, name, created_at) VALUES (1, 'b', ?)", (now,))
    conn.execute(
        "INSERT INTO media (id, owner_id, kind, state, created_at, updated_at)"
        " VALUES (?, 1, 'bench', 'processing', ?, ?)",
        (media_id, now, now),
    )
    conn.execute(
        "INSERT INTO files (media_id, role, path, mime, size, sha256, created_at)"
        " VALUES (?, 'original', ?, 'application/octet-stream', ?, ?, ?)",
        (media_id, f"queue/{media_id}", len(data), hashlib.sha256(data).hexdigest(), now),
    )
    insert_planned_jobs(conn, media_id, [PlannedJob("copy", {"copy": "copy.bin"})], max_attempts=1)
    conn.execute("COMMIT")
    conn.close()
    return media_id


def state_of(conn: Any, media_id: str) -> str:
    return str(conn.execute("SELECT state FROM media WHERE id = ?", (media_id,)).fetchone()[0])


async def engine_latencies(settings: Settings, site: Site, rounds: int, fork: bool) -> list[float]:
    latencies = []
    watcher = connect(site.db)
    async with open_store(site.db) as store, trio.open_nursery() as nursery:
        runtime = Runtime(settings, store)
        await nursery.start(partial(serve_jobs, runtime, {"bench": Trivial()}, fork_server=fork))
        for i in range(rounds + 2):  # two warm-up rounds (the fork server starting, imports)
            media_id = await trio.to_thread.run_sync(add_media, site, i + (0 if fork else 10000))
            began = time.perf_counter()
            runtime.nudge_jobs()
            while state_of(watcher, media_id) == "processing":
                await trio.sleep(0.001)
            if i >= 2:
                latencies.append(time.perf_counter() - began)
            assert state_of(watcher, media_id) == "ready"
        nursery.cancel_scope.cancel()
    watcher.close()
    return latencies


def bare_latencies(site: Site, rounds: int) -> list[float]:
    out_dir = site.root / "bare"
    out_dir.mkdir()
    source = site.root / "in.bin"
    source.write_bytes(b"x" * 4096)
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        trivial(source, out_dir)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    site = init_site(Path(tempfile.mkdtemp(prefix="gremlin-bench-")) / "site")
    settings = dataclasses.replace(load(site.root, {"bind": "127.0.0.1:0"}, environ={}))
    bare = statistics.median(bare_latencies(site, rounds))
    warm = statistics.median(trio.run(engine_latencies, settings, site, rounds, True))
    cold = statistics.median(trio.run(engine_latencies, settings, site, rounds, False))
    print(f"rounds={rounds} (median latency from queued to ready, one job at a time)")
    print(f"bare in-process call:  {bare * 1000:8.2f} ms  (baseline)")
    for name, value in (("fork server job:     ", warm), ("python -m runner job:", cold)):
        print(
            f"{name}  {value * 1000:8.2f} ms  overhead {(value - bare) * 1000:.1f} ms"
            f"  ratio to bare {value / bare:.0f}x"
        )
    print(f"fork server vs runner: {cold / warm:.1f}x faster")


if __name__ == "__main__":
    main()
