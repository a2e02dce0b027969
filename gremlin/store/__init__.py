"""The store: connections, schema steps, queries, and the files under content/."""

from .content import fsync_dir, fsync_file, move_durable, sha256_file, write_atomic
from .db import connect, transaction
from .schema import STEPS, Step, apply_steps, latest, version_of
from .site import COMMITTING, CONTENT_DIRS, Site, init_site
from .store import Store, open_store, prepare

__all__ = [
    "COMMITTING",
    "CONTENT_DIRS",
    "STEPS",
    "Site",
    "Step",
    "Store",
    "apply_steps",
    "connect",
    "fsync_dir",
    "fsync_file",
    "init_site",
    "latest",
    "move_durable",
    "open_store",
    "prepare",
    "sha256_file",
    "transaction",
    "version_of",
    "write_atomic",
]
