"""`make lb-demo`: the same bounded load under each algorithm, then with one slow web server.

Run: python -m reviewlab_lab.lbdemo [--requests N] [--concurrency N] [--delay-ms MS]
It leaves the vIP in layer l7, round-robin, and removes the added latency, even when stopped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from reviewlab_common.topology import Topology

from reviewlab_lab import loadbalancer, runtimes
from reviewlab_lab.runtimes.base import Runtime

ALGORITHMS = ("round_robin", "random", "random_two", "least_conn")
MAX_REQUESTS = 2000
MAX_CONCURRENCY = 32


@dataclass(frozen=True)
class Outcome:
    served: Counter[str]
    failed: int
    per_second: float
    mean_ms: float
    p99_ms: float


def send(vip: str, requests: int, concurrency: int) -> Outcome:
    """REQUESTS GETs of product pages through the vIP, CONCURRENCY at a time."""

    def one(http: httpx.Client, n: int) -> tuple[str, float]:
        reply = http.get(f"/api/products/{n % 50 + 1}")
        if reply.status_code != 200:
            return "failed", reply.elapsed.total_seconds()
        return reply.headers.get("X-Served-By", "?"), reply.elapsed.total_seconds()

    started = time.perf_counter()
    with (
        httpx.Client(base_url=vip, timeout=30) as http,
        ThreadPoolExecutor(max_workers=concurrency) as pool,
    ):
        results = list(pool.map(lambda n: one(http, n), range(requests)))
    wall = time.perf_counter() - started
    served = Counter(name for name, _ in results if name != "failed")
    times = sorted(seconds * 1000 for _, seconds in results)
    return Outcome(
        served=served,
        failed=requests - sum(served.values()),
        per_second=requests / wall,
        mean_ms=statistics.fmean(times),
        p99_ms=times[min(len(times) - 1, round(0.99 * (len(times) - 1)))],
    )


def table(webs: list[str], outcomes: dict[str, Outcome]) -> str:
    """Shares per web server (rows) under each algorithm (columns), with latency below."""
    width = max(12, *(len(a) + 2 for a in outcomes))
    lines = ["  " + " " * 8 + "".join(f"{a:>{width}}" for a in outcomes)]
    for web in webs:
        cells = []
        for outcome in outcomes.values():
            total = sum(outcome.served.values()) or 1
            share = outcome.served[web] / total
            cells.append(" " * (width - 10) + f"{'#' * round(share * 10):<5}{share:>5.0%}")
        lines.append(f"  {web:<8}" + "".join(cells))
    rows = (
        ("req/s", "per_second"),
        ("mean ms", "mean_ms"),
        ("p99 ms", "p99_ms"),
        ("failed", "failed"),
    )
    for label, value in rows:
        cells = [f"{getattr(o, value):>{width}.0f}" for o in outcomes.values()]
        lines.append(f"  {label:<8}" + "".join(cells))
    return "\n".join(lines)


def run(
    topology: Topology, runtime: Runtime, requests: int, concurrency: int, delay_ms: int
) -> None:
    vip = topology.nodes[topology.services["www"]].url
    webs = [w.name for w in topology.of_kind("web")]
    slow = webs[len(webs) // 2]
    print(f"1. The same load under each algorithm ({requests} GETs, {concurrency} at a time):")
    outcomes = {}
    for algorithm in ALGORITHMS:
        runtime.apply_lb_mode(loadbalancer.LbMode("l7", algorithm))
        outcomes[algorithm] = send(vip, requests, concurrency)
    print(table(webs, outcomes))
    print(
        "   With equal servers every algorithm spreads the load about evenly; random only\n"
        "   on average. Who served comes from each answer's X-Served-By header.\n"
    )
    print(f"2. {slow} made slow: `reviewlab fault delay {slow} {delay_ms}` (lab-only switch)")
    runtime.set_delay(slow, delay_ms)
    slowed = {}
    for algorithm in ("round_robin", "least_conn"):
        runtime.apply_lb_mode(loadbalancer.LbMode("l7", algorithm))
        slowed[algorithm] = send(vip, requests, concurrency)
    print(table(webs, slowed))
    print(
        f"   round_robin still sends {slow} its third, and those requests wait; least_conn\n"
        f"   counts the requests in flight, sees {slow} busy longer, and sends it less.\n"
        "   The vIP's own view of the same traffic: reviewlab lb stats --since 60"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay-ms", type=int, default=200)
    args = parser.parse_args(argv)
    if not (1 <= args.requests <= MAX_REQUESTS and 1 <= args.concurrency <= MAX_CONCURRENCY):
        sys.exit(f"keep the load bounded: --requests <= {MAX_REQUESTS}, --concurrency <= 32")
    topology = runtimes.activate()
    runtime = runtimes.of(topology)
    try:
        run(topology, runtime, args.requests, args.concurrency, args.delay_ms)
    except (httpx.HTTPError, runtimes.SwitchFailed) as exc:
        sys.exit(f"lb-demo stopped: {exc}. Is the lab up? Try `make status`.")
    finally:
        for web in topology.of_kind("web"):
            runtime.set_delay(web.name, 0)
        runtime.apply_lb_mode(loadbalancer.LbMode())
        print("\nThe vIP is back to layer l7, round_robin; no added latency on any web server.")


if __name__ == "__main__":
    main()
