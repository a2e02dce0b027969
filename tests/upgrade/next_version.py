"""An honest "next version" for the upgrade tests, through the developer hook
`GREMLIN_EXTRA_SCHEMA=tests.upgrade.next_version:STEPS` (gremlin/store/schema.py): this code
plus one schema step that transforms data, reporting a higher version.

Other step tuples here make a copy fail or go slowly, for the abort tests.
"""

from __future__ import annotations

import os
import sqlite3
import time

from gremlin import __version__
from gremlin.store.schema import INITIAL, Step

VERSION = f"{__version__}.post1"
NUMBER = INITIAL.number + 1
ENV = {"GREMLIN_EXTRA_SCHEMA": "tests.upgrade.next_version:STEPS"}


def _fill_word_counts(conn: sqlite3.Connection) -> None:
    conn.execute(
        "UPDATE media SET title_words = length(trim(title)) - length(replace(trim(title), ' ', ''))"
        " + (trim(title) != '')"
    )
    # A load test can hold the window open this long, so that its writes surely meet it.
    if _in_window(conn):
        time.sleep(float(os.environ.get("GREMLIN_TEST_WINDOW_SECONDS", "0")))


STEPS = (
    Step(
        NUMBER,
        "next-version: media title word counts",
        (
            "ALTER TABLE media ADD COLUMN title_words INTEGER NOT NULL DEFAULT 0",
            "CREATE TABLE next_version_notes (id INTEGER PRIMARY KEY, note TEXT NOT NULL)",
        ),
        _fill_word_counts,
    ),
)


def _fail(conn: sqlite3.Connection) -> None:
    raise RuntimeError("this transformation fails on purpose (test)")


FAILING = (Step(NUMBER, "next-version: a failing transformation", (), _fail),)


def _in_window(conn: sqlite3.Connection) -> bool:
    """Is this the copy inside the handover window? Its copied handover row is at stage
    copying; the copy before the window (gremlin/upgrade/recopy.py) has none at all."""
    return bool(conn.execute("SELECT 1 FROM handover WHERE stage = 'copying'").fetchone())


def _slow(conn: sqlite3.Connection) -> None:
    if _in_window(conn):
        time.sleep(float(os.environ.get("GREMLIN_TEST_SLOW_STEP_SECONDS", "5")))


def _fail_in_window(conn: sqlite3.Connection) -> None:
    if _in_window(conn):
        raise RuntimeError("this transformation fails inside the window on purpose (test)")


# Slow, or failing, only inside the window: the copy before it goes through.
SLOW = (Step(NUMBER, "next-version: a slow transformation", (), _slow),)
FAILING_IN_WINDOW = (Step(NUMBER, "next-version: fails in the window", (), _fail_in_window),)
