"""What a fuzzer and a scraper meet at the vIP: many connections, a slow body, a huge header,
a huge page. Each gets an answer or a clear 4xx; none ties up a web server."""

from __future__ import annotations

import asyncio
import collections
import random
import socket
import subprocess
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from reviewlab_common.topology import Topology
from reviewlab_lab import install

from tests.integration.conftest import eventually
from tests.integration.shop import KIM, assert_error, auth

CONCURRENT = 1000


async def _one_request(host: str, port: int, seen: collections.Counter[str]) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except OSError as exc:
        seen[f"connect: {exc}"] += 1
        return
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: www\r\nConnection: close\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 30)
        seen[status.split(b" ")[1].decode() if status else "closed"] += 1
    except (OSError, TimeoutError) as exc:
        seen[f"read: {type(exc).__name__}"] += 1
    finally:
        writer.close()


def test_a_thousand_concurrent_connections_are_all_answered(topology: Topology) -> None:
    www = topology.nodes[topology.services["www"]]
    seen: collections.Counter[str] = collections.Counter()

    async def all_at_once() -> None:
        await asyncio.gather(
            *(_one_request(www.host_address, www.port, seen) for _ in range(CONCURRENT))
        )

    asyncio.run(all_at_once())
    assert seen == {"200": CONCURRENT}, dict(seen)


def web_logs_mention(text: str, topology: Topology) -> bool:
    reviewlab = str(install.current().bin / "reviewlab")
    for web in topology.of_kind("web"):
        shown = subprocess.run(
            [reviewlab, "logs", web.name, "-n", "400"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if text in shown.stdout + shown.stderr:
            return True
    return False


def test_a_body_sent_at_one_byte_a_second_reaches_no_web_server_until_it_is_whole(
    topology: Topology,
) -> None:
    www = topology.nodes[topology.services["www"]]
    path = f"/api/reviews/{random.randrange(10**17, 10**18)}/helpful"
    body = b"x" * 60
    sent: list[int] = []
    checked = threading.Event()

    def trickle(conn: socket.socket) -> None:
        # One byte a second (never a pause as long as client_body_timeout) until checked.
        while len(sent) < len(body) - 1 and not (checked.is_set() and len(sent) >= 3):
            conn.sendall(body[len(sent) : len(sent) + 1])
            sent.append(1)
            checked.wait(1)

    with socket.create_connection((www.host_address, www.port), timeout=30) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: www\r\nContent-Length: {len(body)}\r\n"
            "Content-Type: text/plain\r\nConnection: close\r\n\r\n".encode()
        )
        sender = threading.Thread(target=trickle, args=(conn,))
        sender.start()
        time.sleep(3)
        seen_early = web_logs_mention(path, topology)
        checked.set()
        sender.join()
        conn.sendall(body[len(sent) :])
        status = conn.recv(200).split(b" ")[:2]
    assert not seen_early, "a web server saw the request while its body was still arriving"
    assert len(sent) < len(body), "the body was complete before the check"
    assert status == [b"HTTP/1.1", b"401"]  # answered once whole: no token on this write
    assert eventually(lambda: web_logs_mention(path, topology), within=10, what="access line")


def test_a_10_kb_idempotency_key_is_refused_with_json_at_the_vip_and_a_web_server(
    topology: Topology, client: httpx.Client, token_for: Callable[[int], str]
) -> None:
    headers = {**auth(token_for(KIM)), "Idempotency-Key": "k" * 10_240}
    fields = {"product_id": "30", "rating": "5", "body": "too long a key"}
    at_the_vip = client.post("/api/reviews", headers=headers, data=fields)
    error = assert_error(at_the_vip, 431)
    assert error["code"] == "header_too_large" and "Idempotency-Key" in error["message"]
    web = topology.of_kind("web")[0]
    direct = httpx.post(f"{web.url}/api/reviews", headers=headers, data=fields, timeout=10)
    error = assert_error(direct, 422)
    assert "idempotency-key" in error["message"], error


@pytest.mark.parametrize("limit", ["10000", "0", "-1"])
def test_a_listing_page_is_at_most_100_reviews(client: httpx.Client, limit: str) -> None:
    reply = client.get("/api/products/30/reviews", params={"limit": limit})
    error = assert_error(reply, 422)
    assert error["message"].startswith("limit: "), error
