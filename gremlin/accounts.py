"""Users and passwords: argon2id hashes; bcrypt hashes (imported from MediaGoblin) verified
and rehashed to argon2id on the first successful sign-in."""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from typing import Any

import argon2
import bcrypt

from .errors import BadRequest, Conflict, NotFound

_hasher = argon2.PasswordHasher()  # argon2id with the library's current defaults
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """(ok, new hash to store or None). Accepts argon2 and bcrypt ($2a$/$2b$/$2y$) hashes."""
    if not stored:
        return False, None
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        try:
            ok = bcrypt.checkpw(password.encode(), stored.encode())
        except ValueError:
            return False, None
        return ok, (hash_password(password) if ok else None)
    try:
        _hasher.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False, None
    return True, (hash_password(password) if _hasher.check_needs_rehash(stored) else None)


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise BadRequest(
            f"invalid user name {name!r}",
            hint="Use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit.",
        )
    return name


def create_user(
    conn: sqlite3.Connection,
    name: str,
    password_hash: str | None,
    *,
    is_admin: bool = False,
    email: str | None = None,
    **extra: Any,
) -> int:
    check_name(name)
    if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
        raise Conflict(f"user {name!r} already exists")
    columns = ["name", "password_hash", "is_admin", "email", "created_at", *extra]
    values = [name, password_hash, int(is_admin), email, time.time(), *extra.values()]
    cur = conn.execute(
        f"INSERT INTO users ({', '.join(columns)}) VALUES ({', '.join('?' * len(values))})",
        values,
    )
    return int(cur.lastrowid or 0)


def user_by_name(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM users WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no user named {name!r}", hint="Create one: gremlin adduser SITE NAME")
    return row


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(conn: sqlite3.Connection, user_id: int, label: str = "") -> str:
    """A new API token (shown once); only its SHA-256 is stored."""
    token = "gt_" + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO tokens (user_id, token_hash, label, created_at) VALUES (?, ?, ?, ?)",
        (user_id, token_hash(token), label, time.time()),
    )
    return token


def user_for_token(conn: sqlite3.Connection, token: str) -> sqlite3.Row | None:
    return conn.execute(
        "SELECT users.* FROM tokens JOIN users ON users.id = tokens.user_id"
        " WHERE tokens.token_hash = ? AND tokens.revoked_at IS NULL AND users.disabled = 0",
        (token_hash(token),),
    ).fetchone()
