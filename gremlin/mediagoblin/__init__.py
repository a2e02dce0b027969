"""Import a GNU MediaGoblin instance: reader (its tables, read-only), plan (pure decisions),
steps and run (the writes, one transaction per item, resumable), report, legacy lookups."""

from .legacy import (
    legacy_collection_target,
    legacy_file_target,
    legacy_media_target,
    legacy_user_target,
)
from .plan import SOURCE, Kind
from .reader import MediaGoblinError
from .report import Report
from .run import run_import

__all__ = [
    "SOURCE",
    "Kind",
    "MediaGoblinError",
    "Report",
    "legacy_collection_target",
    "legacy_file_target",
    "legacy_media_target",
    "legacy_user_target",
    "run_import",
]
