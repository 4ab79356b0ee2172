"""One line per node: what it is, what role it holds, whether it is ready, its pid."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reviewlab_common.topology import Node, Topology

from reviewlab_lab import dnsrecords, kinds, labnetwork, ready, runtimes
from reviewlab_lab.runtimes.base import Runtime


@dataclass
class NodeStatus:
    name: str
    kind: str
    role: str
    address: str
    port: int
    state: str
    ready: bool
    lag_bytes: int | None
    pid: int | None
    postmaster_pid: int | None
    detail: str
    degraded: bool = False


def _patroni_members(topology: Topology) -> dict[str, dict[str, Any]]:
    members: dict[str, dict[str, Any]] = {}
    for cluster in topology.clusters.values():
        members |= dnsrecords.patroni_members(cluster, timeout=1.5)
    return members


def _role(
    node: Node,
    members: dict[str, dict[str, Any]],
    runtime: Runtime,
    holder: str | None,
    carriers: list[str],
) -> tuple[str, int | None]:
    if node.kind == "postgres":
        member = members.get(node.name)
        if member is None:
            return "unknown", None
        patroni_role = member.get("role", "unknown")
        role = {"leader": "primary", "sync_standby": "replica (sync)"}.get(
            patroni_role, patroni_role
        )
        lag = member.get("lag")
        return role, (int(lag) if isinstance(lag, int) else None) if role != "primary" else None
    if node.kind == "lb":
        mode = runtime.lb_mode()
        drained = f", drained {','.join(mode.drained)}" if mode.drained else ""
        duty = "active" if holder == node.name else "standby"
        # A standby that carries the address too: cut off from its peer, it took it over.
        split = ", carries the vIP too" if duty == "standby" and node.name in carriers else ""
        return f"{duty} {mode.layer} {mode.algorithm}{drained}{split}", None
    if node.kind == "vip":
        others = [c for c in carriers if c != holder]
        also = f"; {', '.join(others)} carries it too (split brain)" if others else ""
        return (f"held by {holder}" if holder else "held by no member") + also, None
    if node.kind == "web":
        return "+".join(node.roles), None
    return kinds.of(node).role or node.kind, None


def collect(topology: Topology) -> list[NodeStatus]:
    # Before any probe: a network that is not on this machine would route them elsewhere.
    labnetwork.require(topology)
    runtime = runtimes.of(topology)
    processes = runtime.processes()
    members = _patroni_members(topology)
    holder, carriers = runtime.vip_holder(), runtime.vip_carriers()
    nodes = list(topology.nodes.values())
    with ThreadPoolExecutor(max_workers=8) as pool:
        probes = list(pool.map(lambda n: ready.probe(topology, n), nodes))
    result = []
    for node, probe in zip(nodes, probes, strict=True):
        info = processes.get(node.name)
        role, lag = _role(node, members, runtime, holder, carriers)
        # The vIP runs nothing: it is held, or it is not.
        process_state = info.state if info else "stopped"
        if not kinds.of(node).runs:
            process_state = "held" if holder else "unheld"
        result.append(
            NodeStatus(
                name=node.name,
                kind=node.kind,
                role=role,
                address=node.address,
                port=node.port,
                state=_state(node, process_state, info.pid if info else None, probe),
                ready=probe.ready,
                degraded=probe.degraded,
                lag_bytes=lag,
                pid=info.pid if info else None,
                postmaster_pid=runtime.postmaster_pid(node.name)
                if node.kind == "postgres"
                else None,
                detail=probe.detail,
            )
        )
    return result


def _age_s(pid: int) -> float | None:
    """Seconds since process PID started (/proc: the machine's view, for either runtime)."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return uptime - ticks / os.sysconf("SC_CLK_TCK")


def _state(node: Node, state: str, pid: int | None, probe: ready.Probe) -> str:
    """The runtime's state, but 'starting' for a node that runs, is not ready yet and started
    within its kind's ready deadline (a node just restarted)."""
    if state != "running" or probe.ready or not pid:
        return state
    age = _age_s(pid)
    return "starting" if age is not None and age < kinds.of(node).ready_deadline_s else state


def _ready_word(s: NodeStatus) -> str:
    if not s.ready:
        return "NO"
    return "degr." if s.degraded else "yes"


def as_json(statuses: list[NodeStatus]) -> list[dict[str, Any]]:
    return [asdict(s) for s in statuses]


def table(statuses: list[NodeStatus], runtime: str) -> str:
    header = (
        f"{'NODE':<12} {'KIND':<9} {'ROLE':<22} {'ADDRESS':<18} {'STATE':<9} {'READY':<6} "
        f"{'LAG':>8} {'PID':>8}"
    )
    lines = [f"runtime: {runtime}", header]
    for s in statuses:
        lag = "" if s.lag_bytes is None else str(s.lag_bytes)
        lines.append(
            f"{s.name:<12} {s.kind:<9} {s.role:<22} {s.address + ':' + str(s.port):<18} "
            f"{s.state:<9} {_ready_word(s):<6} {lag:>8} {s.pid or '':>8}"
        )
    lines += [f"degraded: {s.name}: {s.detail}" for s in statuses if s.ready and s.degraded]
    not_ready = [s for s in statuses if not s.ready]
    if not_ready:
        lines.append("")
        lines += [f"not ready: {s.name}: {s.detail}" for s in not_ready]
    return "\n".join(lines)
