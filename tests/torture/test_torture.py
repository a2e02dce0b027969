"""The kill -9 torture test (issue 6), 30 rounds in CI; 500 with
`python -m tests.torture.torture --rounds 500`."""

import os
from pathlib import Path

import pytest

from .torture import run

pytestmark = pytest.mark.slow

ROUNDS = int(os.environ.get("GREMLIN_TORTURE_ROUNDS", "30"))


def test_kill_minus_nine_loses_nothing(tmp_path: Path) -> None:
    result = run(ROUNDS, tmp_path / "site", seed=20261128)
    assert result["rounds"] == ROUNDS
    assert result["acknowledged"] >= ROUNDS  # every round acknowledged something
    assert result["lost"] == 0
    assert result["stuck"] == 0
    assert result["jobs_not_finished"] == 0
    assert result["failed_without_reason"] == 0
    assert result["fsck_findings"] == []
    assert result["ready"] + result["failed"] == result["acknowledged"]
    # Only the deliberately corrupt upload may fail; every good one must become ready.
    assert set(result["failed_inputs"]) <= {"corrupt.jpg"}
