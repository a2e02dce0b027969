"""import-mediagoblin: bring a GNU MediaGoblin instance over (see docs/mediagoblin-migration.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli import run, settings_for
from ..mediagoblin import run_import


@click.command("import-mediagoblin")
@click.argument("site", type=click.Path(file_okay=False))
@click.argument("mg_db", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("mg_user_dev", type=click.Path(file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report what would be imported; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def import_mediagoblin(
    site: str, mg_db: Path, mg_user_dev: Path, dry_run: bool, as_json: bool
) -> None:
    """Import users, media, collections and comments from MediaGoblin into SITE.

    MG_DB is MediaGoblin's SQLite database (mediagoblin.db) and MG_USER_DEV its data
    directory (user_dev/, holding media/public and media/queue); both are only read. Running
    it again imports only what is still missing. Exit code 1 when something could not be
    imported (listed under problems).
    """
    settings = settings_for(site)
    report = run(lambda: run_import(settings, mg_db, mg_user_dev, dry_run=dry_run))
    click.echo(
        json.dumps(report.to_json(), indent=2, ensure_ascii=False) if as_json else report.to_text()
    )
    if report.failed:
        raise SystemExit(1)


COMMANDS = [import_mediagoblin]
