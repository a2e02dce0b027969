"""`gremlin`: thin click commands that load settings and call one async entry point.

Exit codes: 0 success, 1 a handled error (one line `Error: ...`, maybe `Try: ...`), 2 usage.
Commands live in gremlin/commands/, one module per area; this module is the group and the
shared plumbing.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import trio

from . import __version__
from .errors import GremlinError
from .settings import Settings, load

T = TypeVar("T")


def _leaf_gremlin_error(e: BaseException) -> GremlinError | None:
    """The GremlinError inside an exception group of exactly one leaf, if that is what it is."""
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return e if isinstance(e, GremlinError) else None


class GremlinGroup(click.Group):
    """Commands load lazily from gremlin.commands; handled errors print as one line + hint."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from .commands import COMMANDS

        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from .commands import COMMANDS

        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(f"gremlin.commands.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BaseException as e:
            error = _leaf_gremlin_error(e)
            if error is None:
                raise
            click.echo(f"Error: {error.message}", err=True)
            if error.hint:
                click.echo(f"Try: {error.hint}", err=True)
            ctx.exit(1)


def run(fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    return trio.run(fn, *args)


def settings_for(site: str | None, *, chatty: bool = False, **flags: Any) -> Settings:
    """Load the settings and configure logging once. Only long-running commands (`chatty`:
    serve, upgrade) log at INFO; the others print their own output and log warnings up."""
    settings = load(Path(site) if site else None, flags)
    level = settings.log_level.upper()
    if not chatty and level == "INFO":
        level = "WARNING"
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return settings


site_argument = click.argument("site", required=False, type=click.Path(file_okay=False))


@click.group(cls=GremlinGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="contentgremlin")
def cli() -> None:
    """contentgremlin: a self-hosted media site that an admin can trust."""


def main() -> None:
    cli(prog_name="gremlin")
