"""`Runtime.partition(name, peers)` means one thing on both runtimes: the node loses its
peers, both ways, and keeps running and answering its clients; `heal` gives the peers back.

A node cut from a dependency answers its readiness question at once, naming what it cannot
reach (a fault in a dependency gets a fast, clear answer): a worker without Redis is not
ready, a web server without Redis is ready and degraded, one without the catalog's primary is
not ready.
"""

from __future__ import annotations

import httpx
from reviewlab_common.topology import Node, Topology

from tests.conftest import deadline
from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes

# /readyz is due within a second whatever a dependency does; this is that bound with room for
# a busy machine. Before the checks were bounded, a node cut from Redis gave no answer in 40 s.
READY_ANSWER_S = 3.0


def ready(url: str) -> bool:
    """Does the node say it reaches every dependency, within a few seconds?"""
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False  # a readiness check waiting on a dropped link: not ready either


def readiness(url: str) -> httpx.Response:
    """The node's readiness answer; a timeout here fails the test."""
    return httpx.get(f"{url}/readyz", timeout=deadline(READY_ANSWER_S))


def test_a_partitioned_node_loses_its_peers_but_not_its_clients(
    topology: Topology, nodes: Nodes
) -> None:
    # A worker cut from Redis: it is no longer ready, and the machine still reaches it.
    victim, peer = topology.nodes["worker-2"], topology.one("redis")
    runtime = nodes.runtime
    assert not runtime.partitioned(), "a partition is already in place; `reviewlab chaos heal`"
    assert ready(victim.url), f"{victim.name} is not ready before the partition"
    runtime.partition(victim.name, [peer.name])
    try:
        assert runtime.partitioned()
        # Every question from the first one on is answered in time, and names Redis.
        for _ in range(3):
            reply = readiness(victim.url)
            assert reply.status_code == 503, reply.text
            assert "redis" in reply.json()["error"]["details"], reply.text
        alive = httpx.get(f"{victim.url}/healthz", timeout=5)
        assert alive.status_code == 200 and alive.json()["node"] == victim.name
        assert nodes.state(victim.name) == "running"
    finally:
        runtime.heal(victim.name, [peer.name])
    assert not runtime.partitioned()
    eventually(lambda: ready(victim.url), within=30, what=f"{victim.name} ready once healed")


def test_a_web_server_cut_from_redis_says_degraded_at_once(
    topology: Topology, nodes: Nodes
) -> None:
    victim, peer = topology.nodes["web-2"], topology.one("redis")
    runtime = nodes.runtime
    assert not runtime.partitioned(), "a partition is already in place; `reviewlab chaos heal`"
    # Earlier tests restart nodes: start from a web server that says it is ready.
    eventually(
        lambda: readiness(victim.url).json().get("status") == "ready",
        within=30,
        what=f"{victim.name} ready before the cut",
    )
    runtime.partition(victim.name, [peer.name])
    try:
        for _ in range(3):
            reply = readiness(victim.url)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert body["status"] == "degraded" and set(body["degraded"]) == {"redis"}, body
    finally:
        runtime.heal(victim.name, [peer.name])
    assert not runtime.partitioned()

    def ready_again() -> bool:
        reply = readiness(victim.url)
        return reply.status_code == 200 and reply.json()["status"] == "ready"

    eventually(ready_again, within=30, what=f"{victim.name} ready once healed")


def catalog_primary(topology: Topology) -> Node:
    """The catalog member whose Patroni says it is the primary."""

    def is_primary(member: Node) -> bool:
        url = f"http://{member.address}:{member.rest_port}/primary"
        return httpx.get(url, timeout=2).status_code == 200

    found = [m for m in topology.catalog.members if is_primary(m)]
    assert len(found) == 1, f"the catalog's primaries: {[m.name for m in found]}"
    return found[0]


def test_a_web_server_cut_from_the_catalog_primary_is_not_ready_at_once(
    topology: Topology, nodes: Nodes
) -> None:
    victim = topology.nodes["web-2"]
    primary = catalog_primary(topology)
    runtime = nodes.runtime
    assert not runtime.partitioned(), "a partition is already in place; `reviewlab chaos heal`"
    eventually(
        lambda: readiness(victim.url).status_code == 200,
        within=30,
        what=f"{victim.name} ready before the cut",
    )
    runtime.partition(victim.name, [primary.name])
    try:
        # Its pooled connection to the primary hangs on the dropped link: every question is
        # still answered, naming the catalog, and the one hanging check is not started again.
        waits = []
        for _ in range(3):
            reply = readiness(victim.url)
            assert reply.status_code == 503, reply.text
            problem = reply.json()["error"]["details"]["catalog"]
            waits.append(problem)
        assert all(w.startswith("no answer in ") or "unavailable" in w for w in waits), waits
    finally:
        runtime.heal(victim.name, [primary.name])
    assert not runtime.partitioned()

    def ready_again() -> bool:
        return readiness(victim.url).status_code == 200

    eventually(ready_again, within=30, what=f"{victim.name} ready once healed")
