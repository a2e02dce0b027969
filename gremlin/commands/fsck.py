"""fsck: check content/ against the database, and repair with --repair.

Exit codes: 0 nothing is wrong (or repair resolved every finding), 3 findings remain after the
run (see the report), 1 a handled error (no site, ...), 2 usage.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ..actors.fsck import Report, run_fsck
from ..cli import run, settings_for, site_argument
from ..settings import Settings
from ..store import Site, open_store
from ..store.fsck import printable

EXIT_FINDINGS = 3


class RichProgress:
    """Hashing progress on stderr: bytes, rate and ETA (thread-safe: rich locks itself)."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("verifying {task.fields[files]} files"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: Any = None

    def start(self, files: int, total_bytes: int) -> None:
        self._progress.start()
        self._task = self._progress.add_task("verify", total=total_bytes, files=files)

    def advance(self, nbytes: int) -> None:
        self._progress.update(self._task, advance=nbytes)

    def finish(self) -> None:
        self._progress.stop()


async def _fsck(settings: Settings, repair: bool, progress: RichProgress | None) -> Report:
    async with open_store(settings.db_path) as store:
        return await run_fsck(
            store, Site(settings.site), settings, repair=repair, progress=progress
        )


def _print_text(report: Report, site: Site) -> None:
    mib = report.bytes_checked / 1024 / 1024
    click.echo(
        f"fsck {site.root} (run {report.run_id}): {report.files_checked} files,"
        f" {mib:.1f} MiB verified"
    )
    for cleared in report.cleared:
        click.echo(
            printable(f"no longer damaged: media {cleared['media_id']}: {cleared['detail']}")
        )
    if not report.findings:
        click.echo("clean: every file matches its row, and no file is without one")
        return
    click.echo(f"findings ({len(report.findings)}):")
    for f in report.findings:
        click.echo(f"  {f.line()}")
    if report.repair:
        done = [o for o in report.outcomes if o.action is not None]
        click.echo(f"repaired ({len(done)}):")
        for o in done:
            assert o.action is not None
            click.echo(printable(f"  {o.action.value:<15} {o.finding.path}: {o.detail}"))
        left = [o for o in report.outcomes if o.action is None]
        if left:
            click.echo(f"not changed ({len(left)}):")
            for o in left:
                click.echo(printable(f"  {o.finding.kind.value:<15} {o.finding.path}: {o.detail}"))
    if report.remaining:
        hint = "" if report.repair else f"; to repair: gremlin fsck {site.root} --repair"
        click.echo(f"{report.remaining} finding(s) remain (exit {EXIT_FINDINGS}){hint}")
        click.echo("See docs/admin-guide.md, 'fsck and GC', for what each finding means.")
    else:
        click.echo("every finding was repaired")


@click.command("fsck")
@site_argument
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--repair",
    is_flag=True,
    help="Quarantine orphans, re-make derived files, "
    "flag damaged originals, remove stale uploads and stray job directories.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar on stderr.")
def fsck(site: str | None, as_json: bool, repair: bool, no_progress: bool) -> None:
    """Check every stored file of SITE against its row (size, SHA-256), find files no row
    names, stale partial uploads and stray job directories; repair them with --repair.

    Exit status: 0 clean (or all repaired), 3 findings remain, 1 error."""
    settings = settings_for(site)
    progress = None if no_progress else RichProgress()
    report = run(_fsck, settings, repair, progress)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _print_text(report, Site(settings.site))
    sys.stdout.flush()
    if report.remaining:
        raise SystemExit(EXIT_FINDINGS)


COMMANDS = [fsck]
