"""What the lab console costs: memory and idle CPU of Prometheus, the exporters and the console
beside the rest of the lab, and one refresh (requests made, milliseconds).

Usage: python -m tests.bench.console_cost [--seconds 30]   (native runtime; sends no load)
Memory is PSS (a shared page counted once, split between its users), read from /proc.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

import httpx
from reviewlab_common.topology import Topology
from reviewlab_console import figures
from reviewlab_lab import runtimes
from reviewlab_lab.runtimes.native import NativeRuntime

from tests.bench.procfs import TICK, cpu_ticks, pss_bytes

CONSOLE_KINDS = frozenset(
    {"metrics", "nginx-exporter", "redis-exporter", "bind-exporter", "console"}
)


def node_pids(topology: Topology, runtime: NativeRuntime) -> dict[str, list[int]]:
    return {name: runtime.node_pids(name) for name in topology.nodes}


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def refresh_cost(topology: Topology, seconds: float) -> dict[str, float]:
    console = topology.nodes["console"].url
    names = (
        "console_refresh_seconds_count",
        "console_refresh_seconds_sum",
        "console_prometheus_requests_total",
        "console_lab_requests_total",
    )
    before = httpx.get(f"{console}/metrics").text
    time.sleep(seconds)
    after = httpx.get(f"{console}/metrics").text
    delta = {n: metric(after, n) - metric(before, n) for n in names}
    refreshes = delta["console_refresh_seconds_count"] or 1.0
    prometheus = topology.nodes["metrics"].url
    query = figures.union_query()
    timings: dict[str, list[float]] = {"targets": [], "figures": []}
    with httpx.Client(base_url=prometheus, timeout=5) as http:
        for _ in range(20):
            start = time.perf_counter()
            http.get("/api/v1/targets", params={"state": "active"})
            timings["targets"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            http.get("/api/v1/query", params={"query": query})
            timings["figures"].append((time.perf_counter() - start) * 1000)
    return {
        "refreshes": delta["console_refresh_seconds_count"],
        "refresh_ms": 1000 * delta["console_refresh_seconds_sum"] / refreshes,
        "prometheus_per_refresh": delta["console_prometheus_requests_total"] / refreshes,
        "lab_per_refresh": delta["console_lab_requests_total"] / refreshes,
        "targets_ms_median": statistics.median(timings["targets"]),
        "figures_ms_median": statistics.median(timings["figures"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    topology = runtimes.activate()
    runtime = runtimes.of(topology)
    if not isinstance(runtime, NativeRuntime):
        raise SystemExit("console_cost reads /proc: run it against the native lab")
    pids = node_pids(topology, runtime)
    ticks = {p: cpu_ticks(p) for group in pids.values() for p in group}
    print(f"measuring {len(ticks)} processes of {len(pids)} nodes for {args.seconds:.0f} s ...")
    cost = refresh_cost(topology, args.seconds)
    memory: dict[bool, float] = {True: 0.0, False: 0.0}
    cpu: dict[bool, float] = {True: 0.0, False: 0.0}
    per_node: list[str] = []
    for name, group in pids.items():
        ours = topology.nodes[name].kind in CONSOLE_KINDS
        node_memory = sum(pss_bytes(p) for p in group)
        node_cpu = sum(max(0, cpu_ticks(p) - ticks.get(p, 0)) for p in group) / TICK
        memory[ours] += node_memory
        cpu[ours] += node_cpu
        if ours:
            share = 100 * node_cpu / args.seconds
            per_node.append(f"  {name:<16} {node_memory / 2**20:6.1f} MiB  {share:4.1f}% of a core")
    for ours, label in ((False, "the rest of the lab"), (True, "console stack")):
        share = 100 * cpu[ours] / args.seconds
        print(
            f"{label:<20} memory {memory[ours] / 2**20:7.0f} MiB PSS   "
            f"idle CPU {share:5.1f}% of a core"
        )
    print("\n".join(per_node))
    print(f"console stack / rest of the lab: memory {100 * memory[True] / memory[False]:.1f}%")
    print(
        f"one refresh: {cost['refresh_ms']:.1f} ms ({cost['refreshes']:.0f} refreshes), "
        f"{cost['prometheus_per_refresh']:.1f} Prometheus requests and "
        f"{cost['lab_per_refresh']:.1f} lab requests (Patroni, DNS, the vIP) each; "
        f"Prometheus answers /api/v1/targets in {cost['targets_ms_median']:.1f} ms and the "
        f"figures query in {cost['figures_ms_median']:.1f} ms (median of 20)"
    )


if __name__ == "__main__":
    main()
