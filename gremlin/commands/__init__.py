"""CLI commands, one module per area, imported only when their command runs (so `gremlin
status` does not pay for the web stack). Order here is the order `gremlin --help` lists."""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("site", "init"),
    "serve": ("site", "serve_command"),
    "config": ("site", "config"),
    "status": ("site", "status"),
    "adduser": ("users", "adduser"),
    "token": ("users", "token"),
    "import": ("media", "import_command"),
    "jobs": ("jobs", "jobs_command"),
    "retry": ("jobs", "retry_command"),
    "fsck": ("fsck", "fsck"),
    "upgrade": ("upgrade", "upgrade_command"),
    "revert": ("upgrade", "revert_command"),
    "import-mediagoblin": ("mediagoblin", "import_mediagoblin"),
}
