"""adduser, token."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..accounts import create_token, create_user, hash_password, user_by_name
from ..cli import run, settings_for
from ..errors import BadRequest
from ..settings import Settings
from ..store import open_store

T = TypeVar("T")


async def _write(settings: Settings, fn: Callable[..., T], *args: Any) -> T:
    async with open_store(settings.db_path) as store:
        return await store.write(fn, *args)


@click.command()
@click.argument("site", type=click.Path(file_okay=False))
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--email", default=None, help="The user's email address.")
def adduser(site: str, name: str, admin: bool, password_stdin: bool, email: str | None) -> None:
    """Create user NAME on SITE (asks for a password unless --password-stdin)."""
    settings = settings_for(site)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        raise BadRequest("the password is shorter than 8 characters", hint="Choose a longer one.")
    hashed = hash_password(password)
    user_id = run(
        _write, settings, lambda c: create_user(c, name, hashed, is_admin=admin, email=email)
    )
    click.echo(f"created user {name} (id {user_id}{', admin' if admin else ''})")


@click.command()
@click.argument("site", type=click.Path(file_okay=False))
@click.argument("name")
@click.option("--label", default="cli", help="A note to recognise the token by.")
def token(site: str, name: str, label: str) -> None:
    """Print a new API token for user NAME (use it as `Authorization: Bearer TOKEN`)."""
    settings = settings_for(site)
    click.echo(run(_write, settings, lambda c: create_token(c, user_by_name(c, name)["id"], label)))


COMMANDS = [adduser, token]
