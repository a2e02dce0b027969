"""A Python job worker, as media types name them: "module:function"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def probe(input: Path, out: Path, step: str) -> dict[str, Any]:
    assert input.read_bytes() == b"raw bytes"
    (out / "info.json").write_text(json.dumps({"step": step}))
    return {"width": 640, "files": {"info": {"mime": "application/json"}}}
