"""Media types: the interface, the registry, and the built-in image type.

The commit of an upload lives in `gremlin.media.commit` (it imports the store; this package
must stay importable from the store without a cycle).
"""

from .base import EXIT_BAD_INPUT, Command, JobView, Kind, MediaType, PlannedJob
from .registry import MediaTypeConflict, load_media_types, sniff, supported_mimes

__all__ = [
    "EXIT_BAD_INPUT",
    "Command",
    "JobView",
    "Kind",
    "MediaType",
    "MediaTypeConflict",
    "PlannedJob",
    "load_media_types",
    "sniff",
    "supported_mimes",
]
