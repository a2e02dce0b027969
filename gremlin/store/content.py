"""Files under content/: atomic writes, moves and checksums (invariant 4 of DESIGN.md)."""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import DiskFull

CHUNK = 1024 * 1024


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path, on_chunk: Callable[[int], None] | None = None) -> tuple[int, str]:
    """(size, hex SHA-256) of a file, read in 1 MiB chunks; `on_chunk(n)` after each (progress
    bars, time budgets: it may raise to abandon the hashing)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            digest.update(view[:n])
            size += n
            if on_chunk is not None:
                on_chunk(n)
    return size, digest.hexdigest()


def _raise_disk_full(e: OSError, path: Path) -> None:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFull(str(path)) from e


def write_atomic(path: Path, chunks: Iterable[bytes]) -> tuple[int, str]:
    """Write `chunks` to a temporary file beside `path`, fsync, rename, fsync the directory.

    Returns (size, sha256). On any failure the temporary file is removed and `path` untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        _raise_disk_full(e, path)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def move_durable(src: Path, dst: Path) -> None:
    """Rename within the site's filesystem and fsync both directories."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)
