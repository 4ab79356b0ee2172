"""Reads through the vIP before, during and after a stopped catalog replica, side by side.

`python -m tests.bench.replica_loss [--clients 4] [--hold 10]` stops the catalog's asynchronous
replica (or its only replica) through the lab's runtime, starts it again afterwards and prints
reads/s and p99 per phase, the ratio to the baseline, and each second of the hold.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import threading
import time
from dataclasses import dataclass

from reviewlab_common.topology import current
from reviewlab_lab import dnsrecords, runtimes

PRODUCT_PATH = "/api/products/{}"


@dataclass(frozen=True)
class Read:
    at: float
    latency: float
    ok: bool


def reader(host: str, port: int, stop: threading.Event, out: list[Read], start: float) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    product = 1
    while not stop.is_set():
        began = time.monotonic()
        try:
            conn.request("GET", PRODUCT_PATH.format(product))
            reply = conn.getresponse()
            reply.read()
            ok = reply.status == 200
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=10)
            ok = False
        ended = time.monotonic()
        out.append(Read(ended - start, ended - began, ok))
        product = product % 50 + 1


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else float("nan")


def summary(reads: list[Read], since: float, until: float) -> tuple[float, float, int]:
    phase = [r for r in reads if since <= r.at < until]
    return (
        len(phase) / (until - since),
        p99([r.latency for r in phase]),
        sum(not r.ok for r in phase),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--baseline", type=float, default=5.0)
    parser.add_argument("--hold", type=float, default=10.0)
    args = parser.parse_args()
    topology = current()
    roles = dnsrecords.cluster_roles(topology.catalog)
    replicas = [n for n, r in roles.items() if r == "replica"] or [
        n for n, r in roles.items() if r != "leader"
    ]
    victim = replicas[0]
    lb = topology.vip
    runtime = runtimes.of(topology)
    stop, reads = threading.Event(), []  # type: ignore[var-annotated]
    start = time.monotonic()
    threads = [
        threading.Thread(target=reader, args=(lb.host_address, lb.port, stop, reads, start))
        for _ in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(args.baseline)
        stopped_at = time.monotonic() - start
        runtime.stop(victim)
        time.sleep(args.hold)
        held_until = time.monotonic() - start
    finally:
        runtime.start(victim)
        stop.set()
        for thread in threads:
            thread.join()
    base_rate, base_p99, base_failed = summary(reads, 1.0, stopped_at)
    print(f"stopped {victim} ({roles[victim]}) at {stopped_at:.1f} s for {args.hold:.0f} s")
    print(f"{'phase':<22}{'reads/s':>9}{'p99 ms':>9}{'failed':>8}{'x base':>8}")
    print(f"{'baseline':<22}{base_rate:>9.0f}{base_p99 * 1000:>9.0f}{base_failed:>8}{1:>8.2f}")
    for label, since in (("hold", stopped_at), ("hold after 1st second", stopped_at + 1)):
        rate, late, failed = summary(reads, since, held_until)
        print(f"{label:<22}{rate:>9.0f}{late * 1000:>9.0f}{failed:>8}{rate / base_rate:>8.2f}")
    seconds = []
    for second in range(int(args.hold)):
        rate, late, _ = summary(reads, stopped_at + second, stopped_at + second + 1)
        seconds.append(f"{rate:.0f}/{late * 1000:.0f}")
    print("each second of the hold (reads/s / p99 ms):", " ".join(seconds))


if __name__ == "__main__":
    main()
