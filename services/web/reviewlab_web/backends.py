"""Everything a web server talks to: the catalog, the review shards, Redis and MinIO."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reviewlab_common import health, storage
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.asyncreads import AsyncReads
from reviewlab_common.db import ClusterRouter, app_router
from reviewlab_common.etcd import Etcd, EtcdError
from reviewlab_common.shards import ShardMap, ShardMapMissing
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
    s3: Any
    # Readiness: every dependency checked side by side, bounded (reviewlab_common.health).
    checks: health.DependencyChecks
    # The hot reads on the event loop, per cluster ("catalog" and each shard): routed as the
    # routers above route reads, sharing their replica lists and ejections.
    reads: dict[str, AsyncReads] = field(default_factory=dict)

    @classmethod
    def connect(cls, topology: Topology, node: Node) -> Backends:
        secret = lab_secrets.load(topology)
        # Every client from the secrets read once, not one read of lab.json each.
        catalog = app_router(topology, topology.catalog, app=node.name, secrets=secret)
        shards = {
            c.name: app_router(topology, c, app=node.name, secrets=secret) for c in topology.shards
        }
        bounds = health.ProbeBounds.of(topology)
        shard_map = ShardMap(topology, Etcd(topology, secrets=secret))
        # The shard map's own check reads etcd only while no map is held (before the first
        # read, or after etcd lost it), with an etcd client as bounded as the other checks.
        map_probe = Etcd(topology, timeout=bounds.reply_s, secrets=secret)
        return cls(
            topology=topology,
            node=node,
            secrets=secret,
            catalog=catalog,
            shards=shards,
            shard_map=shard_map,
            s3=storage.client(topology, secrets=secret),
            checks=health.service_checks(
                topology,
                clusters={"catalog": catalog, **shards},
                user="web",
                secrets=secret,
                extra={"shard map": shard_map_check(shard_map, map_probe)},
            ),
            reads={name: AsyncReads(r) for name, r in {"catalog": catalog, **shards}.items()},
        )

    def open(self) -> None:
        self.catalog.open()
        for shard in self.shards.values():
            shard.open()
        self.shard_map.start_watch()

    async def open_reads(self) -> None:
        """Open the async read pools: on the event loop, after open()."""
        for reads in self.reads.values():
            await reads.open()

    async def close_reads(self) -> None:
        for reads in self.reads.values():
            await reads.close()

    def close(self) -> None:
        self.checks.close()
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
        return self.checks.unreachable()


def shard_map_check(shard_map: ShardMap, etcd: Etcd) -> health.Check:
    """The shard map is held, or read now through ETCD (a bounded client)."""

    def check() -> str | None:
        if shard_map.snapshot():
            return None
        try:
            shard_map.refresh(etcd)
        except (EtcdError, ShardMapMissing) as exc:
            return str(exc)
        return None

    return check
