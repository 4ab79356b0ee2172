"""One refresh of the console: every node's state, role, address and figures, as JSON.

Pure: built from what figures.py computed and labstate.py read, so it is tested alone.
"""

from __future__ import annotations

from typing import Any

from reviewlab_common.queue import DEAD_LETTER_STREAM, JOBS_STREAM
from reviewlab_common.topology import Node, Topology

from reviewlab_console.figures import UNKNOWN, Figures, NodeState, lag_seconds
from reviewlab_console.labstate import LabState

# Roles of the kinds that have no role of their own to report.
KIND_ROLES = {
    "dns": "authoritative",
    "etcd": "member",
    "redis": "job queue",
    "minio": "origin",
    "lb": "load balancer",
    "edge": "cache",
    "worker": "segmentation",
    "metrics": "scraper",
    "nginx-exporter": "exporter",
    "redis-exporter": "exporter",
    "bind-exporter": "exporter",
    "console": "console",
}


def _number(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _role(node: Node, lab: LabState) -> str:
    if node.kind == "postgres":
        member = lab.members.get(node.name)
        return member.role if member else "unknown"
    if node.kind == "lb" and lab.lb_mode:
        duty = "active" if lab.vip_holder == node.name else "standby"
        return f"{duty} {lab.lb_mode.get('layer')} {lab.lb_mode.get('algorithm')}"
    if node.kind == "vip":
        return f"held by {lab.vip_holder}" if lab.vip_holder else "held by no member"
    if node.kind == "web":
        return "+".join(node.roles)
    return KIND_ROLES.get(node.kind, node.kind)


def _state(node: Node, scraped: NodeState | None, lab: LabState) -> tuple[str, str]:
    state, detail = (scraped.state, scraped.detail) if scraped else (UNKNOWN, "metrics unavailable")
    if node.kind == "vip":
        # An address, not a process: up while a member answers on it.
        return (
            ("up", f"held by {lab.vip_holder}") if lab.vip_holder else ("down", "no member answers")
        )
    member = lab.members.get(node.name) if node.kind == "postgres" else None
    if node.kind == "postgres":
        if member is None and lab.members:
            # Patroni answers for the cluster but no longer lists it: gone.
            return "down", "Patroni does not list it"
        if member is not None and member.state not in ("running", "streaming"):
            return member.state, f"Patroni says {member.state}"
        if member is not None and state == UNKNOWN:
            return "up", "Patroni says it is " + member.state
    return state, detail


def node_figures(node: Node, figures: Figures, lab: LabState, now: float) -> dict[str, Any]:
    if node.kind == "web":
        web = figures.web.get(node.name, {})
        return {
            "req_s": _number(web.get("req_s")),
            "p99_ms": _number(web.get("p99_ms")),
            "share": _number(web.get("share"), 3),
        }
    if node.kind == "postgres":
        member = lab.members.get(node.name)
        lag = member.lag_bytes if member else None
        return {
            "lag_bytes": lag,
            "lag_s": _number(lag_seconds(lag, figures.replayed_at.get(node.name), now)),
        }
    if node.kind == "edge":
        edge = figures.edges.get(node.name, {})
        return {
            "req_s": _number(edge.get("req_s")),
            "hit_ratio": _number(edge.get("hit_ratio"), 3),
            "origin_s": _number(edge.get("origin_s"), 2),
        }
    return {}


def build(
    topology: Topology,
    states: dict[str, NodeState] | None,
    figures: Figures | None,
    lab: LabState,
    now: float,
    metrics_problem: str | None,
) -> dict[str, Any]:
    figures = figures or Figures()
    nodes: dict[str, Any] = {}
    for node in topology.nodes.values():
        state, detail = _state(node, (states or {}).get(node.name), lab)
        nodes[node.name] = {
            "kind": node.kind,
            "cluster": node.cluster,
            "address": f"{node.address}:{node.port}",
            "role": _role(node, lab),
            "state": state,
            "detail": detail,
            "figures": node_figures(node, figures, lab, now),
        }
    jobs = figures.streams.get(JOBS_STREAM, {})
    dead = figures.streams.get(DEAD_LETTER_STREAM, {})
    return {
        "at": now,
        "metrics": {"available": metrics_problem is None, "problem": metrics_problem},
        "lb": lab.lb_mode,
        "records": lab.records,
        "nodes": nodes,
        "shards": {
            c.name: {"writes_s": _number(figures.shards.get(c.name, 0.0) if states else None)}
            for c in topology.shards
        },
        "queue": {
            "depth": jobs.get("length"),
            "pending": jobs.get("pending"),
            # The dead-letter stream exists once a job died: none yet is zero.
            "dead": dead.get("length", 0.0 if jobs else None),
            "cutouts_s": _number(figures.cutouts_s, 2),
        },
        "problems": lab.problems,
    }
