"""Provisioning's part: every shard of the topology registered, every shard's fence as the map
says (closed on the buckets it does not own), unless a move is in progress."""

from __future__ import annotations

from reviewlab_common import fence, shards
from reviewlab_common.topology import Topology

from reviewlab_lab.dbmigrate import superuser_connection
from reviewlab_lab.resharding import fencing, record

FENCE_BATCH = 128


def sync(topology: Topology) -> list[str]:
    """Register every shard, align the fences; what changed, one line each."""
    etcd = record.root(topology)
    said = []
    for cluster in topology.shards:
        if record.register(etcd, cluster.name):
            said.append(f"{cluster.name} registered in the shard set")
    if record.current(etcd) is not None:
        return [*said, "a move is in progress: fences left to it"]
    mapping, _ = record.placement(etcd)
    for cluster in topology.shards:
        with superuser_connection(topology, cluster, "reviews") as conn:
            states = fencing.fence_states(conn, range(shards.MAX_BUCKETS))
            owned = {b for b, owner in mapping.items() if owner == cluster.name}
            closing = [b for b, s in states.items() if b not in owned and s != fence.CLOSED]
            opening = [b for b, s in states.items() if b in owned and s != fence.OPEN]
            for state, buckets in ((fence.CLOSED, closing), (fence.OPEN, opening)):
                for start in range(0, len(buckets), FENCE_BATCH):
                    fencing.set_fence(conn, buckets[start : start + FENCE_BATCH], state)
            if opening:
                fencing.forget_changes(conn, opening)
            if closing or opening:
                said.append(
                    f"{cluster.name}: fence closed on {len(closing)} buckets it does not own, "
                    f"opened on {len(opening)}"
                )
    return said
