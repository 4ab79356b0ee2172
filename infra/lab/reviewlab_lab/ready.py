"""Readiness: each kind's check from the kind registry, polled with a deadline, never a sleep."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx
import redis
from reviewlab_common import dns as lab_dns
from reviewlab_common import httpclient, queue
from reviewlab_common.topology import Node, Topology

from reviewlab_lab import kinds


@dataclass(frozen=True)
class Probe:
    ready: bool
    detail: str
    # Ready, with a dependency its requests can do without down (a web server without Redis).
    degraded: bool = False


def _http(url: str, timeout: float = 1.5) -> Probe:
    try:
        reply = httpclient.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return Probe(False, f"{url}: {type(exc).__name__}")
    body = reply.text.strip().replace("\n", " ")[:160]
    degraded = reply.status_code == 200 and '"status":"degraded"' in reply.text.replace(" ", "")
    return Probe(reply.status_code == 200, f"{url}: HTTP {reply.status_code} {body}", degraded)


def probe(topology: Topology, node: Node) -> Probe:
    """Is this node doing its job right now? (kinds.KindSpec.ready_check; Compose's health
    check runs the same check inside the container.)"""
    spec = kinds.of(node)
    match spec.ready_check:
        case "http":
            assert spec.ready_url is not None
            return _http(spec.ready_url(node))
        case "dns":
            try:
                found = lab_dns.lookup(topology, "ns", timeout=1.0)
            except lab_dns.DnsError as exc:
                return Probe(False, str(exc))
            return Probe(bool(found), f"ns.{topology.lab.domain} -> {found}")
        case "redis":
            try:
                client = queue.connect(topology, "admin", timeout=1.0)
                ok = bool(client.ping())
                loading = client.info("persistence").get("loading", 0)
                return Probe(ok and not loading, "PONG" if ok else "no PONG")
            except redis.RedisError as exc:
                return Probe(False, str(exc))
    return Probe(False, f"no readiness check {spec.ready_check!r} for kind {node.kind}")


def wait_ready(
    topology: Topology,
    nodes: Iterable[Node],
    *,
    slow_factor: float = 1.0,
    report: Callable[[Node, Probe, float], None],
) -> list[tuple[Node, Probe]]:
    """Poll the nodes until each is ready or its deadline passes; return the failures."""
    start = time.monotonic()
    pending = list(nodes)
    last: dict[str, Probe] = {}
    while pending:
        still = []
        for node in pending:
            result = probe(topology, node)
            last[node.name] = result
            elapsed = time.monotonic() - start
            if result.ready:
                report(node, result, elapsed)
            elif elapsed > kinds.of(node).ready_deadline_s * slow_factor:
                return [(n, last[n.name]) for n in pending]
            else:
                still.append(node)
        pending = still
        if pending:
            time.sleep(0.5)
    return []
