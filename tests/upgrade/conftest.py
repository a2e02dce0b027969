"""Fixtures of the upgrade tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from gremlin.store import STEPS, apply_steps, connect
from tests.upgrade.dbs import fill


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    """A database at this code's schema with 30 media and their rows."""
    db = tmp_path / "db.sqlite"
    conn = connect(db)
    apply_steps(conn, steps=STEPS)
    conn.close()
    fill(db, 30)
    return db
