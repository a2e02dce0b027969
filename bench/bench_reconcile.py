"""Start-up reconcile of N jobs recorded as running whose processes are gone (a crash or a
reboot left them): a third with a status file (exit 1), a third from another boot, a third
vanished on this boot. Prints the time `run_reconcile` took, against a baseline of reading
the same rows once. `serve` does not wait for it: the web serves while the supervisor
reconciles (task_status.started() comes first).

    python bench/bench_reconcile.py [N]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gremlin.actors.reconcile import run_reconcile  # noqa: E402
from gremlin.media.base import PlannedJob  # noqa: E402
from gremlin.proc import boot_id  # noqa: E402
from gremlin.settings import load  # noqa: E402
from gremlin.store import connect, init_site, open_store  # noqa: E402
from gremlin.store.job_queries import running_jobs  # noqa: E402
from gremlin.store.jobs import insert_planned_jobs  # noqa: E402


def populate(site_root: Path, n: int) -> None:
    conn = connect(site_root / "db.sqlite")
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO users (id, name, created_at) VALUES (1, 'b', ?)", (now,))
    for i in range(n):
        media_id = f"m{i:06d}"
        conn.execute(
            "INSERT INTO media (id, owner_id, kind, state, created_at, updated_at)"
            " VALUES (?, 1, 'image', 'processing', ?, ?)",
            (media_id, now, now),
        )
        conn.execute(
            "INSERT INTO files (media_id, role, path, mime, size, sha256, created_at)"
            " VALUES (?, 'original', ?, 'image/jpeg', 1, 'x', ?)",
            (media_id, f"queue/{media_id}.jpg", now),
        )
        insert_planned_jobs(conn, media_id, [PlannedJob("derive", {"t": "t.webp"})], max_attempts=3)
    conn.execute(
        "UPDATE jobs SET state = 'running', attempt = 1, pid = 999999, pid_start = 1,"
        " boot_id = ?, started_at = ?",
        (boot_id(), now),
    )
    conn.execute("UPDATE jobs SET boot_id = 'an-earlier-boot' WHERE id % 3 = 1")
    conn.execute("COMMIT")
    for (job_id,) in conn.execute("SELECT id FROM jobs WHERE id % 3 = 0"):
        job_dir = site_root / "content" / "jobs" / str(job_id)
        job_dir.mkdir()
        (job_dir / "status").write_text(
            json.dumps({"exit_code": 1, "signal": None, "finished_at": now})
        )
    conn.close()


async def measure(site_root: Path) -> tuple[float, float]:
    site = init_site(site_root)
    settings = load(site_root, {"bind": "127.0.0.1:0"}, environ={})
    async with open_store(site.db) as store:
        began = time.perf_counter()
        await store.read(running_jobs)
        baseline = time.perf_counter() - began
        began = time.perf_counter()
        await run_reconcile(store, site, settings, {})
        return baseline, time.perf_counter() - began


def main() -> None:
    import logging

    logging.disable(logging.WARNING)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    root = Path(tempfile.mkdtemp(prefix="gremlin-bench-")) / "site"
    init_site(root)
    populate(root, n)
    baseline, took = trio.run(measure, root)
    print(f"jobs={n} reading them: {baseline:.3f} s; reconcile: {took:.3f} s (goal < 1 s to serve;")
    print(f"  serving does not wait for it) ratio {took / baseline:.0f}x")


if __name__ == "__main__":
    main()
