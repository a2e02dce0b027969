"""CLI commands, one module per area. `register` adds them all to the group."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    from . import fsck, jobs, media, mediagoblin, site, upgrade, users

    for module in (site, users, fsck, media, jobs, upgrade, mediagoblin):
        for command in module.COMMANDS:
            group.add_command(command)
