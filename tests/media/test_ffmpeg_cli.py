"""`gremlin status` shows the ffmpeg in use; `gremlin serve` refuses to start without an
encoder it needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gremlin.store import Site

from ..conftest import run_gremlin
from .test_ffmpeg import ENCODERS_TEXT, _shim

pytestmark = pytest.mark.slow


def test_status_shows_ffmpeg_and_encoders(site: Site) -> None:
    done = run_gremlin("status", str(site.root), "--json")
    assert done.returncode == 0, done.stderr
    ffmpeg = json.loads(done.stdout)["ffmpeg"]
    assert Path(ffmpeg["path"]).name.startswith("ffmpeg")
    assert ffmpeg["encoders"]["libx264"] is True and ffmpeg["missing"] == []
    text = run_gremlin("status", str(site.root))
    assert f"ffmpeg: {ffmpeg['path']}" in text.stdout and "libx264" in text.stdout


def test_serve_refuses_to_start_without_libx264(site: Site, tmp_path: Path) -> None:
    shim = _shim(tmp_path, ENCODERS_TEXT.replace(" V....D libx264 ", " V....D libx265 "))
    env = {"GREMLIN_FFMPEG_PATH": str(shim)}
    done = run_gremlin("serve", str(site.root), "--bind", "127.0.0.1:0", env=env, timeout=60)
    assert done.returncode == 1
    assert f"Error: ffmpeg 9.9-shim at {shim} has no encoder libx264" in done.stderr
    assert "Try: " in done.stderr
    status = json.loads(run_gremlin("status", str(site.root), "--json", env=env).stdout)
    assert status["server"] is None and status["ffmpeg"]["missing"] == ["libx264"]
