"""One job's scratch directory, content/jobs/<job-id>/ (see gremlin.media.base for the contract).

    spec.json   what to run (written by the supervisor before launching)
    pid         {"pid", "start", "boot"}: created once, by link(2), so exactly one process
                (the runner, or a reconcile abandoning a launch that never happened) claims it
    log         stdout + stderr of the work
    progress    ffmpeg `-progress` key=value output
    out/        outputs
    killed      why the watchdog killed it (written before the signal)
    status      {"exit_code", "signal", "finished_at", "no_space"}: written last, atomically,
                from .status.reserve (space preallocated at start, so a full disk cannot
                keep the runner from reporting)

Small sync helpers, used by the runner process and by the server alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from ..proc import ProcessId

LOG_TAIL_LINES = 20
LOG_RESERVE_BYTES = 64 * 1024  # preallocated at the start of each job's log (see the runner)


@dataclasses.dataclass(frozen=True)
class Status:
    exit_code: int | None
    signal: int | None
    finished_at: float
    no_space: bool = False  # the job failed because the disk was full

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclasses.dataclass(frozen=True)
class JobDir:
    path: Path

    spec = property(lambda self: self.path / "spec.json")
    pid = property(lambda self: self.path / "pid")
    log = property(lambda self: self.path / "log")
    progress = property(lambda self: self.path / "progress")
    out = property(lambda self: self.path / "out")
    killed = property(lambda self: self.path / "killed")
    status = property(lambda self: self.path / "status")

    def fresh(self) -> None:
        """An empty directory with out/, whatever an earlier attempt left."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.out.mkdir(parents=True)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def clear_outputs(self) -> None:
        shutil.rmtree(self.out, ignore_errors=True)

    def read_spec(self) -> dict[str, Any]:
        return dict(json.loads(self.spec.read_text()))

    def read_pid(self) -> ProcessId | None:
        """The recorded process, or None when there is no pid file or it is an abandon mark."""
        data = _read_json(self.pid)
        if not data or not data.get("pid"):
            return None
        return ProcessId(int(data["pid"]), int(data["start"]), str(data["boot"]))

    def has_pid_file(self) -> bool:
        return self.pid.exists()

    def read_status(self) -> Status | None:
        data = _read_json(self.status)
        if data is None:
            return None
        return Status(
            data.get("exit_code"),
            data.get("signal"),
            float(data["finished_at"]),
            bool(data.get("no_space", False)),
        )

    def read_killed(self) -> str | None:
        try:
            return self.killed.read_text().strip() or None
        except FileNotFoundError:
            return None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        return log_tail(self.log, lines)

    def output_bytes(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.out):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(root, name)).st_size
        return total


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, OSError):
        return None


# Durability: the scratch files (spec, pid, status, killed) are written atomically (a reader
# sees all or nothing) but not fsynced. They only matter within one boot: after a power loss
# the boot id differs, every recorded process is gone, and a job whose status was lost is
# simply run again. Outputs are fsynced by the runner before its status says "done".


def write_json_atomic(path: Path, data: dict[str, Any], *, durable: bool = False) -> None:
    """Temporary file, rename (and with `durable`, fsync the file and the directory)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, json.dumps(data).encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


STATUS_RESERVE_BYTES = 4096


class StatusWriter:
    """Writes JOBDIR/status from space reserved before the work starts: the JSON is written in
    place into a preallocated `.status.reserve` (no new blocks needed), truncated to its length,
    then renamed to `status`. A reader sees a complete status or none."""

    def __init__(self, jobdir: JobDir) -> None:
        self.jobdir = jobdir
        self.reserve = jobdir.path / ".status.reserve"
        self._fd: int | None = None

    def reserve_space(self) -> bool:
        """Preallocate the status file. False if the disk is too full for even that."""
        try:
            fd = os.open(self.reserve, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                return False
            raise
        try:
            os.posix_fallocate(fd, 0, STATUS_RESERVE_BYTES)
        except OSError as e:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.reserve)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                return False
            raise
        self._fd = fd
        return True

    def write(self, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        fd, self._fd = self._fd, None
        if fd is None or len(body) > STATUS_RESERVE_BYTES:
            if fd is not None:
                os.close(fd)
            write_json_atomic(self.jobdir.status, data)
            return
        try:
            os.pwrite(fd, body, 0)
            os.ftruncate(fd, len(body))
        finally:
            os.close(fd)
        os.replace(self.reserve, self.jobdir.status)


def claim_pid_file(jobdir: JobDir, data: dict[str, Any]) -> bool:
    """Create `pid` with `data` unless it exists (link(2) is atomic and never replaces)."""
    tmp = jobdir.path / f".pid.tmp-{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except FileNotFoundError:
        return False  # the directory is gone: this attempt was given up
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)
    try:
        os.link(tmp, jobdir.pid)
    except (FileExistsError, FileNotFoundError):
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return True


def abandon(jobdir: JobDir) -> ProcessId | None:
    """Make sure no runner will ever start in `jobdir`; return the process that did, if any."""
    if not jobdir.path.is_dir():
        return None
    if claim_pid_file(jobdir, {"pid": 0, "abandoned_at": time.time()}):
        return None
    return jobdir.read_pid()


def abandon_unless_full(jobdir: JobDir) -> ProcessId | None:
    """abandon(), except that a disk too full to write the mark cannot start a runner either
    (its pid file needs the same room): then nothing will start."""
    try:
        return abandon(jobdir)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        return jobdir.read_pid()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, max_bytes: int = 16384) -> list[str]:
    """The last `lines` non-empty lines of a log (reads at most the last `max_bytes`)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            # A running (or killed) job's log may end in the zeros of its preallocated reserve
            # (see the runner): read past them to the text.
            start = 0 if size <= LOG_RESERVE_BYTES + max_bytes else size - max_bytes
            f.seek(start)
            data = f.read().rstrip(b"\0")[-max_bytes:]
    except FileNotFoundError:
        return []
    text = data.decode("utf-8", "replace").replace("\r", "\n")
    return [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]


def parse_progress(text: str) -> float | None:
    """Seconds of output done, from ffmpeg `-progress` output (the last out_time_us wins).

    `out_time_us` (ffmpeg >= 5) and `out_time_ms` (which is in microseconds too) are read;
    `N/A` and negative values are ignored.
    """
    seconds = None
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in ("out_time_us", "out_time_ms"):
            with contextlib.suppress(ValueError):
                micro = int(value.strip())
                if micro >= 0:
                    seconds = micro / 1_000_000
    return seconds


def read_progress_seconds(path: Path, max_bytes: int = 4096) -> float | None:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return parse_progress(f.read().decode("utf-8", "replace"))
    except FileNotFoundError:
        return None
