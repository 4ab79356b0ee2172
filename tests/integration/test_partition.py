"""`Runtime.partition(name, peers)` means one thing on both runtimes: the node loses its
peers, both ways, and keeps running and answering its clients; `heal` gives the peers back."""

from __future__ import annotations

import httpx
from reviewlab_common.topology import Topology

from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes


def ready(url: str) -> bool:
    """Does the node say it reaches every dependency, within a few seconds?"""
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False  # a readiness check waiting on a dropped link: not ready either


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
        eventually(
            lambda: not ready(victim.url),
            within=30,
            what=f"{victim.name} unready without {peer.name}",
        )
        alive = httpx.get(f"{victim.url}/healthz", timeout=5)
        assert alive.status_code == 200 and alive.json()["node"] == victim.name
        assert nodes.state(victim.name) == "running"
    finally:
        runtime.heal(victim.name, [peer.name])
    assert not runtime.partitioned()
    eventually(lambda: ready(victim.url), within=30, what=f"{victim.name} ready once healed")
