"""A finished job's outputs: found (in out/, or already moved by an interrupted finish),
hashed, and described (MIME type, dimensions) for the `files` rows."""

from __future__ import annotations

import dataclasses
import json
import mimetypes
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..store import Site, sha256_file
from ..store.job_queries import JobRow
from .jobfiles import JobDir


@dataclasses.dataclass(frozen=True)
class Output:
    role: str
    name: str
    src: Path
    dst: Path
    size: int
    sha256: str
    mime: str
    width: int | None
    height: int | None
    duration: float | None


def _guess_mime(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _image_size(path: Path) -> tuple[int | None, int | None]:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:
        return None, None


def collect_outputs(site: Site, job: JobRow, result: Mapping[str, Any]) -> list[Output]:
    """Hash each declared output (in out/, or already moved by an interrupted finish)."""
    jobdir = JobDir(site.jobs / str(job.id))
    # Per-output facts a worker may return: {"files" or "outputs": {role: {mime, width, ...}}}.
    info_by_role = result.get("files") or result.get("outputs") or {}
    if not isinstance(info_by_role, dict):
        info_by_role = {}
    outputs = []
    for role, name in job.outputs.items():
        src, dst = jobdir.out / name, site.media / job.media_id / name
        present = src if src.exists() else dst if dst.exists() else None
        if present is None:
            raise FileNotFoundError(f"declared output {name!r} was not produced")
        size, digest = sha256_file(present)
        info = info_by_role.get(role)
        info = info if isinstance(info, dict) else {}
        mime = info.get("mime") or _guess_mime(name)
        width, height = info.get("width"), info.get("height")
        if width is None and mime.startswith("image/"):
            width, height = _image_size(present)
        outputs.append(
            Output(role, name, src, dst, size, digest, mime, width, height, info.get("duration"))
        )
    return outputs


def _read_result(jobdir: JobDir) -> dict[str, Any]:
    try:
        data = json.loads((jobdir.out / "result.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def gather_outputs(site: Site, job: JobRow, jobdir: JobDir) -> tuple[dict[str, Any], list[Output]]:
    result = _read_result(jobdir)
    return result, collect_outputs(site, job, result)
