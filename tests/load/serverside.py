"""The server's side of a load run: who served, the CDN's hit ratio, the job stream, replicas.

Read from the lab itself (the vIP's and the edge's logs, Redis, Patroni) over the run's
window, so a report shows cause beside effect, not client latencies alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import redis
from reviewlab_common import queue
from reviewlab_common.topology import Topology
from reviewlab_lab import dnsrecords, edgestats, lbstats, loadbalancer
from reviewlab_lab.paths import LabPaths

SAMPLE_EVERY_S = 1.0


@dataclass
class Samples:
    """What only exists in the moment: sampled every second while the load runs."""

    stream_depth: list[int] = field(default_factory=list)
    replica_lag_max: dict[str, int] = field(default_factory=dict)  # bytes, per replica
    unreachable: set[str] = field(default_factory=set)


def stream_depth(client: redis.Redis) -> int:
    """Jobs not yet finished: never delivered (the group's lag) plus delivered, not acked."""
    for group in client.xinfo_groups(queue.JOBS_STREAM):
        if group["name"] == queue.WORKERS_GROUP:
            return int(group.get("lag") or 0) + int(group["pending"])
    return 0


def replica_lags(topology: Topology) -> dict[str, int]:
    """Bytes each replica is behind its primary, as Patroni reports it."""
    lags: dict[str, int] = {}
    for cluster in topology.clusters.values():
        for name, member in dnsrecords.patroni_members(cluster, timeout=1.0).items():
            if member.get("role") != "leader" and isinstance(member.get("lag"), int):
                lags[name] = int(member["lag"])
    return lags


class Sampler:
    """Samples the job stream's depth and the replicas' lag until stopped."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.samples = Samples()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = queue.connect(self.topology, "admin")
        while not self._stop.wait(SAMPLE_EVERY_S):
            try:
                self.samples.stream_depth.append(stream_depth(client))
            except redis.RedisError:
                self.samples.unreachable.add("redis")
            for name, lag in replica_lags(self.topology).items():
                self.samples.replica_lag_max[name] = max(
                    lag, self.samples.replica_lag_max.get(name, 0)
                )

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class ReadyLatency:
    """POST to cutout ready, as the shoppers saw it (Locust's FLOW row)."""

    count: int
    p50_ms: float
    p95_ms: float
    failures: int


def report(topology: Topology, seconds: float, samples: Samples, ready: ReadyLatency | None) -> str:
    """The server's side of the last SECONDS, in Markdown."""
    paths = LabPaths.of(topology)
    vip = lbstats.read(loadbalancer.access_log(paths), since=seconds)
    lines = [
        f"## The server's side (the run's last {seconds:.0f} s)",
        "",
        f"### Who served the {len(vip)} requests at the vIP (its access log)",
        "",
        "| served by | share | requests | p50 ms | p99 ms | 5xx |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in lbstats.shares(topology, vip):
        name = "vIP micro-cache" if row.name == lbstats.ANSWERED_BY_LB else row.name
        lines.append(
            f"| {name} | {row.share:.1%} | {row.count} | {row.p50_ms:.1f} | {row.p99_ms:.1f} "
            f"| {row.errors} |"
        )
    edge = topology.nodes[topology.services["cdn"]]
    media = edgestats.read(edgestats.access_log(paths, edge), since=seconds)
    ratio, statuses = edgestats.hit_ratio(media)
    counted = ", ".join(f"{status} {n}" for status, n in statuses.most_common()) or "none"
    lines += [
        "",
        f"### CDN edge {edge.name}: hit ratio {ratio:.1%} of {len(media)} media requests",
        f"({counted}; every shopper's cutout is new, so its first request is a MISS)",
        "",
        "### Photo jobs",
    ]
    depth = samples.stream_depth
    if depth:
        lines.append(
            f"- job stream depth (undelivered + unacknowledged), sampled every "
            f"{SAMPLE_EVERY_S:g} s: max {max(depth)}, at the end {depth[-1]}"
        )
    if ready and ready.count:
        lines.append(
            f"- POST to cutout ready: p50 {ready.p50_ms:.0f} ms, p95 {ready.p95_ms:.0f} ms "
            f"over {ready.count} photos, {ready.failures} not ready"
        )
    lines += ["", "### Replica lag (bytes behind the primary, max while the load ran)", ""]
    if samples.replica_lag_max:
        lines += ["| replica | max lag (bytes) |", "|---|---:|"]
        lines += [f"| {name} | {lag:,} |" for name, lag in sorted(samples.replica_lag_max.items())]
    else:
        lines.append("no replica reported its lag")
    if samples.unreachable:
        lines.append(f"\nnot reachable while sampling: {', '.join(sorted(samples.unreachable))}")
    return "\n".join(lines) + "\n"
