"""import."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import click

from ..cli import run, settings_for
from ..errors import GremlinError
from ..media.importer import Imported, Outcome, Refused, run_import, shown_path


class ImportRefusals(GremlinError):
    def __init__(self, refused: int, total: int) -> None:
        super().__init__(
            f"{refused} of {total} files were not imported (reasons above)",
            hint="Fix or remove those files and import them again; the others are in.",
        )


class _ProgressBar:
    """A rich progress bar on a terminal's stderr (rich is imported only then: every `gremlin`
    command imports this module)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = Console(stderr=True, highlight=False)
        self.progress = Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task("import", total=None)

    def update(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def print(self, line: str) -> None:
        self.console.print(line, markup=False, soft_wrap=True)

    def __enter__(self) -> _ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


@click.command("import")
@click.argument("site", type=click.Path(file_okay=False))
@click.argument("paths", nargs=-1, required=True)
@click.option("--user", "user", required=True, help="The user who will own the media.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, path}.")
def import_command(site: str, paths: tuple[str, ...], user: str, as_json: bool) -> None:
    """Import files (directories recursed) into SITE as media of --user.

    Prints `<media-id> <path>` per imported file, the path on one line with backslash and
    unprintable characters escaped like `ls -b` (`\\n`, `\\t`, `\\xNN`; --json gives them
    exactly); refused files are reported on standard error and make the exit code 1 after the
    rest are imported. Symbolic links named here are followed; inside directories they are not
    (refused). Works with or without a running server.
    """
    settings = settings_for(site)
    imported: list[dict[str, Any]] = []
    bar = _ProgressBar() if sys.stderr.isatty() else None

    def report(outcome: Outcome, done: int, total: int) -> None:
        if bar is not None:
            bar.update(done, total)
        match outcome:
            case Imported(path=path, media_id=media_id):
                imported.append({"id": media_id, "path": path})
                if not as_json:
                    click.echo(f"{media_id} {shown_path(path)}")
            case Refused(path=path, reason=reason):
                line = f"refused {shown_path(path)}: {reason}"
                if bar is not None:
                    bar.print(line)
                else:
                    click.echo(line, err=True)

    with bar or contextlib.nullcontext():
        outcomes = run(run_import, settings, user, paths, report)
    if as_json:
        click.echo(json.dumps(imported, indent=2))
    refused = sum(isinstance(o, Refused) for o in outcomes)
    if refused:
        raise ImportRefusals(refused, len(outcomes))


COMMANDS = [import_command]
