"""A copy of the MediaGoblin fixture instance, made read-only so any write to it fails."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parents[3] / "shared" / "fixtures" / "mediagoblin-sample-a"
if not FIXTURE.is_dir():  # the checkout sits in /work/main; the fixture in /work/shared
    FIXTURE = Path("/work/shared/fixtures/mediagoblin-sample-a")


@dataclasses.dataclass(frozen=True)
class MgCopy:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "mediagoblin.db"

    @property
    def user_dev(self) -> Path:
        return self.root / "user_dev"


def tree_digest(root: Path) -> dict[str, str]:
    """Every file and directory under root with its content hash: proves nothing changed."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode
        bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~bits)


def copy_fixture(dest: Path) -> MgCopy:
    """Copy the fixture with fresh, writable modes (the shared copy is read-only)."""
    for src in FIXTURE.rglob("*"):
        target = dest / src.relative_to(FIXTURE)
        if src.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
    return MgCopy(dest)


@pytest.fixture
def mg(tmp_path: Path) -> Iterator[MgCopy]:
    """The fixture instance in tmp_path, every file and directory read-only while in use."""
    if not FIXTURE.is_dir():
        pytest.skip(f"the MediaGoblin fixture is not here: {FIXTURE}")
    copy = copy_fixture(tmp_path / "mg")
    before = tree_digest(copy.root)
    if os.geteuid() != 0:  # root ignores modes; the digest check below still holds
        _set_writable(copy.root, False)
    yield copy
    _set_writable(copy.root, True)
    assert tree_digest(copy.root) == before, "the MediaGoblin copy was modified"
