"""Readiness: one probe per node kind, polled with a deadline, never a fixed sleep."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx
import redis
from reviewlab_common import dns as lab_dns
from reviewlab_common import queue
from reviewlab_common.topology import Node, Topology

# Slow machines scale every deadline by one factor (REVIEWLAB_SLOW=2 doubles them).
BASE_DEADLINE_S = {
    "dns": 30,
    "etcd": 30,
    "postgres": 180,
    "redis": 30,
    "minio": 60,
    "lb": 30,
    "edge": 30,
    "web": 90,
    "worker": 90,
}


@dataclass(frozen=True)
class Probe:
    ready: bool
    detail: str


def _http(url: str, timeout: float = 1.5) -> Probe:
    try:
        reply = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return Probe(False, f"{url}: {type(exc).__name__}")
    body = reply.text.strip().replace("\n", " ")[:160]
    return Probe(reply.status_code == 200, f"{url}: HTTP {reply.status_code} {body}")


def _tcp(node: Node) -> Probe:
    try:
        with socket.create_connection((node.address, node.port), timeout=1.0):
            return Probe(True, f"{node.endpoint} accepts connections")
    except OSError as exc:
        return Probe(False, f"{node.endpoint}: {exc}")


def probe(topology: Topology, node: Node) -> Probe:
    """Is this node doing its job right now?"""
    match node.kind:
        case "dns":
            try:
                found = lab_dns.lookup(topology, "ns", timeout=1.0)
            except lab_dns.DnsError as exc:
                return Probe(False, str(exc))
            return Probe(bool(found), f"ns.{topology.lab.domain} -> {found}")
        case "etcd":
            return _http(f"{node.url}/health")
        case "postgres":
            # Patroni's /readiness: Postgres is up and, on a replica, streaming without lag.
            return _http(f"http://{node.address}:{node.rest_port}/readiness")
        case "redis":
            try:
                client = queue.connect(topology, "admin", timeout=1.0)
                ok = bool(client.ping())
                loading = client.info("persistence").get("loading", 0)
                return Probe(ok and not loading, "PONG" if ok else "no PONG")
            except redis.RedisError as exc:
                return Probe(False, str(exc))
        case "minio":
            return _http(f"{node.url}/minio/health/ready")
        case "lb":
            return _tcp(node)
        case "edge":
            return _http(f"{node.url}/healthz")
        case "web" | "worker":
            return _http(f"{node.url}/readyz")
    return Probe(False, f"no probe for kind {node.kind}")


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
            elif elapsed > BASE_DEADLINE_S[node.kind] * slow_factor:
                return [(n, last[n.name]) for n in pending]
            else:
                still.append(node)
        pending = still
        if pending:
            time.sleep(0.5)
    return []
