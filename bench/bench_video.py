"""Benchmark: a 60-second 720p clip through contentgremlin against the same ffmpeg command lines
run bare, in the same run. Prints both wall times and their ratio (goal: <= 1.05).

    python bench/bench_video.py [--seconds 60] [--rounds 1] [--concurrency 1]

contentgremlin: after the upload commit, the real job supervisor and watchdog (fork server,
detached runner, pid records, progress sampling, fsyncs, checksums, atomic moves), timed from
the commit (the upload acknowledged) to `ready`: probe, the H.264 ladder (360 and 720 for a
720p source) and the poster.
Bare: the same ffmpeg/ffprobe command lines (built by the same planning code; the steps are
checked against the jobs contentgremlin ran), run with subprocess in the same order and at the
same concurrency, writing to a scratch directory.
The source is MPEG-4 Part 2 in Matroska, so every rendition is a real transcode (no remux).
Rounds alternate which goes first, so a warming cache or a busy neighbour hurts both; on a
machine whose load swings, `--together` runs both at once so they share the same load.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gremlin.accounts import create_user  # noqa: E402
from gremlin.actors.jobs import serve_jobs  # noqa: E402
from gremlin.actors.watchdog import serve_watchdog  # noqa: E402
from gremlin.media import load_media_types  # noqa: E402
from gremlin.media.av import video_jobs  # noqa: E402
from gremlin.media.base import JobView  # noqa: E402
from gremlin.media.commit import commit_upload  # noqa: E402
from gremlin.media.ffmpeg import find_tools  # noqa: E402
from gremlin.media.probe import probe_file  # noqa: E402
from gremlin.media.video import VIDEO  # noqa: E402
from gremlin.runtime import Runtime  # noqa: E402
from gremlin.settings import Settings, load  # noqa: E402
from gremlin.store import Store, init_site, open_store  # noqa: E402


def make_clip(path: Path, seconds: int, ffmpeg: str) -> Path:
    subprocess.run(
        [
            ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
            "-c:v", "mpeg4", "-q:v", "4", "-c:a", "libvorbis", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


async def _settle(store: Store, media_id: str) -> tuple[str, str | None]:
    while True:
        state, reason = await store.read(
            lambda c: tuple(
                c.execute("SELECT state, reason FROM media WHERE id = ?", (media_id,)).fetchone()
            )
        )
        if state != "processing":
            return state, reason
        await trio.sleep(0.1)  # polling must not steal CPU from the transcodes


async def through_gremlin(
    root: Path, clip: Path, warm_up: Path, concurrency: int
) -> tuple[float, Settings, str]:
    """Start the engine, let a tiny upload warm it (a running server is warm: its fork server
    is up), then time one clip from its commit (the upload acknowledged) to `ready`."""
    site = init_site(root)
    settings = dataclasses.replace(
        load(site.root, {"bind": "127.0.0.1:0"}, environ={}),
        jobs_concurrency=concurrency,
        jobs_nice=0,
    )
    types = load_media_types(settings)
    async with open_store(settings.db_path) as store, trio.open_nursery() as nursery:
        await store.write(lambda c: create_user(c, "bench", None))
        runtime = Runtime(settings, store)
        await nursery.start(partial(serve_jobs, runtime, types))
        await nursery.start(serve_watchdog, runtime)
        committed = []
        for source in (warm_up, clip):
            staged = settings.content / "incoming" / f"bench-{source.name}"
            shutil.copyfile(source, staged)
            committed.append(
                await commit_upload(
                    store, settings, owner_id=1, staged=staged, original_name=source.name
                )
            )
            # Flush dirty pages first (the clip, the staged copy): the jobs' fsyncs would
            # otherwise wait for their writeback, a cost the bare run never sees.
            await trio.to_thread.run_sync(os.sync)
            started = time.perf_counter()
            runtime.nudge_jobs()
            state, reason = await _settle(store, committed[-1].media_id)
            if state != "ready":
                raise SystemExit(f"contentgremlin failed {source.name}: {reason}")
        elapsed = time.perf_counter() - started
        nursery.cancel_scope.cancel()
    return elapsed, settings, committed[-1].media_id


def planned_commands(clip: Path, settings: Settings) -> tuple[list[str], list[list[str]]]:
    """The steps contentgremlin will run for `clip` and their command lines (probe first)."""
    tools = find_tools(settings)
    info = probe_file(clip, ffmpeg=tools.ffmpeg, ffprobe=tools.ffprobe, progress=Path(os.devnull))
    argv = [tools.ffprobe or tools.ffmpeg, "-hide_banner", "-v", "error", "-print_format", "json"]
    steps, commands = ["probe"], [[*argv, "-show_format", "-show_streams", "-i", "{input}"]]
    for n, job in enumerate(video_jobs(info, settings), 1):
        params = {**job.params, "outputs": dict(job.outputs)}
        view = JobView(n, "bench", job.step, clip, Path("/unused"), job.outputs, params, 1)
        steps.append(job.step)
        commands.append(list(VIDEO.command(view, settings).argv))
    return steps, commands


def steps_run(settings: Settings, media_id: str) -> list[str]:
    conn = sqlite3.connect(settings.db_path)
    try:
        return [
            r[0]
            for r in conn.execute(
                "SELECT step FROM jobs WHERE media_id = ? ORDER BY id", (media_id,)
            )
        ]
    finally:
        conn.close()


def run_bare(commands: list[list[str]], clip: Path, scratch: Path, concurrency: int) -> float:
    started = time.perf_counter()
    probe, rest = commands[0], commands[1:]
    pending: list[subprocess.Popen[bytes]] = []

    def launch(i: int, argv: list[str]) -> subprocess.Popen[bytes]:
        out = scratch / f"job{i}"
        out.mkdir(parents=True, exist_ok=True)
        values = {"{input}": str(clip), "{out}": str(out), "{progress}": str(out / "progress")}
        filled = [_fill(a, values) for a in argv]
        log = open(out / "log", "wb")  # noqa: SIM115
        # Its own session, like a job's: with the kernel's autogroup scheduling a session is
        # a scheduling group, so this keeps the CPU shares of both sides alike.
        return subprocess.Popen(
            filled, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )

    if launch(0, probe).wait() != 0:
        raise SystemExit("bare probe failed")
    queue = list(enumerate(rest, 1))
    while queue or pending:
        while queue and len(pending) < concurrency:
            pending.append(launch(*queue.pop(0)))
        pending[0].wait()
        for p in [p for p in pending if p.poll() is not None]:
            if p.returncode != 0:
                raise SystemExit(f"bare command failed: {p.args}")
            pending.remove(p)
    return time.perf_counter() - started


def _fill(arg: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        arg = arg.replace(key, value)
    return arg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--together", action="store_true", help="run both at once (for a busy machine)"
    )
    args = parser.parse_args()
    tools = find_tools(Settings())
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        root = Path(tmp)
        clip = make_clip(root / "clip.mkv", args.seconds, tools.ffmpeg)
        warm_up = root / "warm-up.wav"
        subprocess.run(
            [tools.ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=0.2",
             str(warm_up)],
            check=True,
        )  # fmt: skip
        print(f"clip: {args.seconds} s 1280x720 MPEG-4/Vorbis, {clip.stat().st_size} bytes;"
              f" ffmpeg {tools.version} at {tools.ffmpeg}")  # fmt: skip
        gremlin_times: list[float] = []
        bare_times: list[float] = []
        settings = dataclasses.replace(Settings(), jobs_concurrency=args.concurrency, jobs_nice=0)
        steps, commands = planned_commands(clip, settings)

        def gremlin(n: int) -> None:
            elapsed, site_settings, media_id = trio.run(
                through_gremlin, root / f"site{n}", clip, warm_up, args.concurrency
            )
            gremlin_times.append(elapsed)
            ran = steps_run(site_settings, media_id)
            if sorted(ran) != sorted(steps):
                raise SystemExit(f"contentgremlin ran {ran}, the bare run has {steps}")

        def bare(n: int) -> None:
            os.sync()
            bare_times.append(run_bare(commands, clip, root / f"bare{n}", args.concurrency))

        for n in range(args.rounds):
            if args.together:  # both at once: they see the same background load
                thread = threading.Thread(target=bare, args=(n,))
                thread.start()
                gremlin(n)
                thread.join()
            else:  # one after the other, alternating which goes first
                for step in (gremlin, bare) if n % 2 == 0 else (bare, gremlin):
                    step(n)
            print(f"round {n + 1}: contentgremlin {gremlin_times[-1]:.2f} s,"
                  f" bare {bare_times[-1]:.2f} s ({', '.join(steps)})")  # fmt: skip
        g, b = sum(gremlin_times), sum(bare_times)
        print(f"contentgremlin {g:.2f} s  bare {b:.2f} s  ratio {g / b:.3f}  (goal <= 1.05)")


if __name__ == "__main__":
    main()
