"""Watching and stopping a job process that is not our child: pidfd, start time, boot id.

A fresh job and an adopted one are watched by the same code: we never wait(2) for a job (it is
never our child); its exit wakes a pidfd, and its status file says how it ended.
"""

from __future__ import annotations

import contextlib
import os
import signal

import trio

from ..proc import ProcessId, boot_id


def open_pidfd(process: ProcessId) -> int | None:
    """A pidfd for exactly `process`, or None if it is gone (or the pid now names another)."""
    if not process.alive():
        return None
    try:
        fd = os.pidfd_open(process.pid)
    except ProcessLookupError:
        return None
    # Checked again after opening: the pidfd pins the process we compared start times with.
    if not process.alive():
        os.close(fd)
        return None
    return fd


async def wait_exit(process: ProcessId) -> None:
    """Return once `process` has exited (at once if it already has or is not ours)."""
    fd = open_pidfd(process)
    if fd is None:
        return
    try:
        while process.alive():  # a zombie counts as exited: nobody may ever reap it
            with trio.move_on_after(1.0):
                await trio.lowlevel.wait_readable(fd)
                return
    finally:
        os.close(fd)


def signal_group(process: ProcessId, sig: int) -> bool:
    """Send `sig` to the job's whole process group (pgid == its pid), if it is still ours."""
    if not process.alive():
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
        return True
    return False


def kill_group_now(process: ProcessId) -> None:
    """SIGKILL whatever is left in the job's group right after its leader exited (children may
    outlive it). While a group has members its id cannot be reused, so this reaches only ours."""
    if process.boot != boot_id():
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def stop_process(process: ProcessId, grace_seconds: float) -> None:
    """SIGTERM the job's group; SIGKILL it after `grace_seconds`; return once it is gone."""
    if signal_group(process, signal.SIGTERM):
        with trio.move_on_after(grace_seconds):
            await wait_exit(process)
        if process.alive():
            signal_group(process, signal.SIGKILL)
            with trio.move_on_after(grace_seconds):
                await wait_exit(process)
