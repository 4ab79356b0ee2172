"""The vIP's throughput and latency per layer x algorithm, beside nginx's own ceiling.

Run: python tests/bench/bench_lb.py [--duration S] [--connections N] [--path /healthz]
Not a test: the same fixed wrk load runs through every mode, then against the ceiling (nginx
answering a static response on the vIP's address), in one run. Prints a Markdown table.
Leaves the vIP in layer l7, round-robin.
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import time

from reviewlab_common.topology import Topology
from reviewlab_lab import loadbalancer, runtimes
from reviewlab_lab.wrk import MAX_CONNECTIONS, MAX_DURATION_S, Result, wrk


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            found = re.search(r"model name\s*:\s*(.+)", handle.read())
            cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{platform.node()}: {cores} cores, {cpu}; {platform.platform()}; {nginx}"


def table(results: list[Result], ceiling: Result) -> str:
    lines = [
        "| mode | requests/s | p50 ms | p99 ms | errors | share of ceiling |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in [*results, ceiling]:
        share = r.per_second / ceiling.per_second
        lines.append(
            f"| {r.label} | {r.per_second:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.errors} | {share:.1%} |"
        )
    return "\n".join(lines)


def run(topology: Topology, duration: int, connections: int, path: str) -> None:
    runtime = runtimes.of(topology)
    lb = topology.vip
    results = []
    for layer in ("l7", "l4"):
        for algorithm in loadbalancer.ALGORITHMS:
            mode = loadbalancer.LbMode(layer, algorithm)
            runtime.apply_lb_mode(mode)
            label = f"{layer} {algorithm}"
            print(f"  {label:<16} {duration} s x {connections} connections ...", flush=True)
            results.append(wrk(label, f"{lb.url}{path}", duration, connections))
    ceiling_url = f"http://{lb.address}:{lb.ceiling_port}{path}"
    print(f"  {'ceiling':<16} {duration} s x {connections} connections ...", flush=True)
    ceiling = wrk("ceiling (nginx static, same vIP)", ceiling_url, duration, connections)
    print()
    print(f"GET {path}, wrk -t2 -c{connections} -d{duration}s, {time.strftime('%Y-%m-%d')}")
    print(f"Machine: {machine()}")
    print()
    print(table(results, ceiling))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=5, help="seconds per mode")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--path", default="/healthz")
    args = parser.parse_args(argv)
    if not (1 <= args.duration <= MAX_DURATION_S and 1 <= args.connections <= MAX_CONNECTIONS):
        sys.exit(
            f"keep the load bounded: --duration 1..{MAX_DURATION_S}, "
            f"--connections 1..{MAX_CONNECTIONS}"
        )
    topology = runtimes.activate()
    try:
        run(topology, args.duration, args.connections, args.path)
    finally:
        runtimes.of(topology).apply_lb_mode(loadbalancer.LbMode())


if __name__ == "__main__":
    main()
