"""The OpenAPI document matches the real responses, and documents every API route."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import jsonschema
from quart_trio import QuartTrio

from gremlin.runtime import Mode, Runtime
from gremlin.web.app import create_app

from .conftest import add_user, bearer
from .helpers import jpeg_bytes, make_media, multipart


class Checker:
    """Validates a response body against the document's schema for (path, method, status)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.checked: set[tuple[str, str, str]] = set()

    def check(self, template: str, method: str, response: Any, body: Any) -> None:
        status = str(response.status_code)
        operation = self.document["paths"][template][method]
        assert status in operation["responses"], (template, method, status, "undocumented")
        content = operation["responses"][status].get("content")
        if content is not None:
            schema = content["application/json"]["schema"]
            resolver = {"components": self.document["components"], **schema}
            jsonschema.validate(body, resolver, cls=jsonschema.Draft202012Validator)
        self.checked.add((template, method, status))


async def test_responses_match_the_document(app: QuartTrio, runtime: Runtime) -> None:
    owner_id, token = await add_user(runtime.store, "alice")
    _, other = await add_user(runtime.store, "bob")
    ready = await make_media(runtime.store, runtime.site.content, owner_id)
    async with app.test_app() as test_app:
        client = test_app.test_client()
        document = await (await client.get("/api/v1/openapi.json")).get_json()
        jsonschema.Draft202012Validator.check_schema(document["components"]["schemas"]["Media"])
        checker = Checker(document)

        async def call(template: str, method: str, url: str, **kwargs: Any) -> Any:
            response = await client.open(url, method=method.upper(), **kwargs)
            body = await response.get_json(silent=True) if response.status_code != 204 else None
            checker.check(template, method, response, body)
            return body

        await call("/healthz", "get", "/healthz")
        body, ctype = multipart({"title": "t", "tags": "a,b"}, jpeg_bytes())
        posted = {"data": body, "headers": {**bearer(token), "Content-Type": ctype}}
        created = await call("/api/v1/media", "post", "/api/v1/media", **posted)
        for payload, _status in ((b"", 422), (b"text " * 50, 415)):
            body, ctype = multipart({}, payload)
            refused = {"data": body, "headers": {**bearer(token), "Content-Type": ctype}}
            await call("/api/v1/media", "post", "/api/v1/media", **refused)
        await call("/api/v1/media", "post", "/api/v1/media", data=b"")  # 401
        one = "/api/v1/media/{media_id}"
        await call(one, "get", f"/api/v1/media/{created['id']}", headers=bearer(token))
        await call(one, "get", f"/api/v1/media/{ready}")
        await call(one, "get", "/api/v1/media/nope")
        await call("/api/v1/media", "get", "/api/v1/media?limit=1")
        await call("/api/v1/media", "get", "/api/v1/media?kind=book")
        edit = {"json": {"title": "new", "tags": ["x"]}, "headers": bearer(token)}
        await call(one, "patch", f"/api/v1/media/{ready}", **edit)
        await call(
            one, "patch", f"/api/v1/media/{ready}", json={"title": "x"}, headers=bearer(other)
        )
        retry = "/api/v1/media/{media_id}/retry"
        await call(retry, "post", f"/api/v1/media/{ready}/retry", headers=bearer(token))  # 409
        await call(one, "delete", f"/api/v1/media/{ready}", headers=bearer(token))
        await call("/api/v1/uploads", "options", "/api/v1/uploads")
        tus = {"Tus-Resumable": "1.0.0", **bearer(token)}
        await call(
            "/api/v1/uploads", "post", "/api/v1/uploads", headers={**tus, "Upload-Length": "0"}
        )
        await call(
            "/api/v1/uploads", "post", "/api/v1/uploads", headers={**tus, "Upload-Length": "9"}
        )
    # Maintenance answers writes with the documented 503.
    runtime.mode = Mode.MAINTENANCE
    async with create_app(dataclasses.replace(runtime)).test_app() as test_app:
        client = test_app.test_client()
        checker.check(
            "/api/v1/media/{media_id}",
            "delete",
            response := await client.delete(
                f"/api/v1/media/{created['id']}", headers=bearer(token)
            ),
            await response.get_json(),
        )
    statuses = {s for _, _, s in checker.checked}
    assert {"200", "201", "204", "401", "403", "404", "409", "415", "422", "503"} <= statuses


async def test_every_api_route_is_documented(app: QuartTrio) -> None:
    from gremlin.web.openapi import document

    paths = document()["paths"]
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule.startswith("/files/")):
            continue
        template = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert template in paths, template
        for method in rule.methods - {"HEAD", "OPTIONS"} if rule.methods else ():
            assert method.lower() in paths[template], (template, method)
