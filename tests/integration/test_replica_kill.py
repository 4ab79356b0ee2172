"""A catalog read replica killed under reads: nothing fails, and it comes back streaming.

Runs on either runtime through the node controller: natively supervisord restarts the node,
under Compose Docker's restart policy restarts its container.
"""

from __future__ import annotations

import time

import httpx
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
