"""import."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..cli import run, settings_for
from ..errors import GremlinError
from ..media.importer import Imported, Outcome, Refused, run_import


class ImportRefusals(GremlinError):
    def __init__(self, refused: int, total: int) -> None:
        super().__init__(
            f"{refused} of {total} files were not imported (reasons above)",
            hint="Fix or remove those files and import them again; the others are in.",
        )


@click.command("import")
@click.argument("site", type=click.Path(file_okay=False))
@click.argument("paths", nargs=-1, required=True)
@click.option("--user", "user", required=True, help="The user who will own the media.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, path}.")
def import_command(site: str, paths: tuple[str, ...], user: str, as_json: bool) -> None:
    """Import files (directories recursed) into SITE as media of --user.

    Prints `<media-id> <path>` per imported file; refused files are reported on standard error
    and make the exit code 1 after the rest are imported. Works with or without a running
    server.
    """
    settings = settings_for(site)
    console = Console(stderr=True, highlight=False)
    progress = Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = progress.add_task("import", total=None)
    imported: list[dict[str, Any]] = []

    def report(outcome: Outcome, done: int, total: int) -> None:
        progress.update(task, completed=done, total=total)
        match outcome:
            case Imported(path=path, media_id=media_id):
                imported.append({"id": media_id, "path": path})
                if not as_json:
                    click.echo(f"{media_id} {path}")
            case Refused(path=path, reason=reason):
                console.print(f"refused {path}: {reason}", markup=False, soft_wrap=True)

    with progress:
        outcomes = run(run_import, settings, user, paths, report)
    if as_json:
        click.echo(json.dumps(imported, indent=2))
    refused = sum(isinstance(o, Refused) for o in outcomes)
    if refused:
        raise ImportRefusals(refused, len(outcomes))


COMMANDS = [import_command]
