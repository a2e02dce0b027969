"""Images through the whole engine against bare Pillow, measured in the same run.

(a) Batch: `gremlin import` of N generated 12-megapixel JPEGs into a running `gremlin serve`,
    timed from the start of the import until every media is ready; against one bare Pillow
    script (bare_pillow.py: thumb + medium WebP, same settings) run as one process over the
    batch, timed the same way from its start. Goal: <= 1.3. Also printed: the same bare work
    timed inside this already-warm process (no interpreter start, Pillow imported).
    Run `--batches` times (3), each right after its bare run; the figure is the median ratio.
(b) Latency: one 12 MP JPEG uploaded (POST /api/v1/media) until it is ready, and the same
    through `gremlin import`; against the bare Pillow work for that one image timed in-process
    (the limit). Goal: <= 2 (for the upload).

The server and the CLI are real processes on a temporary site; readiness is seen by polling
the database (every 5 ms), as a client polling the API would.

Python bytecode: an installed gremlin has its modules compiled (pip writes the .pyc files).
When this environment says PYTHONDONTWRITEBYTECODE (a checkout that may not write
__pycache__/), every `gremlin` process would compile ~100 modules from source at start-up
(~0.1 s of the CLI's time), so by default the bench gives its processes a private bytecode cache
in its temporary directory (PYTHONPYCACHEPREFIX), filled before anything is timed;
`--no-bytecode` measures without one.

    python bench/bench_images.py [--n 8] [--batches 3] [--rounds 5] [--keep] [--no-bytecode]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bare_pillow import bare_pillow
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}  # GREMLIN_JOBS_NICE is set in main()
SIZE = (4000, 3000)  # 12 megapixels


def make_jpeg(path: Path, seed: int) -> None:
    """A photo-like 12 MP JPEG: smooth gradients plus sensor-like noise, ~3 MB at quality 90."""
    w, h = SIZE
    noise = Image.effect_noise((w // 8, h // 8), 40 + seed % 20).resize(SIZE, Image.BICUBIC)
    ramp = Image.linear_gradient("L").resize(SIZE).rotate(seed * 37 % 360)
    fine = Image.effect_noise(SIZE, 12)
    Image.merge("RGB", (noise, ramp, fine)).save(path, "JPEG", quality=90)


def bare_script(images: list[Path], out: Path) -> float:
    """Seconds for bare_pillow.py, as one process over `images` (interpreter start included,
    as the engine's time includes `gremlin import`'s)."""
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("bare_pillow.py")),
            str(out),
            *map(str, images),
        ],
        env=ENV,
        check=True,
    )
    return time.perf_counter() - start


def gremlin(*args: str, input: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "gremlin", *args],
        input=input,
        capture_output=True,
        text=True,
        env=ENV,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"gremlin {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


class Server:
    def __init__(self, site: Path) -> None:
        self.log = open(site.parent / "serve.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gremlin", "serve", str(site), "--bind", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=ENV,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if m := re.search(r"serving (http://\S+)", line):
                self.url = m.group(1)
                return
        raise SystemExit(f"server did not start; see {site.parent / 'serve.log'}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def wait_ready(db: Path, ids: list[str], timeout: float = 600) -> float:
    """Poll until every media in `ids` is ready; the time.perf_counter() when seen."""
    conn = sqlite3.connect(db, timeout=30)
    marks = ",".join("?" * len(ids))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            rows = conn.execute(f"SELECT state FROM media WHERE id IN ({marks})", ids)
            states = [r[0] for r in rows]
            if len(states) == len(ids) and all(s == "ready" for s in states):
                return time.perf_counter()
            if "failed" in states:
                raise SystemExit(f"a media failed: {states}")
            time.sleep(0.005)
    finally:
        conn.close()
    raise SystemExit("timed out waiting for media to be ready")


def timeline(db: Path) -> None:
    """Where each media's time went: commit -> job start -> job end -> ready (medians)."""
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT m.created_at, j.started_at, j.finished_at, m.ready_at FROM media m"
        " JOIN jobs j ON j.media_id = m.id WHERE m.ready_at IS NOT NULL"
    ).fetchall()
    conn.close()
    if not rows:
        return
    med = statistics.median
    wait = med(r[1] - r[0] for r in rows)
    run = med(r[2] - r[1] for r in rows)
    finish = med(r[3] - r[2] for r in rows)
    print(
        f"    per media (median): queued {wait:.3f} s, job ran {run:.3f} s,"
        f" then ready {finish:.3f} s"
    )


def first_commit(db: Path, ids: list[str]) -> float:
    conn = sqlite3.connect(db)
    marks = ",".join("?" * len(ids))
    [(created,)] = conn.execute(f"SELECT min(created_at) FROM media WHERE id IN ({marks})", ids)
    conn.close()
    return float(created)


def import_ids(site: Path, paths: list[Path]) -> list[str]:
    out = gremlin("import", str(site), "--user", "bench", *map(str, paths))
    return [line.split(" ", 1)[0] for line in out.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=8, help="images in the batch")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the latency test")
    parser.add_argument("--batches", type=int, default=3, help="paired runs of the batch test")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--no-bytecode",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE as the environment has it (see the module's help)",
    )
    parser.add_argument(
        "--jobs-nice",
        type=int,
        default=0,
        help="the server's jobs_nice (default 0 here: on a busy machine a niced job measures"
        " the scheduler, not us, since the bare baseline runs at nice 0)",
    )
    args = parser.parse_args()
    ENV["GREMLIN_JOBS_NICE"] = str(args.jobs_nice)

    tmp = Path(tempfile.mkdtemp(prefix="bench-images-"))
    bytecode = not args.no_bytecode or not os.environ.get("PYTHONDONTWRITEBYTECODE")
    if not args.no_bytecode and os.environ.get("PYTHONDONTWRITEBYTECODE"):
        ENV.pop("PYTHONDONTWRITEBYTECODE")
        ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    try:
        sources = tmp / "sources"
        sources.mkdir()
        images = [sources / f"img{i:03d}.jpg" for i in range(args.n + args.rounds + 1)]
        for i, path in enumerate(images):
            make_jpeg(path, i)
        batch, singles = images[: args.n], images[args.n :]
        mib = images[0].stat().st_size / 2**20
        print(f"{len(images)} JPEGs of {SIZE[0]}x{SIZE[1]}, {mib:.1f} MiB each")

        if ENV.get("PYTHONPYCACHEPREFIX"):  # fill the cache: the same commands, another site
            scratch = tmp / "scratch"
            gremlin("init", str(scratch))
            gremlin("adduser", str(scratch), "bench", "--password-stdin", input="benchpassword\n")
            import_ids(scratch, [singles[0]])
        site = tmp / "site"
        gremlin("init", str(site))
        gremlin("adduser", str(site), "bench", "--password-stdin", input="benchpassword\n")
        token = gremlin("token", str(site), "bench").strip()
        server = Server(site)
        try:
            bare_pillow(singles[0], tmp / "warm")  # warm the page cache and Pillow's imports
            # (a) batch, `--batches` times, each engine run right after its bare run: on a
            # machine shared with other work the load changes within seconds, so the figure is
            # the median of those paired ratios.
            pairs: list[tuple[float, float, float, float]] = []
            in_process: list[float] = []
            for b in range(args.batches):
                start = time.perf_counter()
                for i, path in enumerate(batch):
                    bare_pillow(path, tmp / "bare-in" / f"{b}-{i}")
                in_process.append(time.perf_counter() - start)
                bare_batch = bare_script(batch, tmp / "bare" / str(b))

                start, wall_start = time.perf_counter(), time.time()
                ids = import_ids(site, batch)
                batch_cli = time.perf_counter() - start
                engine_batch = wait_ready(site / "db.sqlite", ids) - start
                first = first_commit(site / "db.sqlite", ids) - wall_start
                pairs.append((engine_batch, bare_batch, batch_cli, first))

            # (b) latency, one image at a time
            bare_one, upload_one, import_one, cli_one = [], [], [], []
            client = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120)
            for path in singles[1:]:
                start = time.perf_counter()
                bare_pillow(path, tmp / "bare-one")
                bare_one.append(time.perf_counter() - start)

                data = path.read_bytes()
                start = time.perf_counter()
                r = client.post(f"{server.url}/api/v1/media", files={"file": (path.name, data)})
                r.raise_for_status()
                upload_one.append(wait_ready(site / "db.sqlite", [r.json()["id"]]) - start)

                start = time.perf_counter()
                [media_id] = import_ids(site, [path])
                cli_one.append(time.perf_counter() - start)
                import_one.append(wait_ready(site / "db.sqlite", [media_id]) - start)
            client.close()
        finally:
            server.stop()

        med = statistics.median
        n = args.n
        for engine_batch, bare_batch, batch_cli, first in pairs:
            print(
                f"(a) batch of {n}: engine {engine_batch:.2f} s,"
                f" bare Pillow script {bare_batch:.2f} s,"
                f" ratio {engine_batch / bare_batch:.2f}; per image: engine"
                f" {engine_batch / n:.3f} s, bare {bare_batch / n:.3f} s; the `gremlin import`"
                f" process took {batch_cli:.2f} s, its first commit after {first:.3f} s"
            )
        ratio = med(e / b for e, b, _, _ in pairs)
        print(
            f"    batch ratio, median of {len(pairs)}: {ratio:.2f} (goal <= 1.3);"
            f" bytecode {'cached' if bytecode else 'compiled at each start'}"
        )
        print(
            f"    (the bare work alone, in this warm process: {med(in_process):.2f} s;"
            f" engine/that {med(e for e, _, _, _ in pairs) / med(in_process):.2f})"
        )
        print(
            f"(b) latency, median of {len(bare_one)}: bare Pillow {med(bare_one):.3f} s;"
            f" upload->ready {med(upload_one):.3f} s"
            f" (ratio {med(upload_one) / med(bare_one):.2f}, goal <= 2);"
            f" import->ready {med(import_one):.3f} s"
            f" (ratio {med(import_one) / med(bare_one):.2f}; the CLI process alone"
            f" {med(cli_one):.3f} s)"
        )
        print(
            f"    all: bare {[round(x, 3) for x in bare_one]}, upload"
            f" {[round(x, 3) for x in upload_one]}, import {[round(x, 3) for x in import_one]}"
        )
        print(
            f"    load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs;"
            f" jobs_nice={args.jobs_nice}"
        )
        timeline(site / "db.sqlite")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
