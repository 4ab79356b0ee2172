"""Request methods as RFC 9110 asks (section 9.1 and 15.5.6).

- A method the server does not know (not one of RFC 9110's, nor PATCH): 501 Not Implemented.
- A known method the target resource does not implement (TRACE, PUT, a DELETE on a product...):
  405 with an `Allow` header that lists every method of the target (Starlette's own 405 names
  only the first matching route).
- HEAD wherever GET is: the GET route answers, without the content.
"""

from __future__ import annotations

import functools

import orjson
from fastapi import FastAPI
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Every server supports these (section 9.1); /docs, its assets and /openapi.json answer them.
ALWAYS = frozenset({"GET", "HEAD"})
OPERATIONS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")
# The methods RFC 9110 defines (section 9), PATCH (RFC 5789) and QUERY (the HTTP working
# group's safe method with a body): known, so a 405 with Allow at worst, never a 501.
KNOWN = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)


@functools.cache
def implemented(app: FastAPI) -> frozenset[str]:
    """Every method that some operation of the API answers, read from its OpenAPI document."""
    paths = app.openapi()["paths"].values()
    return ALWAYS | {m.upper() for item in paths for m in item if m in OPERATIONS}


def allowed(app: FastAPI, scope: Scope) -> list[str]:
    """The methods the target resource of SCOPE answers, for a 405's `Allow` header."""
    found = {
        method
        for method in implemented(app)
        for route in app.router.routes
        if not isinstance(route, Mount)
        and route.matches({**scope, "method": method})[0] is Match.FULL
    }
    if not found:  # a mounted static file (the docs' assets)
        found = set(ALWAYS)
    if "GET" in found:
        found.add("HEAD")
    return sorted(found)


def _not_implemented(method: str, app: FastAPI) -> bytes:
    methods = ", ".join(sorted(implemented(app)))
    message = f"this API does not know the method {method}; it answers {methods} (see /docs)"
    return orjson.dumps({"error": {"code": "method_not_implemented", "message": message}})


def _not_allowed(method: str, path: str, allow: list[str]) -> bytes:
    message = f"{method} is not allowed on {path}; use {' or '.join(allow)}"
    return orjson.dumps({"error": {"code": "http_405", "message": message}})


class MethodHygiene:
    """ASGI middleware: 405 or 501 for a method no route implements, HEAD served by GET."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope.get("method", "")
        if scope["type"] != "http" or method == "GET":
            await self.app(scope, receive, send)
            return
        api: FastAPI = scope["app"]
        if method not in implemented(api):
            headers = [(b"content-type", b"application/json")]
            if method in KNOWN:
                allow = allowed(api, scope)
                status, body = 405, _not_allowed(method, scope.get("path", "/"), allow)
                headers.append((b"allow", ", ".join(allow).encode()))
            else:
                status, body = 501, _not_implemented(method, api)
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if method != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_content(message: Message) -> None:
            # The same headers as GET (Content-Length included), no content.
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_content)
