"""Fixtures for in-process web tests: a real store on a real site, the app, its test client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from quart_trio import QuartTrio

from gremlin.accounts import create_token, create_user, hash_password
from gremlin.runtime import Runtime
from gremlin.settings import Settings
from gremlin.store import Store, open_store
from gremlin.web.app import create_app

PASSWORD = "correct horse battery"
_HASH = hash_password(PASSWORD)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    async with open_store(settings.db_path) as store:
        yield store


@pytest.fixture
def runtime(settings: Settings, store: Store) -> Runtime:
    return Runtime(settings, store)


@pytest.fixture
async def app(runtime: Runtime) -> AsyncIterator[QuartTrio]:
    app = create_app(runtime)
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = 0
    yield app


async def add_user(store: Store, name: str, *, admin: bool = False) -> tuple[int, str]:
    """(user id, API token) of a new user whose password is PASSWORD."""

    def create(conn):  # type: ignore[no-untyped-def]
        user_id = create_user(conn, name, _HASH, is_admin=admin)
        return user_id, create_token(conn, user_id, "test")

    return await store.write(create)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
