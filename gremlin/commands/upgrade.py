"""upgrade, revert."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import pkgutil

import click
import trio

from ..cli import run, settings_for, site_argument
from ..media.ffmpeg import check_ffmpeg
from ..memory import limit_malloc_arenas
from ..serve import ServeOutcome, announce_stdout, serve
from ..settings import Settings
from ..store import Site
from ..upgrade import Handed, RevertResult, UpgradeResult, hand_over, revert
from ..upgrade.recopy import check_integrity_later

log = logging.getLogger(__name__)


def _host_port(url: str | None) -> str | None:
    """'http://127.0.0.1:8080' -> '127.0.0.1:8080' (the old server's recorded address)."""
    return url.split("://", 1)[-1].rstrip("/") if url else None


def _describe(result: UpgradeResult) -> str:
    copy, before = result.copy, result.precopy
    where = ""
    if before is not None:
        where = f" inside the window (copied and checked in full before it: {before.seconds:.2f}s)"
    return (
        f"copied {sum(copy.rows.values())} rows in {copy.seconds:.2f}s{where}"
        f" (schema {copy.from_schema} -> {copy.to_schema});"
        f" the old database is kept as {result.set_aside.name}"
    )


def _warm_up() -> None:
    """Import every web module now: the app imports some only when it is built, which in a
    handover happens inside the maintenance window (~50 ms of it). Only a head start: a
    module that fails here is left for the server to import (and report) as usual."""
    from .. import web

    for module in pkgutil.iter_modules(web.__path__):
        name = f"{web.__name__}.{module.name}"
        try:
            importlib.import_module(name)
        except Exception as e:
            log.debug("warm-up: importing %s failed: %s", name, e)


async def _upgrade(settings: Settings, bind: str | None) -> ServeOutcome | None:
    _warm_up()
    handed = await hand_over(settings)
    if isinstance(handed, UpgradeResult):
        click.echo(f"no server was running: upgraded offline; {_describe(handed)}")
        return None
    assert isinstance(handed, Handed)
    click.echo(f"took over from pid {handed.old.process.pid}; {_describe(handed.result)}")
    if handed.sock is None:  # the old server died before passing its socket: bind afresh
        address = bind or _host_port(handed.old.bind) or settings.bind
        settings = dataclasses.replace(settings, bind=address)
    if handed.result.copy.check is not None:
        return await serve(
            settings, sock=handed.sock, replacing=handed.old.process, announce=announce_stdout
        )
    # The window's copy left PRAGMA integrity_check out: run it once the new server serves.
    serving = trio.Event()

    def announce(url: str) -> None:
        announce_stdout(url)
        serving.set()

    async def check_when_serving() -> None:
        await serving.wait()
        await check_integrity_later(Site(settings.site.absolute()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(check_when_serving, name="integrity-check")
        outcome = await serve(
            settings, sock=handed.sock, replacing=handed.old.process, announce=announce
        )
        nursery.cancel_scope.cancel()
    return outcome


@click.command("upgrade")
@site_argument
@click.option(
    "--bind", help="HOST:PORT to listen on if the old server's socket cannot be taken over."
)
def upgrade_command(site: str | None, bind: str | None) -> None:
    """Replace SITE's running server by this version without refusing a connection, then
    serve; with no server running, upgrade the database offline and exit."""
    limit_malloc_arenas()  # a long-running server: see gremlin/memory.py
    settings = settings_for(site, chatty=True, bind=bind)
    check_ffmpeg(settings)  # as `serve` does, and before the old server is disturbed
    outcome = run(_upgrade, settings, bind)
    if outcome is not None and not outcome.graceful:
        raise SystemExit(1)


@click.command("revert")
@site_argument
@click.argument("name", required=False)
def revert_command(site: str | None, name: str | None) -> None:
    """Put back the newest set-aside database of SITE (or the one NAME names), keeping the
    current one as db_<version>.sqlite. The server must be stopped."""
    settings = settings_for(site)
    result = revert(Site(settings.site), name)
    click.echo(
        f"reverted: db.sqlite is now the database set aside as {result.restored.name}"
        f" (schema {result.restored_schema})"
    )
    if result.damaged:
        click.echo(
            f"the replaced database could not be read (damaged): kept as {result.set_aside.name},"
            " not compared; what was written since the upgrade may be lost with it"
        )
    else:
        _print_deltas(result)
    click.echo(
        "Start the server with the contentgremlin version of that schema: a newer version"
        " would upgrade it again."
    )


def _print_deltas(result: RevertResult) -> None:
    def per_table(field: str) -> str:
        found = [(d.table, getattr(d, field)) for d in result.deltas if getattr(d, field)]
        return f" ({', '.join(f'{t} {n}' for t, n in found)})" if found else ""

    click.echo(
        f"the replaced database is kept as {result.set_aside.name}; written since the upgrade,"
        f" kept there and not in the restored one: {result.rows_set_aside} new rows"
        f"{per_table('newer_rows')}, {result.rows_changed} changed rows"
        f"{per_table('changed_rows')}; {result.rows_deleted} deleted rows are back"
        f"{per_table('deleted_rows')}"
    )


COMMANDS = [upgrade_command, revert_command]
