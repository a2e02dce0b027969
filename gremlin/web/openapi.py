"""GET /api/v1/openapi.json: the OpenAPI 3.1 document of the JSON API, tus and files.

Kept beside the code it describes; tests/web/test_openapi.py validates real responses against
these schemas (JSON Schema 2020-12) and checks that every /api/v1 route is documented.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint

from .. import __version__

bp = Blueprint("openapi", __name__)

_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_NUM = {"type": ["number", "null"]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "hint": {"type": "string"},
                },
                "required": ["code", "message"],
                "additionalProperties": False,
            }
        }
    ),
    "Health": _object(
        {
            "status": {"type": "string"},
            "mode": {"enum": ["normal", "maintenance"]},
            "version": {"type": "string"},
            "schema_version": {"type": "integer"},
            "pid": {"type": "integer"},
        }
    ),
    "Damaged": _object(
        {
            "status": {"enum": ["damaged"]},
            "mode": {"enum": ["normal", "maintenance"]},
            "version": {"type": "string"},
            "schema_version": {"type": "integer"},
            "pid": {"type": "integer"},
            "error": {"type": "string"},
        }
    ),
    "MediaCreated": _object(
        {
            "id": {"type": "string"},
            "state": {"enum": ["processing", "ready", "failed"]},
            "url": {"type": "string", "description": "The media's page."},
        }
    ),
    "File": _object(
        {
            "role": {"type": "string", "description": "original, thumb, medium, poster ..."},
            "url": {"type": "string"},
            "mime": {"type": "string"},
            "size": {"type": "integer"},
            "sha256": {"type": "string"},
            "width": _NULLABLE_INT,
            "height": _NULLABLE_INT,
            "duration": _NULLABLE_NUM,
        }
    ),
    "Job": _object(
        {
            "step": {"type": "string"},
            "state": {"enum": ["queued", "running", "done", "failed"]},
            "attempt": {"type": "integer"},
            "max_attempts": {"type": "integer"},
            "progress": {"type": "number"},
            "reason": _NULLABLE_STR,
        }
    ),
    "Media": _object(
        {
            "id": {"type": "string"},
            "kind": {"enum": ["image", "video", "audio"]},
            "state": {"enum": ["processing", "ready", "failed"]},
            "title": {"type": "string"},
            "owner": {"type": "string"},
            "visibility": {"enum": ["public", "unlisted", "private"]},
            "created": {"type": "string", "description": "UTC, ISO 8601"},
            "files": {"type": "array", "items": _ref("File")},
            "jobs": {
                "type": "array",
                "items": _ref("Job"),
                "description": "Empty unless you own the media or are an admin.",
            },
            "reason": {
                "type": ["string", "null"],
                "description": "Why processing failed (owner and admins only).",
            },
        }
    ),
    "MediaList": _object(
        {
            "items": {"type": "array", "items": _ref("Media")},
            "next": {"type": ["string", "null"], "description": "Pass as `cursor`."},
        }
    ),
    "MediaEdit": {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "description": {"type": "string"},
            "tags": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "visibility": {"enum": ["public", "unlisted", "private"]},
            "license": {"type": "string"},
        },
        "additionalProperties": False,
        "minProperties": 1,
    },
}


def _json(schema: str, description: str, **headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }
    if headers:
        response["headers"] = {
            h: {"schema": {"type": "string"}, "description": d} for h, d in headers.items()
        }
    return response


def _empty(description: str, **headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if headers:
        response["headers"] = {
            h: {"schema": {"type": "string"}, "description": d} for h, d in headers.items()
        }
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "Bad request",
        401: "Not signed in, or a bad token",
        403: "Not allowed (or a missing CSRF token with a session cookie)",
        404: "No such thing that you may see",
        409: "Conflict (a wrong Upload-Offset, nothing to retry, processing running)",
        412: "Wrong Tus-Resumable version",
        413: "Larger than max_upload_bytes, or over the quota",
        415: "Unsupported content (the hint lists what is supported)",
        422: "Empty file",
        503: "Maintenance (an upgrade): retry after Retry-After seconds",
        507: "The disk is full",
    }
    return {str(s): _json("Error", texts[s]) for s in statuses}


_MEDIA_ID = {"name": "media_id", "in": "path", "required": True, "schema": {"type": "string"}}
_UPLOAD_ID = {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TUS = {"name": "Tus-Resumable", "in": "header", "required": True, "schema": {"const": "1.0.0"}}
_WRITE_ERRORS = (400, 401, 403, 404, 503)

PATHS: dict[str, Any] = {
    "/healthz": {
        "get": {
            "summary": "Liveness and mode",
            "responses": {
                "200": _json("Health", "OK"),
                "503": _json("Damaged", "A query met a damaged database (status 'damaged')"),
            },
        }
    },
    "/api/v1/media": {
        "get": {
            "summary": "List media you may see, newest first",
            "parameters": [
                {"name": n, "in": "query", "schema": {"type": "string"}}
                for n in ("owner", "kind", "state", "tag", "cursor")
            ]
            + [
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                }
            ],
            "responses": {"200": _json("MediaList", "A page"), **_errors(400, 401)},
        },
        "post": {
            "summary": "Upload one file (multipart/form-data), committed before the 201",
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "file": {"type": "string", "format": "binary"},
                                "title": {"type": "string"},
                                "description": {"type": "string"},
                                "tags": {"type": "string", "description": "comma-separated"},
                                "visibility": {"enum": ["public", "unlisted", "private"]},
                                "license": {"type": "string"},
                            },
                            "required": ["file"],
                        }
                    }
                },
            },
            "responses": {
                "201": _json(
                    "MediaCreated", "Stored and committed", Location="The media's API URL"
                ),
                "303": _empty("A browser form (session, Accept: text/html): see the media page"),
                **_errors(400, 401, 403, 413, 415, 422, 503, 507),
            },
        },
    },
    "/api/v1/media/{media_id}": {
        "parameters": [_MEDIA_ID],
        "get": {
            "summary": "One media",
            "responses": {"200": _json("Media", "The media"), **_errors(401, 404)},
        },
        "patch": {
            "summary": "Edit title, description, tags, visibility, license (owner or admin)",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("MediaEdit")}},
            },
            "responses": {"200": _json("Media", "The edited media"), **_errors(*_WRITE_ERRORS)},
        },
        "delete": {
            "summary": "Delete the media, its rows and its files (owner or admin)",
            "responses": {"204": _empty("Deleted"), **_errors(*_WRITE_ERRORS, 409)},
        },
    },
    "/api/v1/media/{media_id}/retry": {
        "parameters": [_MEDIA_ID],
        "post": {
            "summary": "Requeue the failed processing jobs (owner or admin)",
            "responses": {
                "200": _json("Media", "Processing again"),
                **_errors(*_WRITE_ERRORS, 409),
            },
        },
    },
    "/api/v1/uploads": {
        "options": {
            "summary": "tus capabilities",
            "responses": {
                "204": _empty(
                    "tus 1.0.0",
                    **{
                        "Tus-Version": "1.0.0",
                        "Tus-Extension": "creation,termination",
                        "Tus-Max-Size": "max_upload_bytes",
                    },
                )
            },
        },
        "post": {
            "summary": "tus creation: Upload-Length, Upload-Metadata (filename, title, "
            "description, tags, visibility, license; base64)",
            "parameters": [_TUS],
            "responses": {
                "201": _empty("Created", Location="The upload's URL"),
                **_errors(400, 401, 412, 413, 422, 503),
            },
        },
    },
    "/api/v1/uploads/{upload_id}": {
        "parameters": [_UPLOAD_ID],
        "options": {"summary": "tus capabilities", "responses": {"204": _empty("tus 1.0.0")}},
        "head": {
            "summary": "The upload's offset (Cache-Control: no-store)",
            "parameters": [_TUS],
            "responses": {
                "200": _empty(
                    "Progress",
                    **{
                        "Upload-Offset": "Bytes stored",
                        "Upload-Length": "Total",
                        "Gremlin-Media-Id": "Once committed",
                    },
                ),
                **_errors(401, 404, 412),
            },
        },
        "patch": {
            "summary": "Append bytes (application/offset+octet-stream) at Upload-Offset; the "
            "final PATCH commits and answers Gremlin-Media-Id",
            "parameters": [_TUS],
            "responses": {
                "204": _empty(
                    "Stored and fsynced",
                    **{"Upload-Offset": "New offset", "Gremlin-Media-Id": "On the final PATCH"},
                ),
                **_errors(400, 401, 403, 404, 409, 412, 413, 415, 422, 503, 507),
            },
        },
        "delete": {
            "summary": "tus termination",
            "parameters": [_TUS],
            "responses": {"204": _empty("Removed"), **_errors(401, 404, 412)},
        },
    },
    "/api/v1/openapi.json": {
        "get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}
    },
    "/files/{media_id}/{role}": {
        "parameters": [
            _MEDIA_ID,
            {"name": "role", "in": "path", "required": True, "schema": {"type": "string"}},
        ],
        "get": {
            "summary": "A stored file: Range (also bytes=-N), ETag, If-None-Match, long caching",
            "responses": {
                "200": {"description": "The file"},
                "206": {"description": "A range"},
                "304": {"description": "Not modified"},
                "416": {"description": "Range not satisfiable"},
                **_errors(401, 404),
            },
        },
    },
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "contentgremlin",
            "version": __version__,
            "description": "Authenticate with `Authorization: Bearer TOKEN` (`gremlin token "
            "SITE NAME`) or the browser session (then unsafe requests need X-CSRF-Token).",
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}, {}],
    }


@bp.get("/api/v1/openapi.json")
async def openapi_json() -> Any:
    return document()
