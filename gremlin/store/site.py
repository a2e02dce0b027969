"""The site directory: where everything lives, and `gremlin init`."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..errors import SiteError
from .store import prepare

CONTENT_DIRS = ("incoming", "queue", "originals", "media", "jobs", "quarantine")
# In queue/<id>/ from before an upload's file moves in until after its transaction commits
# (gremlin.media.commit): a directory with it and no media row is a commit cut short.
COMMITTING = ".committing"


@dataclasses.dataclass(frozen=True)
class Site:
    root: Path

    @property
    def db(self) -> Path:
        return self.root / "db.sqlite"

    @property
    def db_new(self) -> Path:
        return self.root / "db_new.sqlite"

    @property
    def content(self) -> Path:
        return self.root / "content"

    @property
    def incoming(self) -> Path:
        return self.content / "incoming"

    @property
    def queue(self) -> Path:
        return self.content / "queue"

    @property
    def originals(self) -> Path:
        return self.content / "originals"

    @property
    def media(self) -> Path:
        return self.content / "media"

    @property
    def jobs(self) -> Path:
        return self.content / "jobs"

    @property
    def quarantine(self) -> Path:
        return self.content / "quarantine"

    @property
    def control_socket(self) -> Path:
        return self.root / "gremlin.sock"

    def path(self, relative: str) -> Path:
        """A content path stored in the database (relative to content/) made absolute."""
        full = (self.content / relative).resolve()
        if not full.is_relative_to(self.content.resolve()):
            raise SiteError(f"path {relative!r} escapes the content directory")
        return full

    def relative(self, path: Path) -> str:
        return path.resolve().relative_to(self.content.resolve()).as_posix()


def init_site(root: Path) -> Site:
    """Create the layout and the database (idempotent). Refuses a foreign or newer database."""
    site = Site(root.absolute())
    if site.root.exists() and not site.root.is_dir():
        raise SiteError(f"{site.root} exists and is not a directory")
    _mkdir(site.root)
    conn = prepare(site.db, create=True)
    conn.close()
    for name in CONTENT_DIRS:
        _mkdir(site.content / name)
    _fsync_dir(site.content)
    _fsync_dir(site.root)
    return site


def _mkdir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except PermissionError as e:
        raise SiteError(
            f"cannot create {e.filename or path}: permission denied",
            hint="Run gremlin as the user who owns the site directory, or choose a directory "
            "that user may write.",
        ) from e
    except (FileExistsError, NotADirectoryError) as e:
        raise SiteError(
            f"cannot create {path}: {e.filename or path} is in the way (not a directory)",
            hint="Move that file away, or choose another site directory.",
        ) from e
    except OSError as e:
        raise SiteError(f"cannot create {path}: {e.strerror}") from e


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
