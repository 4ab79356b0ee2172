"""A catalog read replica killed under reads: nothing fails, and it comes back streaming.

Runs on either runtime through the node controller: natively supervisord restarts the node,
under Compose Docker's restart policy restarts its container.
"""

from __future__ import annotations

import time

import httpx
from reviewlab_common import dns as lab_dns
from reviewlab_common.topology import Topology

from tests.conftest import deadline
from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes
from tests.integration.shop import patroni_members


def test_a_killed_catalog_replica_fails_no_read_and_rejoins_streaming(
    topology: Topology, nodes: Nodes, client: httpx.Client
) -> None:
    catalog = topology.catalog
    replica = next(m["name"] for m in patroni_members(catalog) if m["role"] != "leader")
    before = nodes.kill(replica)
    statuses = []
    limit = time.monotonic() + deadline(5)
    while time.monotonic() < limit:  # reads of the catalog while the replica is gone
        statuses.append(client.get("/api/products/7").status_code)
        time.sleep(0.05)
    assert statuses and set(statuses) == {200}, statuses

    def streaming_again() -> bool:
        members = {m["name"]: m for m in patroni_members(catalog)}
        member = members.get(replica, {})
        return bool(
            nodes.restarted_since(replica, before)
            and member.get("state") == "streaming"
            and member.get("lag") == 0
        )

    eventually(streaming_again, within=90, every=1.0, what=f"{replica} streaming again")
    nodes.wait_ready(replica)


def test_a_stopped_replica_leaves_the_read_rotation_and_is_probed_back(
    topology: Topology, nodes: Nodes, client: httpx.Client
) -> None:
    catalog = topology.catalog
    replicas = [m["name"] for m in patroni_members(catalog) if m["role"] != "leader"]
    victim = next(
        (m["name"] for m in patroni_members(catalog) if m["role"] == "replica"), replicas[0]
    )

    def catalog_reader(path: str = "/api/products/7") -> str:
        reply = client.get(path)
        assert reply.status_code == 200, reply.text
        return reply.headers["x-read-node"].split(",")[0].strip()

    address = topology.nodes[victim].address

    def replicas_record() -> list[str]:
        try:
            # Signed: the internal view answers the machine even outside a Compose lab.
            return lab_dns.lookup(topology, f"replicas.{catalog.name}", timeout=2.0, signed=True)
        except lab_dns.DnsError:
            return []

    # A replica an earlier test restarted is listed again about a second after it streams.
    eventually(
        lambda: address in replicas_record(),
        within=30,
        what=f"replicas.{catalog.name} listing {victim} before the stop",
    )
    with nodes.stopped(victim):
        # The DNS node's watch drops it (Patroni alone would keep it until ttl).
        eventually(
            lambda: address not in replicas_record(),
            within=5,
            what=f"replicas.{catalog.name} without {victim}",
        )
        statuses: list[str] = []
        limit = time.monotonic() + deadline(3)
        while time.monotonic() < limit:
            statuses.append(catalog_reader())
        # A read the stopped member failed was served again elsewhere: none names it.
        assert statuses.count(victim) == 0, statuses
        assert len(statuses) > 10, statuses

    # Back and streaming: in the DNS again, and a probe lets it serve reads again, with no
    # restart of the web tier.
    eventually(
        lambda: address in replicas_record(),
        within=30,
        what=f"replicas.{catalog.name} with {victim} again",
    )
    eventually(
        lambda: victim in {catalog_reader() for _ in range(12)},
        within=30,
        what=f"{victim} serving catalog reads again",
    )
