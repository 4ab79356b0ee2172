"""What the web servers say during a move: which map they hold, how many requests they served."""

from __future__ import annotations

import re
import time

import httpx
from reviewlab_common import httpclient
from reviewlab_common.topology import Topology

SERVED = re.compile(r"^web_requests_total\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


def map_revisions(topology: Topology, http: httpx.Client) -> dict[str, int | None]:
    """Each web server's shard map revision (None: no answer, or a server that does not say)."""
    found: dict[str, int | None] = {}
    for node in topology.of_kind("web"):
        try:
            reply = http.get(f"{node.url}/healthz", timeout=0.3)
            value = reply.json().get("shard_map_revision")
            found[node.name] = int(value) if value is not None else None
        except (httpx.HTTPError, ValueError):
            found[node.name] = None
    return found


def wait_for_map(topology: Topology, revision: int, within: float) -> list[str]:
    """Wait until every answering web server holds a map at REVISION or newer; the names of
    those that still did not when WITHIN ran out (a stopped server serves nothing)."""
    limit = time.monotonic() + within
    http = httpclient.shared()  # a new client per round costs more CPU than the questions
    while True:
        behind = [
            name
            for name, held in map_revisions(topology, http).items()
            if held is not None and held < revision
        ]
        if not behind or time.monotonic() >= limit:
            return behind
        time.sleep(0.005)


def requests_served(topology: Topology) -> int:
    """Requests every web server answered since it started (its /metrics counter)."""
    total = 0.0
    for node in topology.of_kind("web"):
        try:
            text = httpclient.get(f"{node.url}/metrics", timeout=0.5).text
        except httpx.HTTPError:
            continue
        total += sum(float(v) for v in SERVED.findall(text))
    return int(total)
