"""The one error base. Each error builds its message from its fields and may carry a hint.

Only the CLI prints errors (``Error: ...`` / ``Try: ...``); the web layer maps them to
HTTP statuses through ``status`` and ``code``.
"""

from __future__ import annotations


class GremlinError(Exception):
    """A handled error: a one-line message a person can act on, and maybe a hint."""

    status: int = 500  # HTTP status when this reaches the web layer
    code: str = "internal"  # stable machine-readable code for the JSON error body

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class SettingsError(GremlinError):
    code = "bad_setting"

    def __init__(self, name: str, value: object, source: str, why: str) -> None:
        super().__init__(
            f"setting {name}={value!r} from {source}: {why}",
            hint="See docs/settings.md for every setting and its allowed values.",
        )
        self.name = name
        self.source = source


class SiteError(GremlinError):
    """The site directory or its database is not usable."""

    code = "bad_site"


class SchemaTooNew(SiteError):
    def __init__(self, path: str, found: int, known: int) -> None:
        super().__init__(
            f"{path} has schema version {found}, newer than this contentgremlin knows ({known})",
            hint="Run the newer contentgremlin, or `gremlin revert SITE` to go back.",
        )
        self.found = found
        self.known = known


class AlreadyRunning(GremlinError):
    code = "already_running"
    status = 409

    def __init__(self, pid: int, since: str, bind: str | None) -> None:
        where = f" on {bind}" if bind else ""
        super().__init__(
            f"a server is already running for this site: pid {pid}{where}, since {since}",
            hint=f"Stop it first (kill {pid}), or use `gremlin upgrade SITE` to replace it.",
        )
        self.pid = pid


class NotFound(GremlinError):
    status = 404
    code = "not_found"


class BadRequest(GremlinError):
    status = 400
    code = "bad_request"


class Unauthorized(GremlinError):
    status = 401
    code = "unauthorized"


class Forbidden(GremlinError):
    status = 403
    code = "forbidden"


class Conflict(GremlinError):
    status = 409
    code = "conflict"


class TooLarge(GremlinError):
    status = 413
    code = "too_large"


class Unsupported(GremlinError):
    status = 415
    code = "unsupported_media"


class Unprocessable(GremlinError):
    status = 422
    code = "unprocessable"


class Maintenance(GremlinError):
    status = 503
    code = "maintenance"

    def __init__(self, message: str = "the site is being upgraded; writes are paused") -> None:
        super().__init__(message, hint="Try again in a few seconds.")


class DiskFull(GremlinError):
    status = 507
    code = "disk_full"

    UPLOAD_HINT = "Free some disk space; nothing was lost, the upload can be retried."
    GENERAL_HINT = "Free some disk space, then try again; nothing was changed."

    def __init__(self, path: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"no space left on the device holding {path}", hint=hint or self.GENERAL_HINT
        )
        self.path = path
