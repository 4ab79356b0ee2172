"""Per-request telemetry as pure ASGI middleware: request id, trace id, access log, metrics,
X-Served-By.

Starlette's `@app.middleware("http")` (BaseHTTPMiddleware) runs every request through an
extra task and memory streams; at a few thousand requests per second that wrapper alone cost
more than the route. This middleware only wraps `send`, so a request costs a few dict
lookups here. Access lines are kept in memory and written in one batch a moment later, so the
event loop never waits on the log for a request.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import sys
import time
from datetime import UTC, datetime
from typing import TextIO

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from reviewlab_common import topology as lab_topology
from reviewlab_common import tracing
from reviewlab_common.logs import IsoFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("web_requests_total", "Requests served", ["method", "route", "status"])
LATENCY = Histogram("web_request_seconds", "Request latency", ["method", "route"])
REQUEST_ID = "x-request-id"
# A caller's own request id is kept if it looks like one (a proxy's, a client's trace id).
_SANE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
# Methods named as such in the metrics; anything else (a fuzzer's invention) counts as OTHER.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
# Requests that start no trace: probes and scrapes, asked every few seconds by the lab itself.
UNTRACED_PATHS = "/healthz$,/readyz$,/metrics$"
# Buffered access lines go out this often, or sooner once this many are waiting.
FLUSH_AFTER_S = 0.2
FLUSH_LINES = 512


def iso_now() -> str:
    """The current time as ISO 8601 in UTC with milliseconds, as every lab log line shows it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure_logging() -> None:
    """Every line the web server logs (uvicorn's own included) starts with an ISO timestamp."""
    formatter = IsoFormatter()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    root.setLevel(logging.INFO)
    # One line per etcd watch or S3 call would drown the access lines.
    for chatty in ("httpx", "httpcore", "botocore", "boto3"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    for name in ("", "uvicorn", "uvicorn.error"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)


class AccessLog:
    """One line per request, batched: written at most FLUSH_AFTER_S after the request ended."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._scheduled = False

    def add(self, line: str) -> None:
        self._lines.append(line)
        if len(self._lines) >= FLUSH_LINES:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self.flush)
            except RuntimeError:  # no loop (a test calling the app synchronously)
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        stream = self._stream or sys.stderr
        stream.write(text)
        stream.flush()


# A new request id: this process's random prefix and a counter (unique, and no syscall).
_PREFIX = os.urandom(4).hex()
_SEQUENCE = itertools.count(1)


def _request_id(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _SANE_ID.match(value):
            return bytes(value)
    return f"{_PREFIX}{next(_SEQUENCE):08x}".encode()


class Telemetry:
    """ASGI middleware around the whole API: every response names its server and request id."""

    def __init__(self, app: ASGIApp, log: AccessLog | None = None) -> None:
        self.app = app
        self.log = log or AccessLog()
        self._node = b""
        self._metrics: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        state = scope["app"].state  # filled by the app's lifespan: the node and its fault switch
        if not self._node:
            self._node = state.backends.node.name.encode()
        pause = state.delay.delay_seconds()
        if pause and path.startswith("/api/"):
            await asyncio.sleep(pause)  # a lab-only fault: `reviewlab fault delay NODE MS`
        request_id = _request_id(scope)
        # The request's span is current here (trace_requests wraps the whole app).
        trace_id = tracing.current_trace_id()
        status = 500  # what the client gets if the app fails before it answers

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-served-by", self._node))
                headers.append((b"x-request-id", request_id))
                if trace_id:
                    headers.append((b"x-trace-id", trace_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            self._observe(scope, status, elapsed)
            client = scope.get("client")
            self.log.add(
                f"{iso_now()} access {request_id.decode()} {client[0] if client else '-'} "
                f"{scope['method']} {path} {status} {elapsed * 1000:.1f}ms"
            )

    def _observe(self, scope: Scope, status: int, elapsed: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        key = (method, route, status)
        children = self._metrics.get(key)
        if children is None:
            children = (
                REQUESTS.labels(method, route, str(status)),
                LATENCY.labels(method, route),
            )
            self._metrics[key] = children
        children[0].inc()
        children[1].observe(elapsed)


def trace_requests(app: FastAPI) -> None:
    """A server span per request (OpenTelemetry's ASGI middleware, outside every other), when
    the topology turns tracing on; the span continues the caller's W3C traceparent."""
    try:
        topology = lab_topology.current()
    except lab_topology.TopologyError:
        return
    if not tracing.enabled(topology):
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # No spans for each ASGI message sent or received: a request is one span.
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=UNTRACED_PATHS, exclude_spans=["receive", "send"]
    )
