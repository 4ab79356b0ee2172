"""The event feed: what changed between two refreshes, and what the lab reports itself
(a chaos run's phases), each with its time, fanned out to every open page (SSE)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

# Events kept for a page that opens later.
KEPT = 200


@dataclass(frozen=True)
class Event:
    at: float
    kind: str  # node, role, dns, lb, metrics, chaos, shard
    text: str
    node: str | None = None
    id: int = 0


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[Event]:
    """The events between two snapshots (snapshot.build); none for the first one."""
    if before is None:
        return []
    now = float(after["at"])
    found: list[Event] = []
    old_nodes, new_nodes = before["nodes"], after["nodes"]
    for name, node in new_nodes.items():
        old = old_nodes.get(name)
        if old is None:
            found.append(Event(now, "node", f"{name} joined the topology", name))
            continue
        if old["state"] != node["state"]:
            text = f"{name} is {node['state']}" + (f" ({node['detail']})" if node["detail"] else "")
            found.append(Event(now, "node", text, name))
        if old["role"] != node["role"] and "unknown" not in (old["role"], node["role"]):
            found.append(Event(now, "role", f"{name}: {old['role']} → {node['role']}", name))
    for record, addresses in after["records"].items():
        previous = before["records"].get(record)
        if previous is not None and previous != addresses:
            shown = ", ".join(addresses) or "nothing"
            found.append(Event(now, "dns", f"{record} now points at {shown}"))
    old_mode, new_mode = _mode(before.get("lb")), _mode(after.get("lb"))
    if old_mode and new_mode and old_mode != new_mode:
        found.append(Event(now, "lb", f"load balancer: {old_mode} → {new_mode}", "vip"))
    was, now_ok = before["metrics"]["available"], after["metrics"]["available"]
    if was != now_ok:
        text = "metrics back" if now_ok else f"metrics unavailable: {after['metrics']['problem']}"
        found.append(Event(now, "metrics", text))
    return found


def _mode(mode: dict[str, str] | None) -> str | None:
    if not mode or "layer" not in mode or "algorithm" not in mode:
        return None
    return f"{mode['layer']} {mode['algorithm']}"


class EventBus:
    """The last KEPT events and a queue per listening page."""

    def __init__(self) -> None:
        self.kept: deque[Event] = deque(maxlen=KEPT)
        self.listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._ids = itertools.count(1)

    def publish(self, event: Event) -> Event:
        event = Event(event.at, event.kind, event.text, event.node, next(self._ids))
        self.kept.append(event)
        self.send({"type": "event", **asdict(event)})
        return event

    def note(self, kind: str, text: str, node: str | None = None) -> Event:
        return self.publish(Event(time.time(), kind, text, node))

    def send(self, message: dict[str, Any]) -> None:
        for queue in list(self.listeners):
            if queue.qsize() < 100:  # a page that stopped reading is not waited for
                queue.put_nowait(message)

    def listen(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.listeners.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.listeners.discard(queue)

    def recent(self) -> list[dict[str, Any]]:
        return [asdict(e) for e in self.kept]
