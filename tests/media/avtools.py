"""Helpers for the video/audio tests: tiny generated clips, ffprobe, and a small driver that
runs a media type's jobs in order (argv through a real process with a log file, Python steps
in a child process), standing in for the job engine around the unit under test."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gremlin.media.base import Command, JobView, MediaType, PlannedJob
from gremlin.settings import Settings
from gremlin.store import prepare

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"


def ffmpeg(*args: str, tool: str = FFMPEG) -> None:
    subprocess.run(
        [tool, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], check=True
    )


def make_clip(
    path: Path,
    *,
    size: str = "320x180",
    seconds: float = 1.0,
    video: bool = True,
    audio: bool = True,
    vcodec: tuple[str, ...] = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"),
    acodec: tuple[str, ...] = ("-c:a", "aac"),
    extra: tuple[str, ...] = (),
) -> Path:
    inputs: list[str] = []
    if video:
        inputs += ["-f", "lavfi", "-i", f"testsrc=size={size}:rate=25:duration={seconds}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
    codecs = (list(vcodec) if video else []) + (list(acodec) if audio else [])
    ffmpeg(*inputs, *codecs, *extra, str(path))
    return path


def rotate(src: Path, dst: Path, degrees: int = 90, tool: str = FFMPEG) -> Path:
    """A phone-style clip: the same stream with a display matrix. ffmpeg 6+ takes
    `-display_rotation`; 5.1 (Debian 12) still turns the `rotate` tag into a matrix on copy."""
    if ffmpeg_major(tool) >= 6:
        ffmpeg("-display_rotation", str(degrees), "-i", str(src), "-c", "copy", str(dst), tool=tool)
    else:
        rotate_tag = f"rotate={degrees}"
        ffmpeg("-i", str(src), "-c", "copy", "-metadata:s:v:0", rotate_tag, str(dst), tool=tool)
    return dst


def ffmpeg_major(path: str = FFMPEG) -> int:
    out = subprocess.run([path, "-hide_banner", "-version"], capture_output=True, text=True).stdout
    m = re.search(r"ffmpeg version n?(\d+)", out)
    return int(m.group(1)) if m else 0


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            FFPROBE,
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            str(path),
        ],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(out)


def streams(path: Path, kind: str) -> list[dict[str, Any]]:
    return [s for s in probe(path)["streams"] if s["codec_type"] == kind]


def substitute(argv: tuple[str, ...], values: dict[str, str]) -> list[str]:
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


@dataclasses.dataclass
class Ran:
    code: int
    result: dict[str, Any]
    log: str
    command: Command

    @property
    def last_line(self) -> str:
        lines = [line for line in self.log.splitlines() if line.strip()]
        return lines[-1] if lines else ""


_PY = """
import json, sys
from importlib import import_module
from pathlib import Path
spec = json.loads(sys.argv[1])
mod, _, fn = spec["python"].partition(":")
result = getattr(import_module(mod), fn)(input=Path(spec["input"]), out=Path(spec["out"]),
                                         **spec["kwargs"])
Path(spec["out"], "result.json").write_text(json.dumps(result))
"""


def run_job(media_type: MediaType, job: JobView, settings: Settings) -> Ran:
    command = media_type.command(job, settings)
    jobdir = job.out.parent
    job.out.mkdir(parents=True, exist_ok=True)
    log = jobdir / "log"
    with open(log, "wb") as f:
        if command.argv:
            values = {
                "input": str(job.input),
                "out": str(job.out),
                "progress": str(jobdir / "progress"),
            }
            argv = substitute(command.argv, values)
            code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f).returncode
        else:
            spec = {"python": command.python, "input": str(job.input), "out": str(job.out)}
            spec["kwargs"] = dict(command.kwargs)
            argv = [sys.executable, "-c", _PY, json.dumps(spec)]
            code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f).returncode
    result_path = job.out / "result.json"
    result = json.loads(result_path.read_text()) if code == 0 and result_path.exists() else {}
    return Ran(code, result, log.read_text(errors="replace"), command)


@dataclasses.dataclass
class Outcome:
    media: dict[str, Any]
    files: dict[str, Path]  # role -> stored path
    ran: dict[str, Ran]  # step -> its (last) run
    planned: dict[str, PlannedJob]


def drive(media_type: MediaType, original: Path, settings: Settings, mime: str = "") -> Outcome:
    """Run a new media's jobs to the end, in order, follow-ups included."""
    conn = prepare(settings.db_path, create=True)
    now = time.time()
    conn.execute(
        "INSERT OR IGNORE INTO users (id, name, created_at) VALUES (1, 'tester', ?)", (now,)
    )
    media_id = f"m{time.monotonic_ns()}"
    conn.execute(
        "INSERT INTO media (id, owner_id, kind, state, created_at, updated_at)"
        " VALUES (?, 1, ?, 'processing', ?, ?)",
        (media_id, media_type.kind.value, now, now),
    )
    media_dir = settings.content / "media" / media_id
    queue = list(media_type.plan(media_id, mime, settings))
    outcome = Outcome({}, {}, {}, {})
    n = 0
    while queue:
        planned = queue.pop(0)
        n += 1
        outcome.planned[planned.step] = planned
        job = JobView(
            id=n,
            media_id=media_id,
            step=planned.step,
            input=original,
            out=settings.content / "jobs" / f"{media_id}-{n}" / "out",
            outputs=planned.outputs,
            params={**planned.params, "outputs": dict(planned.outputs)},
            attempt=1,
        )
        ran = run_job(media_type, job, settings)
        outcome.ran[planned.step] = ran
        if ran.code != 0:
            continue
        media_dir.mkdir(parents=True, exist_ok=True)
        for role, name in planned.outputs.items():
            assert (job.out / name).is_file(), f"{planned.step} did not write {name}:\n{ran.log}"
            (job.out / name).rename(media_dir / name)
            outcome.files[role] = media_dir / name
            conn.execute(
                "INSERT INTO files (media_id, role, path, mime, size, sha256, created_at)"
                " VALUES (?, ?, ?, 'x', 0, '', ?)",
                (media_id, role, f"media/{media_id}/{name}", now),
            )
        queue += media_type.on_done(conn, job, ran.result, settings)
    row = conn.execute("SELECT * FROM media WHERE id = ?", (media_id,)).fetchone()
    outcome.media = dict(row)
    conn.close()
    return outcome
