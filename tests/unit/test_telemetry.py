"""The web server's request telemetry: request ids, access lines, the served-by header."""

from __future__ import annotations

import asyncio
import io
import re
from types import SimpleNamespace
from typing import Any

from reviewlab_web.telemetry import AccessLog, Telemetry, iso_now
from starlette.types import Message, Receive, Scope, Send


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _call(headers: list[tuple[bytes, bytes]], stream: io.StringIO) -> list[Message]:
    state = SimpleNamespace(
        backends=SimpleNamespace(node=SimpleNamespace(name="web-9")),
        delay=SimpleNamespace(delay_seconds=lambda: 0.0),
    )
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/healthz",
        "headers": headers,
        "client": ("127.0.0.10", 5000),
        "app": SimpleNamespace(state=state),
    }
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def run() -> None:
        await Telemetry(_hello, AccessLog(stream))(scope, receive, send)
        await asyncio.sleep(0.3)  # past the access log's flush delay

    asyncio.run(run())
    return sent


def test_each_response_names_its_server_and_request_and_logs_one_line() -> None:
    stream = io.StringIO()
    sent = _call([], stream)
    headers = dict(sent[0]["headers"])
    assert headers[b"x-served-by"] == b"web-9"
    request_id = headers[b"x-request-id"].decode()
    line = stream.getvalue().strip()
    assert re.fullmatch(
        rf"\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z access {request_id} 127\.0\.0\.10 "
        r"GET /healthz 204 [\d.]+ms",
        line,
    ), line


def test_a_callers_request_id_is_kept_and_a_malformed_one_replaced() -> None:
    kept = dict(_call([(b"x-request-id", b"trace-42")], io.StringIO())[0]["headers"])
    assert kept[b"x-request-id"] == b"trace-42"
    odd = dict(_call([(b"x-request-id", b"bad id\r\n")], io.StringIO())[0]["headers"])
    assert odd[b"x-request-id"] != b"bad id\r\n"


def test_two_requests_get_two_ids() -> None:
    first = dict(_call([], io.StringIO())[0]["headers"])[b"x-request-id"]
    second = dict(_call([], io.StringIO())[0]["headers"])[b"x-request-id"]
    assert first != second


def test_timestamps_are_iso_utc_with_milliseconds() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", iso_now())
