"""The runner: one job as a detached, recorded process.

    python -m gremlin.actors.runner JOBDIR

forks a job process and exits as soon as that process has recorded itself (so whoever started
us, never the server's own process, is the parent; the job process is re-parented away). The
job process, in its own session and process group (pid == pgid):

1. claims JOBDIR/pid atomically with {"pid", "start", "boot"} before doing any work;
2. sends stdout/stderr to JOBDIR/log and applies the spec's nice increment;
3. runs the spec's external argv as a child in its process group (`{input}`, `{out}`,
   `{progress}` filled in), forwarding SIGTERM to it and escalating to SIGKILL after
   `kill_grace_seconds`; or calls the spec's Python "module:function" itself, writing the
   returned dict to out/result.json;
4. on success fsyncs every output; then writes JOBDIR/status atomically and exits.

The status file's space is preallocated before the work starts (jobfiles.StatusWriter), so a job
that fills the disk still reports how it ended; a failure with the disk (nearly) full, or with
"No space left on device" in its log, is marked `no_space` and requeued without charging it.

A Python function signals "this input can never work" with SystemExit(65) or an exception
carrying `exit_code = 65`. The pre-warmed fork server (gremlin.actors.forkserver) calls
`start_job_process` exactly as this module's main does.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .. import proc
from .diskspace import is_disk_full, low_on_space
from .jobfiles import LOG_RESERVE_BYTES, JobDir, StatusWriter, claim_pid_file, fsync_dir

EXIT_NO_SPACE = 28  # ENOSPC's number: the job could not run or finish for a full disk
NO_SPACE_TEXT = "no space left on device"


def start_job_process(jobdir: Path, notify_fd: int) -> None:
    """Fork the job process (in a new session). Returns in the caller once it is forked; the job
    process never returns: it writes one byte to `notify_fd` once its pid file is recorded."""
    child = os.fork()
    if child:
        return
    try:
        os.setsid()
        os.closerange(3, notify_fd)
        os.closerange(notify_fd + 1, os.sysconf("SC_OPEN_MAX"))
        code = _job_process(JobDir(jobdir), notify_fd)
    except BaseException:
        traceback.print_exc()
        code = 70
    os._exit(code)


def _job_process(jobdir: JobDir, notify_fd: int) -> int:
    me = proc.ProcessId.current()
    claimed = claim_pid_file(jobdir, {"pid": me.pid, "start": me.start, "boot": me.boot})
    if claimed:
        os.write(notify_fd, b"1")
    os.close(notify_fd)
    if not claimed:
        return 75  # someone else (a reconcile) owns this directory: never run
    spec = jobdir.read_spec()
    status = StatusWriter(jobdir)
    if not status.reserve_space():
        # No room even to report: leave no status; the server sees the full disk and
        # requeues the job as "no space left on device" without charging it.
        return EXIT_NO_SPACE
    _redirect_output(jobdir.log)
    _lower_priority(int(spec.get("nice", 0)))
    if spec.get("python"):
        exit_code, sig, no_space = _run_python(jobdir, spec, status)
    else:
        exit_code, sig = _run_argv(jobdir, spec)
        no_space = False
    if exit_code == 0:
        try:
            _fsync_tree(jobdir.out)
        except OSError as e:
            if not is_disk_full(e):
                raise
            exit_code, no_space = EXIT_NO_SPACE, True
    _trim_log()
    if exit_code != 0:
        no_space = no_space or _looks_like_no_space(jobdir, spec)
    status.write(
        {"exit_code": exit_code, "signal": sig, "finished_at": time.time(), "no_space": no_space}
    )
    return exit_code if exit_code is not None else 128 + (sig or 0)


def _looks_like_no_space(jobdir: JobDir, spec: dict[str, Any]) -> bool:
    """A failed job failed for a full disk if its log says so, or the disk is nearly full now
    (its partial outputs are still there, so the space it ran out of is still used)."""
    if low_on_space(jobdir.path, int(spec.get("min_free_bytes", 0))):
        return True
    return any(NO_SPACE_TEXT in line.lower() for line in jobdir.log_tail())


def _lower_priority(increment: int) -> None:
    """Nice the job, and also its session's autogroup: with the kernel's autogroup scheduling
    (on by default), a new session competes as a group, and a plain nice only ranks a process
    within its own group, so without this a transcode would compete with the web server as an
    equal."""
    with contextlib.suppress(OSError):
        niceness = os.nice(increment)
        with open("/proc/self/autogroup", "w") as f:
            f.write(str(niceness))


def _redirect_output(log: Path) -> None:
    """stdout and stderr to the log. Its first LOG_RESERVE_BYTES are preallocated and written
    in place (not O_APPEND; the job's processes share the offset), so the lines that say why a
    job failed on a full disk still land; `_trim_log` cuts the unused rest at the end."""
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as e:
        if not is_disk_full(e):
            raise
        fd = os.open(os.devnull, os.O_WRONLY)  # no room for a log: the status still says why
    else:
        with contextlib.suppress(OSError):  # no room for the reserve: a plain log, then
            os.posix_fallocate(fd, 0, LOG_RESERVE_BYTES)
    null = os.open(os.devnull, os.O_RDONLY)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)


def _trim_log() -> None:
    """Cut the log's unused reserve (shrinking needs no space)."""
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
        end = os.lseek(1, 0, os.SEEK_CUR)
        if end < os.fstat(1).st_size:
            os.ftruncate(1, end)


def substitute(argv: list[str], values: dict[str, str]) -> list[str]:
    """Fill `{input}`, `{out}`, `{progress}` (only those: ffmpeg filters use braces too)."""
    out = []
    for arg in argv:
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


def _run_argv(jobdir: JobDir, spec: dict[str, Any]) -> tuple[int | None, int | None]:
    argv = substitute(
        list(spec["argv"]),
        {"input": spec["input"], "out": str(jobdir.out), "progress": str(jobdir.progress)},
    )
    grace = float(spec.get("kill_grace_seconds", 5.0))
    children: list[int] = []
    stopping: list[bool] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.append(True)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)
        signal.signal(signal.SIGALRM, escalate)
        signal.setitimer(signal.ITIMER_REAL, grace)

    def escalate(signum: int, _frame: object) -> None:
        for child in children:
            _kill_quietly(child)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        child = os.posix_spawnp(
            argv[0],
            argv,
            dict(os.environ, **spec.get("env", {})),
            setsigdef=(signal.SIGTERM, signal.SIGINT, signal.SIGPIPE),
        )
    except OSError as e:
        print(f"cannot start {argv[0]}: {e}", file=sys.stderr, flush=True)
        return 127, None
    children.append(child)
    if stopping:
        forward(signal.SIGTERM, None)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except ChildProcessError:
            return None, None
        except InterruptedError:
            continue
    signal.setitimer(signal.ITIMER_REAL, 0)
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status), None


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _run_python(
    jobdir: JobDir, spec: dict[str, Any], status: StatusWriter
) -> tuple[int | None, int | None, bool]:
    def stopped(signum: int, _frame: object) -> None:
        print(f"stopped by signal {signum}", file=sys.stderr, flush=True)
        status.write({"exit_code": None, "signal": signum, "finished_at": time.time()})
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, stopped)
    module_name, _, function_name = spec["python"].partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), function_name)
        result = fn(input=Path(spec["input"]), out=jobdir.out, **spec.get("kwargs", {}))
        if result is not None:
            data = json.dumps(result).encode()
            with open(jobdir.out / "result.json", "wb") as f:
                f.write(data)
        return 0, None, False
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
        return code, None, False
    except Exception as e:
        with contextlib.suppress(OSError):  # the log may be on the full disk too
            traceback.print_exc()
            sys.stderr.write(f"{type(e).__name__}: {e}\n")
        if is_disk_full(e):
            return EXIT_NO_SPACE, None, True
        return int(getattr(e, "exit_code", 1) or 1), None, False
    finally:
        with contextlib.suppress(OSError):
            sys.stdout.flush()
            sys.stderr.flush()


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name == "result.json" and dirpath == str(root):
                continue  # read at once by the server, never stored
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def launch_detached(jobdir: Path, timeout: float = 30.0) -> bool:
    """Fork the job process and wait until it has recorded itself. True if it did."""
    read_fd, write_fd = os.pipe()
    try:
        start_job_process(jobdir, write_fd)
    finally:
        os.close(write_fd)
    try:
        return wait_notified(read_fd, timeout)
    finally:
        os.close(read_fd)


def wait_notified(read_fd: int, timeout: float) -> bool:
    import select

    ready, _, _ = select.select([read_fd], [], [], timeout)
    return bool(ready) and os.read(read_fd, 1) == b"1"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gremlin.actors.runner JOBDIR", file=sys.stderr)
        return 2
    return 0 if launch_detached(Path(args[0])) else 1


if __name__ == "__main__":
    sys.exit(main())
