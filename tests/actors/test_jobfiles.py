"""The job directory's files, the runner's pieces, and the runner as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from gremlin.actors.jobfiles import (
    JobDir,
    abandon,
    claim_pid_file,
    log_tail,
    parse_progress,
    write_json_atomic,
)
from gremlin.actors.runner import substitute
from gremlin.proc import ProcessId


def test_parse_progress_takes_the_last_out_time() -> None:
    text = "frame=1\nout_time_us=1500000\nprogress=continue\nout_time_ms=2500000\nout_time_us=N/A\n"
    assert parse_progress(text) == 2.5
    assert parse_progress("progress=end\n") is None


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "\n\nframe 1\rframe 2\r")
    assert log_tail(log, 3) == ["line 99", "frame 1", "frame 2"]
    assert log_tail(tmp_path / "missing") == []


def test_substitute_fills_only_our_placeholders() -> None:
    argv = ["ff", "-i", "{input}", "-vf", "scale={w}:-2", "{out}/a.mp4", "-progress", "{progress}"]
    assert substitute(argv, {"input": "/i", "out": "/o", "progress": "/p"}) == [
        "ff", "-i", "/i", "-vf", "scale={w}:-2", "/o/a.mp4", "-progress", "/p",
    ]  # fmt: skip


def test_pid_file_is_claimed_once_and_abandon_blocks_a_late_runner(tmp_path: Path) -> None:
    jobdir = JobDir(tmp_path / "1")
    jobdir.fresh()
    assert abandon(jobdir) is None  # nobody started: now nobody ever will
    assert not claim_pid_file(jobdir, {"pid": 1, "start": 1, "boot": "b"})
    other = JobDir(tmp_path / "2")
    other.fresh()
    me = ProcessId.current()
    assert claim_pid_file(other, {"pid": me.pid, "start": me.start, "boot": me.boot})
    assert abandon(other) == me == other.read_pid()


def test_runner_records_itself_logs_and_writes_status(tmp_path: Path) -> None:
    jobdir = JobDir(tmp_path / "job")
    jobdir.fresh()
    source = tmp_path / "in.txt"
    source.write_text("hello")
    write_json_atomic(
        jobdir.spec,
        {
            "argv": ["sh", "-c", "cat {input} > {out}/copy.txt; echo said-to-stderr >&2; exit 0"],
            "input": str(source),
            "python": "",
            "nice": 0,
        },
    )
    subprocess.run(
        [sys.executable, "-m", "gremlin.actors.runner", str(jobdir.path)], check=True, timeout=60
    )
    recorded = jobdir.read_pid()  # written before the launcher returned
    assert recorded is not None and recorded.boot == ProcessId.current().boot
    deadline = time.monotonic() + 30
    while jobdir.read_status() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    status = json.loads(jobdir.status.read_text())
    assert status["exit_code"] == 0 and status["signal"] is None
    assert (jobdir.out / "copy.txt").read_text() == "hello"
    assert jobdir.log_tail() == ["said-to-stderr"]
