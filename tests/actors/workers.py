"""A Python job worker, as media types name them: "module:function"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def probe(input: Path, out: Path, step: str) -> dict[str, Any]:
    assert input.read_bytes() == b"raw bytes"
    (out / "info.json").write_text(json.dumps({"step": step}))
    return {"width": 640, "files": {"info": {"mime": "application/json"}}}


def full_disk_once(input: Path, out: Path, step: str) -> dict[str, Any]:
    """Fails like a write on a full disk on its first run, then works (runs counted beside the
    input)."""
    import errno

    runs = input.with_name(input.name + ".runs")
    n = int(runs.read_text()) + 1 if runs.exists() else 1
    runs.write_text(str(n))
    if n == 1:
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "info.json"))
    (out / "info.json").write_text(json.dumps({"step": step}))
    return {}
