"""What tracing costs: the hot listing and POST -> cutout ready, traced and untraced, side by
side in one run; and the memory of the trace store.

Usage: python -m tests.bench.bench_tracing [--seconds 10] [--connections 16] [--flows 20]
Not a test. A *traced* request carries no traceparent: the vIP starts a sampled trace, as for
any shopper, and every hop records and sends its spans. An *untraced* request carries a W3C
traceparent whose sampled flag is 0: the vIP passes it on, every service follows its parent's
decision, and no hop records or sends a span (the instrumentation still runs, as in a lab whose
sample_ratio is turned down). The two kinds alternate, and each figure is the better of two
rounds. Every review the bench writes is deleted at the end, also when a step fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from reviewlab_common import secrets as lab_secrets
from reviewlab_common import tokens, tracing
from reviewlab_common.topology import Topology
from reviewlab_lab import runtimes
from reviewlab_lab.runtimes.native import NativeRuntime

from tests.bench import bench_flow, bench_lb
from tests.bench.procfs import pss_bytes
from tests.bench.suite import LISTING, LOADTEST_USER, bearer, seed_listing

# Sampled flag 0 (the last field): "do not record", which every hop honours.
UNSAMPLED = {"traceparent": f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-00"}
SHOPPERS = 5
ROUNDS = 2


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def flows(vip: str, token: str, run: str, count: int, traced: bool) -> list[bench_flow.Flow]:
    headers = None if traced else UNSAMPLED
    with ThreadPoolExecutor(max_workers=SHOPPERS) as pool:
        return list(
            pool.map(
                lambda n: bench_flow.one_flow(vip, token, run, n, 60, headers=headers),
                range(1, count + 1),
            )
        )


def ready_ms(done: list[bench_flow.Flow]) -> list[float]:
    return [f.ready_s * 1000 for f in done if f.ready_s is not None]


def spans_of_review(topology: Topology, review_id: int) -> int:
    """How many traces in the store name REVIEW_ID (the attribute review.id)."""
    reply = httpx.get(
        f"{tracing.store_url(topology, from_machine=True)}/api/v2/traces",
        params={"annotationQuery": f"review.id={review_id}", "lookback": 3_600_000, "limit": 10},
        timeout=10,
    )
    reply.raise_for_status()
    return len(reply.json())


def store_memory_mib(topology: Topology) -> float | None:
    """The trace store's PSS, natively (its processes are this machine's)."""
    runtime = runtimes.of(topology)
    if not isinstance(runtime, NativeRuntime):
        return None
    store = topology.of_kind("tracing")[0]
    return sum(pss_bytes(pid) for pid in runtime.node_pids(store.name)) / 2**20


def overhead(traced: float, untraced: float) -> str:
    return f"{100 * (1 - traced / untraced):+.1f} %"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=bench_flow.bounded(2, 60), default=10)
    parser.add_argument("--connections", type=bench_flow.bounded(1, 64), default=16)
    parser.add_argument("--flows", type=bench_flow.bounded(4, 100), default=20)
    args = parser.parse_args(argv)
    topology = runtimes.activate()
    if not tracing.enabled(topology):
        raise SystemExit("bench_tracing: tracing is off in the topology ([tracing] enabled)")
    vip = topology.nodes[topology.services["www"]].host_url
    missing = bench_flow.vip_answers(vip)
    if missing:
        raise SystemExit(f"bench_tracing: {missing}; start the lab with `make up`")
    token = tokens.issue(lab_secrets.load(topology).token_secret, LOADTEST_USER)
    signed_in = bearer(token)
    run = f"tracing {time.time():.0f}"
    made: list[int] = []
    listing: dict[bool, list[bench_lb.Result]] = {True: [], False: []}
    ready: dict[bool, list[float]] = {True: [], False: []}
    try:
        seed_listing(vip, token, run, made)
        for n in range(ROUNDS):
            for traced in (True, False):
                label = f"hot listing, {'traced' if traced else 'untraced'}, round {n + 1}"
                progress(f"  {label}: wrk {args.seconds} s x {args.connections} connections")
                headers = signed_in if traced else {**signed_in, **UNSAMPLED}
                listing[traced].append(
                    bench_lb.wrk(label, f"{vip}{LISTING}", args.seconds, args.connections, headers)
                )
        for n in range(ROUNDS):
            for traced in (True, False):
                count = args.flows // (2 * ROUNDS) * 2
                kind = "traced" if traced else "untraced"
                progress(f"  POST -> ready, {kind}, round {n + 1}: {count} reviews with photos")
                done = flows(vip, token, f"{run} {kind} {n}", count, traced)
                made += [f.review_id for f in done if f.review_id is not None]
                ready[traced] += ready_ms(done)
        untraced_ids = made[-1:]
        time.sleep(3)  # the exporters send in batches; give the last ones time to land
        stray = sum(spans_of_review(topology, review_id) for review_id in untraced_ids)
        memory = store_memory_mib(topology)
    finally:
        with httpx.Client(base_url=vip, timeout=15, headers=signed_in) as http:
            for review_id in made:
                http.delete(f"/api/reviews/{review_id}")

    best = {traced: max(r.per_second for r in listing[traced]) for traced in (True, False)}
    p95 = {traced: bench_flow.percentile(ready[traced], 95) for traced in (True, False)}
    p50 = {traced: bench_flow.percentile(ready[traced], 50) for traced in (True, False)}
    print(f"runtime {topology.lab.runtime.name}, {bench_lb.machine()}")
    print(
        f"hot listing (signed in, via the vIP): traced {best[True]:.0f} req/s, untraced "
        f"{best[False]:.0f} req/s; traced / untraced {best[True] / best[False]:.2f} "
        f"(throughput cost {overhead(best[True], best[False])})"
    )
    print(
        f"POST -> cutout ready, {SHOPPERS} shoppers: traced p50 {p50[True]:.0f} ms p95 "
        f"{p95[True]:.0f} ms ({len(ready[True])} ready), untraced p50 {p50[False]:.0f} ms p95 "
        f"{p95[False]:.0f} ms ({len(ready[False])} ready); p95 traced / untraced "
        f"{p95[True] / p95[False]:.2f}"
    )
    print(f"traces stored for the untraced review checked: {stray} (0 expected)")
    if memory is not None:
        print(f"trace store ({topology.of_kind('tracing')[0].name}) memory: {memory:.0f} MiB PSS")
    return 0 if stray == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
