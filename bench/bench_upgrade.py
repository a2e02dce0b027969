"""Benchmark: an upgrade handover of a site with 100,000 media (2 files, 2 jobs, 2 tags each),
next to the SQLite backup API's copy of the same database, in the same run.

    python bench/bench_upgrade.py [--media 100000] [--keep] [--old-code DIR]

`--old-code DIR`: the old server runs the code in DIR (e.g. `git archive COMMIT | tar -x -C
DIR`), as in a real upgrade from a landed version; by default both run this code.

Measures, for the same database:
- backup API: `sqlite3.Connection.backup` of db.sqlite into a fresh file (a plain page copy);
- copy: gremlin.upgrade.copy_database into a fresh file, same schema and with the next
  version's extra step (the rows copied, steps applied, integrity check, counts, fsync);
  it is what a handover runs BEFORE the window;
- recopy: gremlin.upgrade.recopy.recopy_database, what a handover runs INSIDE the window (a
  file copy, counts, the step, fsync), without and with PRAGMA quick_check;
- handover: a real server (this code) replaced by `gremlin upgrade` (this code plus one step,
  tests/upgrade/next_version.py) while a probe polls /healthz. From the two processes' logs:
  the copy before the window, the maintenance window (old enters maintenance -> new serves)
  and its parts, and the whole handover
  (`gremlin upgrade` started -> new serves); from the probe: failed reads and the longest
  read. Goal: window under 1 s.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gremlin.store import STEPS, connect, init_site  # noqa: E402
from gremlin.upgrade import copy_database  # noqa: E402
from gremlin.upgrade.recopy import recopy_database  # noqa: E402
from tests.upgrade import next_version  # noqa: E402


def make_site(root: Path, media: int) -> Path:
    site = init_site(root / "site")
    conn = connect(site.db)
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO users (name, password_hash, created_at) VALUES ('b', 'x', ?)", (now,))
    ids = [f"{i:024x}" for i in range(media)]
    conn.executemany(
        "INSERT INTO media (id, owner_id, kind, state, title, description, created_at,"
        " updated_at) VALUES (?, 1, 'image', 'ready', ?, 'a description of some length', ?, ?)",
        ((m, f"photo number {i} of the bench", now, now) for i, m in enumerate(ids)),
    )
    conn.executemany(
        "INSERT INTO files (media_id, role, path, mime, size, sha256, width, height, created_at)"
        " VALUES (?, ?, ?, 'image/webp', 123456, ?, 1280, 720, ?)",
        ((m, role, f"media/{m}/{role}.webp", "ab" * 32, now) for m in ids for role in "to"),
    )
    conn.executemany(
        "INSERT INTO jobs (media_id, step, input_path, output_path, state, max_attempts,"
        " progress, created_at) VALUES (?, ?, 'queue/x', 'media/x', 'done', 3, 1.0, ?)",
        ((m, step, now) for m in ids for step in ("probe", "derive")),
    )
    conn.executemany(
        "INSERT INTO tags (media_id, tag) VALUES (?, ?)",
        ((m, tag) for i, m in enumerate(ids) for tag in ("bench", f"t{i % 100}")),
    )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return site.root


def time_backup(db: Path, out: Path) -> float:
    began = time.perf_counter()
    src = sqlite3.connect(db)
    dst = sqlite3.connect(out)
    src.backup(dst)
    dst.close()
    src.close()
    return time.perf_counter() - began


def time_copy(db: Path, out: Path, steps: tuple) -> float:  # type: ignore[type-arg]
    began = time.perf_counter()
    copy_database(db, out, steps=steps)
    return time.perf_counter() - began


def time_recopy(db: Path, out: Path, steps: tuple, check: str | None) -> float:  # type: ignore[type-arg]
    began = time.perf_counter()
    recopy_database(db, out, steps=steps, check=check)
    return time.perf_counter() - began


def _lines(log: str, pattern: str) -> list[str]:
    found = [line for line in log.splitlines() if re.search(pattern, line)]
    if not found:
        raise SystemExit(f"no log line matches {pattern!r}:\n{log[-3000:]}")
    return found


def _stamp(log: str, pattern: str, nth: int = 0) -> float:
    line = _lines(log, pattern)[nth]
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def handover(site: Path, old_code: Path = ROOT) -> tuple[dict[str, float], list[str]]:
    # A big database on a busy machine copies for longer than the default bound of 30 s.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GREMLIN_HANDOVER_TIMEOUT_SECONDS": "900"}
    old_env = {**env, "PYTHONPATH": str(old_code)}
    logs = site.parent
    cmd = [sys.executable, "-m", "gremlin"]
    with open(logs / "old.log", "w") as old_log, open(logs / "new.log", "w") as new_log:
        old = subprocess.Popen(
            [*cmd, "serve", str(site), "--bind", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=old_log, text=True, env=old_env, cwd=old_code,
        )  # fmt: skip
        assert old.stdout is not None
        url = re.search(r"serving (\S+)", old.stdout.readline()).group(1)  # type: ignore[union-attr]
        httpx.get(f"{url}/healthz")
        failures: list[str] = []
        longest = [0.0]
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                began = time.perf_counter()
                try:
                    httpx.get(f"{url}/healthz", headers={"Connection": "close"}, timeout=30)
                except httpx.HTTPError as e:
                    failures.append(repr(e))
                longest[0] = max(longest[0], time.perf_counter() - began)
                time.sleep(0.002)

        thread = threading.Thread(target=probe)
        thread.start()
        time.sleep(0.5)
        started = time.time()
        new = subprocess.Popen(
            [*cmd, "upgrade", str(site)],
            stdout=subprocess.PIPE, stderr=new_log, text=True, cwd=ROOT,
            env={**env, **next_version.ENV},
        )  # fmt: skip
        assert new.stdout is not None
        for line in new.stdout:
            if "serving" in line:
                break
        time.sleep(0.5)
        stop.set()
        thread.join()
        new.terminate()
        new.wait(60)
        try:
            old.wait(60)
        except subprocess.TimeoutExpired:
            old.kill()
            old.wait()
            failed = (logs / "new.log").read_text()[-2000:]
            raise SystemExit(f"the handover failed:\n{failed}") from None
    old_text, new_text = (logs / "old.log").read_text(), (logs / "new.log").read_text()
    entered = _stamp(old_text, r"stage=maintenance")
    acknowledged = _stamp(old_text, r"stage=acknowledged")
    copied = _stamp(new_text, r"copied by", -1)  # the second copy: inside the window
    exiting = _stamp(old_text, r"stage=exiting")
    stopped = _stamp(old_text, r"stopped pid=")
    swapped = _stamp(new_text, r"database swapped")
    serving = _stamp(new_text, r"serving url=")
    copies = [line.split(": ", 1)[-1] for line in _lines(new_text, "copied by")]
    return {
        "window": serving - entered,
        "acknowledge": acknowledged - entered,
        "copy": copied - acknowledged,
        "socket": exiting - copied,
        "drain": stopped - exiting,
        "old exit": swapped - stopped,
        "start": serving - swapped,
        "whole": serving - started,
        "precopy": float(re.findall(r"seconds=([\d.]+)", copies[0])[0]),
        "probe failures": float(len(failures)),
        "longest read": longest[0],
    }, copies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--media", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--old-code", type=Path, default=ROOT, help="the old server's code")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-upgrade-"))
    try:
        began = time.perf_counter()
        site = make_site(tmp, args.media)
        db = site / "db.sqlite"
        size = db.stat().st_size
        print(f"site: {args.media} media, db {size / 2**20:.1f} MiB, built in "
              f"{time.perf_counter() - began:.1f}s")  # fmt: skip
        backup = time_backup(db, tmp / "backup.sqlite")
        same = time_copy(db, tmp / "copy_same.sqlite", STEPS)
        nxt = time_copy(db, tmp / "copy_next.sqlite", (*STEPS, *next_version.STEPS))
        print(f"backup API copy:                  {backup * 1000:8.0f} ms")
        print(f"copy_database, same schema:       {same * 1000:8.0f} ms")
        print(f"copy_database, next version step: {nxt * 1000:8.0f} ms")
        nxt_steps = (*STEPS, *next_version.STEPS)
        recopy = time_recopy(db, tmp / "recopy.sqlite", nxt_steps, None)
        quick = time_recopy(db, tmp / "recopy_quick.sqlite", nxt_steps, "quick_check")
        print(f"recopy (in-window copy), no check: {recopy * 1000:7.0f} ms")
        print(f"recopy with PRAGMA quick_check:   {quick * 1000:8.0f} ms")
        result, copies = handover(site, args.old_code.absolute())
        if args.old_code.absolute() != ROOT:
            print(f"handover: the old server ran the code in {args.old_code}")
        print(f"handover: copy before the window  {result['precopy'] * 1000:8.0f} ms"
              "  (outside the window: writes accepted)")  # fmt: skip
        print(f"handover: maintenance window      {result['window'] * 1000:8.0f} ms  (goal < 1000)")
        print(f"          of which acknowledging  {result['acknowledge'] * 1000:8.0f} ms")
        print(f"          in-window copy          {result['copy'] * 1000:8.0f} ms")
        print(f"          socket + exit asked     {result['socket'] * 1000:8.0f} ms")
        print(f"          old server's drain      {result['drain'] * 1000:8.0f} ms")
        print(f"          old exit -> swapped     {result['old exit'] * 1000:8.0f} ms")
        print(f"          swapped -> serving      {result['start'] * 1000:8.0f} ms")
        print(f"          whole, command to serve {result['whole'] * 1000:8.0f} ms")
        for line in copies:
            print(f"          {line}")
        print(f"          probe: failed reads {int(result['probe failures'])},"
              f" longest read {result['longest read'] * 1000:.0f} ms")  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
