"""The soak run (tests/torture/soak.py), 45 seconds in CI: a mixed load of pages, files,
uploads on both paths, cut uploads and deletes; no 5xx, no traceback, no descriptor or thread
left behind, every acknowledged upload settled, fsck clean. Longer runs, which also judge RSS:
`python -m tests.torture.soak --minutes 10`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

MINUTES = os.environ.get("GREMLIN_SOAK_MINUTES", "0.75")


def test_a_minute_of_mixed_load_leaves_nothing_behind(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.torture.soak", "--minutes", MINUTES, "--sample", "5",
         "--workers", "2", "--site", str(tmp_path / "site")],
        cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert done.stdout.rstrip().endswith("OK")
    assert "media acknowledged 0," not in done.stdout  # the load really uploaded
