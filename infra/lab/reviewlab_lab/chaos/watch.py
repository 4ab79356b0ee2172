"""What the lab looks like every half second during a run, and the events between looks.

Cluster roles come from Patroni's REST API (asked of a member other than the one under
fault first: a cut-off member's view is stale), the primary's address from the private DNS
the web tier uses, node states from the runtime, the web servers' readiness from their
probes.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
from reviewlab_common import dns as lab_dns
from reviewlab_common import httpclient
from reviewlab_common.topology import Cluster, Node, Topology

from reviewlab_lab import kinds
from reviewlab_lab.runtimes.base import Runtime

POLL_S = 0.5


@dataclass(frozen=True)
class Member:
    role: str  # leader, sync_standby, replica
    state: str  # running, streaming, stopped, starting, ...
    lag: int | None


@dataclass
class Look:
    """One look at the lab."""

    at: float
    clusters: dict[str, dict[str, Member]]
    dns_primary: dict[str, str]
    nodes: dict[str, str]
    webs_ready: dict[str, bool]
    # The members replicas.<cluster> names (the DNS node's watch keeps it to serving replicas).
    dns_replicas: dict[str, list[str]] = field(default_factory=dict)
    # Read replicas some web server's router has ejected now -> the web servers that did.
    ejected: dict[str, list[str]] = field(default_factory=dict)
    # The load balancer answering on the vIP (None while none does).
    vip_holder: str | None = None
    # The load balancers whose interface carries the address (two: split brain).
    vip_carriers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Event:
    at: float  # seconds since the fault (negative before it)
    what: str
    # fault, detected, promoted, dns, dns_dropped, dns_back, rejoined, caught_up, node, web,
    # vip, carriers (the members carrying the vIP, comma-separated in node), restored
    kind: str
    node: str = ""


def cluster_view(cluster: Cluster, avoid: str | None) -> dict[str, Member]:
    """Patroni's view of CLUSTER, from the first member that answers (AVOID asked last)."""
    members = sorted(cluster.members, key=lambda m: m.name == avoid)
    for member in members:
        try:
            reply = httpclient.get(
                f"http://{member.address}:{member.rest_port}/cluster", timeout=1.0
            )
            reply.raise_for_status()
        except httpx.HTTPError:
            continue
        found: dict[str, Member] = {}
        for m in reply.json().get("members", []):
            lag = m.get("lag")
            found[m["name"]] = Member(m["role"], m["state"], lag if isinstance(lag, int) else None)
        return found
    return {}


def answers(web: Node) -> bool:
    """Does the web server answer at all? (The vIP's passive checks ask no more than that.)"""
    try:
        return httpclient.get(f"{web.url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


EJECTED_METRIC = re.compile(r'^web_replica_out_of_rotation\{cluster="[^"]*",member="([^"]+)"\} 1')


def ejected_by(web: Node) -> list[str]:
    """The replicas WEB's read router has out of rotation now (its /metrics)."""
    try:
        text = httpclient.get(f"{web.url}/metrics", timeout=1.0).text
    except httpx.HTTPError:
        return []
    return [m.group(1) for line in text.splitlines() if (m := EJECTED_METRIC.match(line))]


def _dns_replicas(topology: Topology, cluster: str) -> list[str]:
    try:
        found = lab_dns.lookup(topology, f"replicas.{cluster}", timeout=1.0, signed=True)
    except lab_dns.DnsError:
        return []
    return sorted(n.name if (n := topology.node_at(a)) else a for a in found)


def _dns_primary(topology: Topology, cluster: str) -> str:
    try:
        # Signed: the internal view, from the machine too (outside a Compose lab's network).
        found = lab_dns.lookup(topology, f"primary.{cluster}", timeout=1.0, signed=True)
    except lab_dns.DnsError:
        return "?"
    node = topology.node_at(found[0]) if found else None
    return node.name if node else (found[0] if found else "-")


@dataclass
class Watcher:
    """Looks at the lab in a thread; keeps the latest look and the events seen."""

    topology: Topology
    runtime: Runtime
    target: str
    fault_at: float | None = None  # monotonic time of the fault
    events: list[Event] = field(default_factory=list)
    latest: Look | None = None

    def __post_init__(self) -> None:
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8)

    def since_fault(self, moment: float | None = None) -> float:
        moment = time.monotonic() if moment is None else moment
        return moment - (self.fault_at if self.fault_at is not None else moment)

    def note(self, what: str, kind: str, node: str = "") -> None:
        with self._lock:
            self.events.append(Event(round(self.since_fault(), 2), what, kind, node))

    def start(self) -> None:
        self.latest = self.look()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=False)

    def look(self) -> Look:
        clusters = list(self.topology.clusters.values())
        webs = self.topology.of_kind("web")
        views = self._pool.map(lambda c: cluster_view(c, self.target), clusters)
        names = self._pool.map(lambda c: _dns_primary(self.topology, c.name), clusters)
        replicas = self._pool.map(lambda c: _dns_replicas(self.topology, c.name), clusters)
        probes = self._pool.map(answers, webs)
        ejections = self._pool.map(ejected_by, webs)
        processes = self.runtime.processes()
        return Look(
            at=time.monotonic(),
            clusters={c.name: v for c, v in zip(clusters, views, strict=True)},
            dns_primary={c.name: n for c, n in zip(clusters, names, strict=True)},
            nodes={
                n.name: processes[n.name].state if n.name in processes else "stopped"
                for n in self.topology.nodes.values()
                if kinds.of(n).runs
            },
            vip_holder=self.runtime.vip_holder(),
            vip_carriers=self.runtime.vip_carriers(),
            webs_ready={w.name: r for w, r in zip(webs, probes, strict=True)},
            dns_replicas={c.name: r for c, r in zip(clusters, replicas, strict=True)},
            ejected=_by_member(webs, list(ejections)),
        )

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                now = self.look()
                found = changes(self.latest, now) if self.latest is not None else []
            except Exception as exc:  # a look that failed is not a reason to stop watching
                self.note(f"could not look at the lab: {exc}", "node")
                continue
            for what, kind, node in found:
                self.note(what, kind, node)
            self.latest = now


def _by_member(webs: list[Node], ejections: list[list[str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for web, members in zip(webs, ejections, strict=True):
        for member in members:
            found.setdefault(member, []).append(web.name)
    return found


def changes(before: Look, now: Look) -> list[tuple[str, str, str]]:
    """The events between two looks: (what happened, its kind, the node)."""
    found: list[tuple[str, str, str]] = []
    for name, state in now.nodes.items():
        if before.nodes.get(name) != state:
            found.append((f"{name} is {state} (runtime)", "node", name))
    for cluster, members in now.clusters.items():
        old = before.clusters.get(cluster, {})
        if not members or not old:
            continue
        found += _member_changes(cluster, old, members)
        if now.dns_primary[cluster] != before.dns_primary[cluster]:
            found.append(
                (
                    f"DNS primary.{cluster} -> {now.dns_primary[cluster]}",
                    "dns",
                    now.dns_primary[cluster],
                )
            )
        listed, listing = (
            set(before.dns_replicas.get(cluster, [])),
            set(now.dns_replicas.get(cluster, [])),
        )
        for name in sorted(listed - listing):
            found.append((f"DNS replicas.{cluster} dropped {name}", "dns_dropped", name))
        for name in sorted(listing - listed):
            found.append((f"DNS replicas.{cluster} back: {name}", "dns_back", name))
    for member, webs in now.ejected.items():
        if member not in before.ejected:
            found.append(
                (f"{member} ejected by the read router of {', '.join(webs)}", "ejected", member)
            )
    if now.vip_holder != before.vip_holder:
        holder = now.vip_holder or ""
        what = f"the vIP moved to {holder}" if holder else "no load balancer holds the vIP"
        found.append((what, "vip", holder))
    if now.vip_carriers != before.vip_carriers:
        found.append((_carried(now.vip_carriers), "carriers", ",".join(now.vip_carriers)))
    for web, ok in now.webs_ready.items():
        if before.webs_ready.get(web) != ok:
            found.append((f"{web} {'back behind' if ok else 'out of'} the vIP", "web", web))
    return found


def _carried(carriers: list[str]) -> str:
    if not carriers:
        return "no load balancer carries the vIP"
    if len(carriers) == 1:
        return f"only {carriers[0]} carries the vIP"
    return f"{' and '.join(carriers)} carry the vIP at once: split brain"


def _member_changes(
    cluster: str, old: dict[str, Member], new: dict[str, Member]
) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    for name in old.keys() - new.keys():
        found.append((f"{cluster}: Patroni lost {name} (key expired)", "detected", name))
    for name, member in new.items():
        was = old.get(name)
        if member.role == "leader" and (was is None or was.role != "leader"):
            found.append((f"{cluster}: {name} promoted to primary", "promoted", name))
        elif was is not None and was.role == "leader" and member.role != "leader":
            found.append(
                (f"{cluster}: {name} demoted ({member.role}, {member.state})", "demoted", name)
            )
        if member.state != (was.state if was else None):
            kind = "rejoined" if member.state == "streaming" else "detected"
            found.append((f"{cluster}: {name} {member.state}", kind, name))
        behind = was is not None and (was.lag or 0) > 0
        if member.role != "leader" and member.lag == 0 and behind:
            found.append((f"{cluster}: {name} caught up (lag 0)", "caught_up", name))
    return found


def primaries(look: Look) -> dict[str, list[str]]:
    """Every cluster's members that call themselves leader (more than one: split brain)."""
    return {
        cluster: [n for n, m in members.items() if m.role == "leader"]
        for cluster, members in look.clusters.items()
    }


def describe(look: Look) -> dict[str, Any]:
    return {
        "clusters": {
            c: {n: {"role": m.role, "state": m.state, "lag": m.lag} for n, m in ms.items()}
            for c, ms in look.clusters.items()
        },
        "dns_primary": look.dns_primary,
        "dns_replicas": look.dns_replicas,
    }
