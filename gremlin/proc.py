"""Who is that process? Boot id and process start times from /proc.

A recorded process is "ours" only when the boot id matches and the pid's start time (in clock
ticks since boot, field 22 of /proc/PID/stat) is the one we recorded: that rules out both a
reboot and a pid reused by an unrelated process.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

BOOT_ID_ENV = "GREMLIN_FAKE_BOOT_ID"  # tests present "another boot" through this, and only this


def boot_id() -> str:
    """The kernel's boot id; `$GREMLIN_FAKE_BOOT_ID` overrides it (simulated reboots in tests)."""
    fake = os.environ.get(BOOT_ID_ENV)
    if fake:
        return fake
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] in {"Z", "X"}


@dataclasses.dataclass(frozen=True)
class ProcessId:
    """A process named so that it cannot be confused with a later one holding the same pid."""

    pid: int
    start: int
    boot: str

    @classmethod
    def current(cls) -> ProcessId:
        pid = os.getpid()
        start = start_time(pid)
        assert start is not None
        return cls(pid, start, boot_id())

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        start = start_time(pid)
        return None if start is None else cls(pid, start, boot_id())

    def alive(self) -> bool:
        """True when this exact process still exists (not a zombie, not a reused pid)."""
        if self.boot != boot_id():
            return False
        return start_time(self.pid) == self.start and not is_zombie(self.pid)


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def started_at(pid: int) -> float | None:
    """Wall-clock (epoch seconds) start of a live process, for messages like 'since ...'."""
    start = start_time(pid)
    if start is None:
        return None
    return _boot_time() + start / os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of the process (own, not children's)."""
    fields = _stat_fields(pid)
    return int(fields[11]) + int(fields[12]) if fields else None


def io_counters(pid: int) -> tuple[int, int] | None:
    """(rchar, wchar) from /proc/PID/io: moves while a process reads or writes anything."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    values = dict(line.split(": ") for line in text.splitlines() if ": " in line)
    return int(values.get("rchar", 0)), int(values.get("wchar", 0))


def format_since(epoch: float | None) -> str:
    if epoch is None:
        return "an unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
