"""What the console reads from the lab directly, Prometheus or not: Patroni's view of each
cluster (roles, state, lag), the DNS's role records, and the load balancer's mode."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
from reviewlab_common import dns as lab_dns
from reviewlab_common.topology import Cluster, Topology

TIMEOUT_S = 0.8
# Patroni's role names, as the lab says them (reviewlab status uses the same words).
ROLES = {"leader": "primary", "sync_standby": "sync replica", "replica": "async replica"}


@dataclass
class Member:
    role: str
    state: str  # Patroni's: running, streaming, stopped, starting...
    lag_bytes: int | None


@dataclass
class LabState:
    members: dict[str, Member] = field(default_factory=dict)
    # primary.<cluster> and replicas.<cluster>: the addresses the DNS hands out.
    records: dict[str, list[str]] = field(default_factory=dict)
    lb_mode: dict[str, str] | None = None
    # The load balancer that answered on the vIP (None when none did).
    vip_holder: str | None = None
    problems: list[str] = field(default_factory=list)
    requests: int = 0  # HTTP requests and DNS queries this reading took


def member_of(raw: dict[str, Any]) -> Member:
    lag = raw.get("lag")
    role = str(raw.get("role", "unknown"))
    return Member(
        role=ROLES.get(role, role),
        state=str(raw.get("state", "unknown")),
        lag_bytes=lag if isinstance(lag, int) and role != "leader" else None,
    )


class LabReader:
    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.client = httpx.AsyncClient(timeout=TIMEOUT_S)

    async def _cluster(self, cluster: Cluster, state: LabState) -> None:
        for member in cluster.members:
            state.requests += 1
            try:
                reply = await self.client.get(f"http://{member.address}:{member.rest_port}/cluster")
                reply.raise_for_status()
            except httpx.HTTPError:
                continue
            for raw in reply.json().get("members", []):
                state.members[str(raw.get("name"))] = member_of(raw)
            return
        state.problems.append(f"no member of {cluster.name} answers Patroni's /cluster")

    async def _lb_mode(self, state: LabState) -> None:
        # Asked on the vIP: the member holding it answers, with its name.
        vip = self.topology.vip
        state.requests += 1
        try:
            reply = await self.client.get(f"http://{vip.address}:{vip.ceiling_port}/lab-mode")
            reply.raise_for_status()
            mode = reply.json()
            state.lb_mode = {"layer": str(mode["layer"]), "algorithm": str(mode["algorithm"])}
            state.vip_holder = str(mode["member"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            state.problems.append(f"the load balancer's mode is unknown: {exc!r}")

    def _records(self, state: LabState) -> None:
        for cluster in self.topology.clusters.values():
            for name in (f"primary.{cluster.name}", f"replicas.{cluster.name}"):
                state.requests += 1
                try:
                    state.records[name] = lab_dns.lookup(self.topology, name, timeout=TIMEOUT_S)
                except lab_dns.DnsError as exc:
                    state.problems.append(str(exc))
                    return

    async def read(self) -> LabState:
        state = LabState()
        await asyncio.gather(
            *(self._cluster(c, state) for c in self.topology.clusters.values()),
            self._lb_mode(state),
            asyncio.to_thread(self._records, state),
        )
        return state

    async def close(self) -> None:
        await self.client.aclose()
