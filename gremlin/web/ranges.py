"""HTTP conditional and range rules for file responses: plain functions, no I/O."""

from __future__ import annotations

import dataclasses

from ..errors import GremlinError


class RangeNotSatisfiable(GremlinError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, size: int) -> None:
        super().__init__(f"the requested range is outside the file ({size} bytes)")
        self.size = size


@dataclasses.dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range of `Range: bytes=...` within a file of `size` bytes.

    None means "send the whole file" (no header, another unit, a malformed or multi-range
    header: RFC 9110 lets a server ignore those). Raises RangeNotSatisfiable (416)."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if (first and not first.isdigit()) or (last and not last.isdigit()):
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return ByteRange(max(0, size - n), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size:
        raise RangeNotSatisfiable(size)
    if end < start:
        return None
    return ByteRange(start, min(end, size - 1))


def etag_for(sha256: str) -> str:
    return f'"{sha256}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match: `*` or a list of (weak or strong) tags, compared weakly."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))


def if_range_allows(header: str | None, etag: str) -> bool:
    """If-Range with a strong ETag: honour the Range only when it still matches."""
    return header is None or header.strip() == etag
