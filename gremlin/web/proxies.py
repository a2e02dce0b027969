"""Behind a reverse proxy: the client's address and scheme from X-Forwarded-For/-Proto, believed
only when the TCP peer is one of `trusted_proxies`.

Behind nginx every connection comes from nginx, so without this the sign-in throttle (per
client address) would put every visitor in one bucket, and the site could not know that a
request came over https (Secure cookies, absolute links). One ASGI wrapper inside the app
rewrites the scope's `client` and `scheme`; everything that asks Quart (`request.remote_addr`,
`request.scheme`) sees the result. The server's own connection bookkeeping
(gremlin.web.server) runs outside it and keeps the real peer.

The client is the rightmost X-Forwarded-For entry that is not a trusted proxy: each proxy
appends the address it was connected from, so entries to the left of that one were written
by the client and may be anything. X-Forwarded-Proto is taken from the nearest proxy (its last
value), and only when it says http or https.
"""

from __future__ import annotations

import ipaddress
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> Address | None:
    """An X-Forwarded-For entry or a peer's host: '1.2.3.4', '1.2.3.4:80', '[::1]:80', '::1'."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: Address | None, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)


def forwarded_client(forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str | None:
    """The rightmost entry that is not a trusted proxy (all trusted: the leftmost), or None
    when there is no usable entry. An entry that is not an address stops the walk: the
    entries left of it cannot be told apart from the client's own."""
    entries = [part.strip() for value in forwarded_for for part in value.split(",")]
    entries = [entry for entry in entries if entry]
    chosen: Address | None = None
    for entry in reversed(entries):
        address = parse_address(entry)
        if address is None:
            break
        chosen = address
        if not is_trusted(address, trusted):
            break
    return None if chosen is None else str(chosen)


def forwarded_scheme(forwarded_proto: Sequence[str]) -> str | None:
    values = [part.strip().lower() for value in forwarded_proto for part in value.split(",")]
    last = values[-1] if values else ""
    return last if last in {"http", "https"} else None


def forwarded_scope(scope: HTTPScope, trusted: Sequence[Network]) -> HTTPScope:
    """A trusted proxy's request: the scope with the client and scheme it forwarded."""
    headers: dict[bytes, list[str]] = {}
    for name, value in scope["headers"]:
        headers.setdefault(name.lower(), []).append(value.decode("latin-1"))
    changed = dict(scope)
    address = forwarded_client(headers.get(b"x-forwarded-for", []), trusted)
    if address is not None:
        changed["client"] = (address, 0)
    scheme = forwarded_scheme(headers.get(b"x-forwarded-proto", []))
    if scheme is not None:
        changed["scheme"] = scheme
    return typing.cast(HTTPScope, changed)


def trust_proxies(asgi_app: Any, trusted: Sequence[Network]) -> Any:
    """Wrap an ASGI app: when the peer is a trusted proxy, take the client's address and the
    scheme from its X-Forwarded-For / X-Forwarded-Proto headers; otherwise change nothing."""
    if not trusted:
        return asgi_app

    async def app(scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        if client and is_trusted(parse_address(str(client[0])), trusted):
            scope = forwarded_scope(scope, trusted)  # type: ignore[arg-type]
        await asgi_app(scope, receive, send)

    return app
