"""Quantities as people read them: one format for byte sizes everywhere (pages, the uploader's
messages, refusals)."""

from __future__ import annotations


def human_size(n: int | None) -> str:
    """Whole bytes under 1 KiB, else one decimal in KiB/MiB/GiB/TiB ('' for None)."""
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
