"""init, serve, config, status."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import click
import trio

from ..cli import run, settings_for, site_argument
from ..media.ffmpeg import check_ffmpeg, describe_ffmpeg
from ..media.ffmpeg import status as ffmpeg_status
from ..memory import limit_malloc_arenas
from ..settings import describe
from ..store import init_site, open_store
from ..store.handover import active_handover
from ..store.server_record import read_server


@click.command()
@site_argument
def init(site: str | None) -> None:
    """Create the site directory layout and its database in SITE."""
    settings = settings_for(site)
    created = init_site(settings.site)
    click.echo(f"site ready at {created.root}")


@click.command("serve")
@site_argument
@click.option("--bind", help="HOST:PORT to listen on (port 0: any free port).")
def serve_command(site: str | None, bind: str | None) -> None:
    """Run the server for SITE (created if missing) until SIGTERM or Ctrl-C."""
    from ..serve import announce_stdout, serve

    limit_malloc_arenas()  # a long-running server: see gremlin/memory.py
    settings = settings_for(site, chatty=True, bind=bind)
    check_ffmpeg(settings)  # refuse to start without the encoders video and audio need
    outcome = run(lambda: serve(settings, announce=announce_stdout))
    # Exit without a last collection of every module's objects: ~0.1 s sooner, and a
    # handover's new process waits for this exit.
    gc.freeze()
    if not outcome.graceful:
        raise SystemExit(1)


@click.command()
@site_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config(site: str | None, as_json: bool) -> None:
    """Print the effective settings of SITE."""
    settings = settings_for(site)
    rows = describe(settings)
    if as_json:
        click.echo(json.dumps({name: str(v) if isinstance(v, Path) else v for name, v, _ in rows}))
        return
    width = max(len(name) for name, _, _ in rows)
    for name, value, help_text in rows:
        click.echo(f"{name:<{width}}  {value!s:<20}  # {help_text}")


async def _status(settings: Any) -> dict[str, Any]:
    from ..store.queries import status_counts

    async with open_store(settings.db_path) as store:
        record = await store.read(read_server)
        counts = await store.read(status_counts)
        upgrading = await store.read(active_handover)  # the server row is left as it is
    server = None
    if record is not None and record.alive():
        server = {
            "pid": record.process.pid,
            "version": record.version,
            "mode": "maintenance" if upgrading is not None else record.mode,
            "bind": record.bind,
        }
    ffmpeg = await trio.to_thread.run_sync(ffmpeg_status, settings)
    return {"server": server, **counts, "ffmpeg": ffmpeg}


@click.command()
@site_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(site: str | None, as_json: bool) -> None:
    """Show the server, media, jobs and storage of SITE."""
    settings = settings_for(site)
    data = trio.run(_status, settings)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    server = data["server"]
    if server:
        pid, version, mode, bind = (server[k] for k in ("pid", "version", "mode", "bind"))
        click.echo(f"server: pid {pid} version {version} {mode} at {bind}")
    else:
        click.echo("server: not running")
    media, jobs = data["media"], data["jobs"]
    click.echo("media: " + ", ".join(f"{v} {k}" for k, v in media.items()))
    click.echo("jobs: " + ", ".join(f"{v} {k}" for k, v in jobs.items()))
    click.echo(f"storage: {data['storage']['bytes']} bytes")
    click.echo(describe_ffmpeg(data["ffmpeg"]))
    fsck = data["fsck"]
    click.echo(
        "fsck: never run" if fsck is None else f"fsck: {fsck['findings']} findings at {fsck['at']}"
    )


COMMANDS = [init, serve_command, config, status]
