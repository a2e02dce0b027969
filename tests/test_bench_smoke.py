"""Every benchmark in bench/ still runs: each, at a tiny size, exits 0 and prints its figure.

Not a timing (figures from a loaded CI machine at these sizes mean nothing): a benchmark that
has rotted against the code it measures is found here, not on the day someone needs its
number.
"""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "bench"

# (script and its tiny arguments, a line its report must print)
RUNS = [
    ("bench_upload.py --mib 4 --rounds 1", "ratio cp/upload"),
    ("bench_fsck.py --gib 0.01 --files 2 --rounds 1", "ratio fsck/sha256sum"),
    ("bench_images.py --n 1 --rounds 1 --batches 1", "per media (median)"),
    ("bench_pages.py --media 50 --requests 20 --concurrency 2", "media page"),
    ("bench_upgrade.py --media 200", "failed reads 0"),
    ("bench_video.py --seconds 2", "ratio"),
    ("bench_jobs_overhead.py", "fork server vs runner"),
    ("bench_reconcile.py 20", "reconcile:"),
]

assert {run.split()[0] for run, _ in RUNS} == {p.name for p in BENCH.glob("bench_*.py")}


@pytest.mark.slow
@pytest.mark.parametrize(("run", "expected"), RUNS, ids=[run.split()[0] for run, _ in RUNS])
def test_benchmark_runs(run: str, expected: str, tmp_path: Path) -> None:
    script, *args = run.split()
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert expected in done.stdout, done.stdout[-2000:]
