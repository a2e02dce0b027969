"""GET /api/v1/openapi.json (stub, filled in below)."""

from quart import Blueprint

bp = Blueprint("openapi", __name__)
