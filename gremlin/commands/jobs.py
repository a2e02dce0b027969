"""jobs, retry."""

from __future__ import annotations

import json
from typing import Any

import click

from ..cli import run, settings_for, site_argument
from ..settings import Settings
from ..store import open_store
from ..store.job_queries import list_jobs, retry_media


async def _jobs(settings: Settings) -> list[dict[str, Any]]:
    async with open_store(settings.db_path) as store:
        return await store.read(list_jobs)


async def _retry(settings: Settings, media_id: str) -> int:
    async with open_store(settings.db_path) as store:
        return await store.write(retry_media, media_id)


@click.command("jobs")
@site_argument
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def jobs_command(site: str | None, as_json: bool) -> None:
    """List the processing jobs of SITE: state, attempts, progress, and why one failed."""
    settings = settings_for(site)
    jobs = run(_jobs, settings)
    if as_json:
        click.echo(json.dumps(jobs, indent=2))
        return
    if not jobs:
        click.echo("no jobs")
        return
    for job in jobs:
        pid = f" pid {job['pid']}" if job["pid"] else ""
        reason = f"  {job['reason']}" if job["reason"] else ""
        click.echo(
            f"{job['id']:>6} {job['media_id']} {job['step']:<12} {job['state']:<8}"
            f" attempt {job['attempt']}/{job['max_attempts']}"
            f" {job['progress'] * 100:3.0f}%{pid}{reason}"
        )


@click.command("retry")
@click.argument("site", type=click.Path(file_okay=False))
@click.argument("media_id")
def retry_command(site: str, media_id: str) -> None:
    """Run MEDIA_ID's failed jobs again with fresh attempts (finished outputs are kept)."""
    settings = settings_for(site)
    requeued = run(_retry, settings, media_id)
    noun = "job" if requeued == 1 else "jobs"
    click.echo(f"requeued {requeued} {noun} of media {media_id}; it is processing again")


COMMANDS = [jobs_command, retry_command]
