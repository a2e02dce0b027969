"""Sign-in's plain parts: the per-address throttle, the first-run setup token, the rows a
sign-in reads and writes. Pure logic and sync queries; gremlin.web.auth awaits them."""

from __future__ import annotations

import functools
import hmac
import secrets
import sqlite3
import time
from collections import deque

from ..accounts import hash_password
from ..errors import BadRequest, Forbidden, GremlinError

MIN_PASSWORD_CHARS = 8


@functools.cache
def dummy_hash() -> str:
    """A hash to verify against for unknown names (equal work). Made on first use, not at
    import: every `gremlin` command imports this module, and argon2 costs ~0.25 s of CPU."""
    return hash_password(secrets.token_hex(8))


class AccountDisabled(Forbidden):
    code = "account_disabled"


class SigninThrottled(GremlinError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "too many failed sign-ins from this address", hint="Wait a minute and try again."
        )
        self.retry_after = max(1, int(retry_after + 0.999))


class SigninLimiter:
    """Failed sign-ins per address over the last minute (pure; time is passed in). A good
    sign-in forgets none of them: else one could guess others' passwords without end, signing
    in to an account of one's own after every few guesses."""

    def __init__(self, per_minute: int, window_seconds: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window_seconds
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, addr: str, now: float) -> deque[float]:
        q = self._failures.get(addr, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def retry_after(self, addr: str, now: float) -> float | None:
        """Seconds to wait before `addr` may try again, or None if it may try now."""
        if self.per_minute <= 0:
            return None
        q = self._recent(addr, now)
        if len(q) < self.per_minute:
            return None
        return q[0] + self.window - now

    def failed(self, addr: str, now: float) -> None:
        q = self._recent(addr, now)
        q.append(now)
        self._failures[addr] = q
        if len(self._failures) > 10_000:
            for key in [k for k, v in self._failures.items() if not self._recent(k, now)]:
                del self._failures[key]


def user_row_by_name(conn: sqlite3.Connection, name: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()


def record_signin(conn: sqlite3.Connection, user_id: int, new_hash: str | None) -> None:
    conn.execute("UPDATE users SET last_signin_at = ? WHERE id = ?", (time.time(), user_id))
    if new_hash is not None:
        conn.execute("UPDATE users SET password_hash = ? WHERE id = ?", (new_hash, user_id))


def admin_exists(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM users WHERE is_admin = 1 LIMIT 1").fetchone() is not None


def setup_token_for_link(conn: sqlite3.Connection) -> str | None:
    if admin_exists(conn):
        conn.execute("DELETE FROM meta WHERE key = 'setup_token'")
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'setup_token'").fetchone()
    if row is not None:
        return str(row["value"])
    token = secrets.token_urlsafe(24)
    conn.execute("INSERT INTO meta (key, value) VALUES ('setup_token', ?)", (token,))
    return token


def setup_token_matches(conn: sqlite3.Connection, token: str) -> bool:
    row = conn.execute("SELECT value FROM meta WHERE key = 'setup_token'").fetchone()
    return (
        row is not None and not admin_exists(conn) and hmac.compare_digest(str(row["value"]), token)
    )


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise BadRequest(f"the password is shorter than {MIN_PASSWORD_CHARS} characters")
