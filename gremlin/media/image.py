"""The image media type: JPEG, PNG, GIF, WebP, TIFF, HEIC/HEIF and AVIF.

One job, "derive", decodes the original once and writes a thumbnail and a medium size (WebP),
EXIF orientation applied, every metadata field stripped. It runs as an external process like
every job (gremlin.media.image_worker). Animated GIF and WebP become stills of their first
frame: the derived sizes are previews, and the original (kept and served as is) still moves.
See docs/media.md.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from ..settings import Settings
from .base import Command, JobView, Kind, PlannedJob

DERIVE = "derive"
OUTPUTS = {"thumb": "thumb.webp", "medium": "medium.webp"}
WORKER = "gremlin.media.image_worker:derive"

_ISO_BRANDS = {
    b"avif": "image/avif",
    b"avis": "image/avif",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"hevc": "image/heic-sequence",
    b"hevx": "image/heic-sequence",
    b"mif1": "image/heif",
    b"msf1": "image/heif-sequence",
}


def _sniff_iso_bmff(head: bytes) -> str | None:
    """HEIF family: an ISO-BMFF `ftyp` box whose major or compatible brands are image brands."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    box_size = int.from_bytes(head[0:4], "big")
    if not 16 <= box_size <= min(len(head), 512):
        return None
    brands = [head[8:12]] + [head[i : i + 4] for i in range(16, box_size - 3, 4)]
    mimes = [_ISO_BRANDS[b] for b in brands if b in _ISO_BRANDS]
    if not mimes:
        return None
    # AVIF files often carry "mif1" first; the specific brand wins over the generic one.
    for specific in ("image/avif", "image/heic"):
        if specific in mimes:
            return specific
    return "image/heif" if "image/heif" in mimes else mimes[0]


def sniff_image(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    mime = _sniff_iso_bmff(head)
    return mime if mime in ImageType.mimes else None


def _summary_json(exif: Any) -> str | None:
    if not isinstance(exif, Mapping) or not exif:
        return None
    return json.dumps({str(k): v for k, v in exif.items()}, sort_keys=True)


class ImageType:
    name = "image"
    kind = Kind.IMAGE
    preload = ("gremlin.media.image_worker",)  # imported by the fork server up front
    mimes = (
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/tiff",
        "image/heic",
        "image/heif",
        "image/avif",
    )

    def sniff(self, head: bytes) -> str | None:
        return sniff_image(head)

    def plan(self, media_id: str, mime: str, settings: Settings) -> list[PlannedJob]:
        return [PlannedJob(DERIVE, dict(OUTPUTS), {"mime": mime})]

    def command(self, job: JobView, settings: Settings) -> Command:
        if job.step != DERIVE:
            raise ValueError(f"image media has no job step {job.step!r}")
        return Command(
            python=WORKER,
            kwargs={
                "outputs": dict(job.outputs),
                "thumb_size": settings.thumb_size,
                "medium_size": settings.medium_size,
                "quality": settings.image_quality,
                "max_pixels": settings.max_image_pixels,
            },
        )

    def on_done(
        self, conn: sqlite3.Connection, job: JobView, result: Mapping[str, Any], settings: Settings
    ) -> list[PlannedJob]:
        """Record the original's dimensions and EXIF summary on the media row, and the derived
        files' dimensions on their rows (where the engine has inserted them already)."""
        width, height = result.get("width"), result.get("height")
        conn.execute(
            "UPDATE media SET width = ?, height = ?, exif = ?, updated_at = ? WHERE id = ?",
            (width, height, _summary_json(result.get("exif")), time.time(), job.media_id),
        )
        conn.execute(
            "UPDATE files SET width = ?, height = ? WHERE media_id = ? AND role = 'original'",
            (width, height, job.media_id),
        )
        for role, info in (result.get("outputs") or {}).items():
            conn.execute(
                "UPDATE files SET width = ?, height = ? WHERE media_id = ? AND role = ?",
                (info.get("width"), info.get("height"), job.media_id, role),
            )
        return []


IMAGE = ImageType()
