"""The console's refresh: every second it reads Prometheus and the lab, builds a snapshot,
turns what changed into events and sends both to every open page."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from reviewlab_common.topology import Topology

from reviewlab_console import figures, snapshot
from reviewlab_console.events import EventBus, changes
from reviewlab_console.labstate import LabReader
from reviewlab_console.prom import MetricsUnavailable, Prometheus

log = logging.getLogger(__name__)
PERIOD_S = 1.0
REFRESH_SECONDS = Histogram(
    "console_refresh_seconds",
    "How long one refresh took (Prometheus and the lab read)",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
)
PROMETHEUS_REQUESTS = Counter("console_prometheus_requests", "Requests made of Prometheus")
LAB_REQUESTS = Counter("console_lab_requests", "Requests made of the lab (Patroni, DNS, vIP)")
LISTENERS = Gauge("console_pages", "Pages listening to the console's stream")


class Poller:
    def __init__(self, topology: Topology, prometheus: Prometheus, bus: EventBus) -> None:
        self.topology = topology
        self.prometheus = prometheus
        self.lab = LabReader(topology)
        self.bus = bus
        self.latest: dict[str, Any] | None = None
        self.query = figures.union_query()

    async def _metrics(self) -> tuple[dict[str, figures.NodeState], figures.Figures]:
        before = self.prometheus.requests
        try:
            targets, samples = await asyncio.gather(
                self.prometheus.targets(), self.prometheus.query(self.query)
            )
        finally:
            PROMETHEUS_REQUESTS.inc(self.prometheus.requests - before)
        found = figures.by_figure(samples)
        states = figures.node_states(self.topology, targets, found.get("exported_up", []))
        return states, figures.compute(self.topology, found)

    async def refresh(self) -> dict[str, Any]:
        started = time.perf_counter()
        metrics_task = asyncio.ensure_future(self._metrics())
        lab = await self.lab.read()
        LAB_REQUESTS.inc(lab.requests)
        problem = None
        states: dict[str, figures.NodeState] | None = None
        computed: figures.Figures | None = None
        try:
            states, computed = await metrics_task
        except MetricsUnavailable as exc:
            problem = str(exc)
        now = time.time()
        built = snapshot.build(self.topology, states, computed, lab, now, problem)
        built["refresh_ms"] = round((time.perf_counter() - started) * 1000, 1)
        REFRESH_SECONDS.observe(time.perf_counter() - started)
        for event in changes(self.latest, built):
            self.bus.publish(event)
        self.latest = built
        LISTENERS.set(len(self.bus.listeners))
        self.bus.send({"type": "state", "state": built})
        return built

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # a refresh that failed is logged; the next one tries again
                log.exception("console refresh failed")
            await asyncio.sleep(PERIOD_S)

    async def close(self) -> None:
        await self.lab.close()
