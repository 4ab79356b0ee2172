"""Everything a web server talks to: the catalog, the review shards, Redis and MinIO."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from reviewlab_common import health, queue, storage
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.db import ClusterRouter, app_router
from reviewlab_common.etcd import Etcd
from reviewlab_common.shards import ShardMap
from reviewlab_common.topology import Node, Topology

# Dependencies a request can do without: reviews and reads still work, photos wait for them.
OPTIONAL_DEPENDENCIES = frozenset({"redis", "minio"})


@dataclass(frozen=True)
class Readiness:
    """What this server cannot reach, split by whether it can serve requests without it."""

    missing: dict[str, str] = field(default_factory=dict)
    degraded: dict[str, str] = field(default_factory=dict)
    # Cluster -> read replicas its router has ejected right now.
    out_of_rotation: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Backends:
    topology: Topology
    node: Node
    secrets: lab_secrets.LabSecrets
    catalog: ClusterRouter
    shards: dict[str, ClusterRouter]
    shard_map: ShardMap
    redis: redis.Redis
    s3: Any

    @classmethod
    def connect(cls, topology: Topology, node: Node) -> Backends:
        secret = lab_secrets.load(topology)

        return cls(
            topology=topology,
            node=node,
            secrets=secret,
            # Every client from the secrets read once, not one read of lab.json each.
            catalog=app_router(topology, topology.catalog, app=node.name, secrets=secret),
            shards={
                c.name: app_router(topology, c, app=node.name, secrets=secret)
                for c in topology.shards
            },
            shard_map=ShardMap(topology, Etcd(topology, secrets=secret)),
            redis=queue.connect(topology, "web", secrets=secret),
            s3=storage.client(topology, secrets=secret),
        )

    def open(self) -> None:
        self.catalog.open()
        for shard in self.shards.values():
            shard.open()
        self.shard_map.start_watch()

    def close(self) -> None:
        self.shard_map.stop()
        self.catalog.close()
        for shard in self.shards.values():
            shard.close()

    def routers(self) -> dict[str, ClusterRouter]:
        return {"catalog": self.catalog, **self.shards}

    def readiness(self) -> Readiness:
        """Ready, degraded (an optional dependency is down) or not ready, and why."""
        found = self.problems()
        return Readiness(
            missing={k: v for k, v in found.items() if k not in OPTIONAL_DEPENDENCIES},
            degraded={k: v for k, v in found.items() if k in OPTIONAL_DEPENDENCIES},
            out_of_rotation={
                name: sorted(ejected)
                for name, router in self.routers().items()
                if (ejected := router.ejector.ejected())
            },
        )

    def problems(self) -> dict[str, str]:
        """What this server cannot reach right now (empty when ready)."""
        found = health.unreachable(
            clusters={"catalog": self.catalog, **self.shards}, queue_client=self.redis, s3=self.s3
        )
        try:
            if not self.shard_map.snapshot():
                self.shard_map.refresh()
        except Exception as exc:
            found["shard map"] = str(exc)
        return found
