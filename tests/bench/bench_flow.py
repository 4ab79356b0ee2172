"""POST-to-cutout-ready latency: reviews with photos through the vIP, end to end.

Run: python tests/bench/bench_flow.py [--count N] [--concurrency C] [--user ID]
Not a test. Each review gets a new photo (the portrait with its own JPEG comment, so a new
content-addressed original); the review is polled with its consistency token every 50 ms
until its cutout is ready. Prints p50/p95/max and throughput; deletes the reviews afterwards
unless --keep.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import httpx
from reviewlab_common import consistency, tokens
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.photos import PhotoStatus
from reviewlab_common.topology import Topology
from reviewlab_lab import photos, runtimes

CONSISTENCY = consistency.HEADER
POLL_S = 0.05
MAX_COUNT = 500
MAX_CONCURRENCY = 16
PRODUCTS = range(1, 51)


@dataclass(frozen=True)
class Flow:
    review_id: int | None
    post_s: float
    ready_s: float | None  # None: not ready (failed or timed out)
    outcome: str


def bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def one_flow(
    vip: str,
    token: str,
    run: str,
    n: int,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
) -> Flow:
    """POST one review with a photo, then poll it until the cutout is ready (every request
    carries HEADERS, if given)."""
    product_id = PRODUCTS[n % len(PRODUCTS)]
    with httpx.Client(base_url=vip, timeout=30, headers=dict(headers or {})) as http:
        started = time.perf_counter()
        posted = http.post(
            "/api/reviews",
            headers={"Authorization": f"Bearer {token}"},
            data={"product_id": str(product_id), "rating": "5", "body": f"bench-flow {run} #{n}"},
            files={"photo": ("photo.jpg", photos.portrait(f"bench-flow {run} #{n}"), "image/jpeg")},
        )
        post_s = time.perf_counter() - started
        if posted.status_code != 201:
            return Flow(None, post_s, None, f"POST {posted.status_code}: {posted.text[:120]}")
        review_id = int(posted.json()["id"])
        consistency = posted.headers[CONSISTENCY]
        http.cookies.clear()  # the token header alone decides read-your-writes
        limit = started + timeout_s
        while time.perf_counter() < limit:
            reply = http.get(f"/api/reviews/{review_id}", headers={CONSISTENCY: consistency})
            if reply.status_code == 200:
                photo = reply.json()["photo"]
                if photo["status"] == PhotoStatus.READY:
                    return Flow(review_id, post_s, time.perf_counter() - started, "ready")
                if photo["status"] == PhotoStatus.FAILED:
                    return Flow(review_id, post_s, None, f"failed: {photo['error']}")
            time.sleep(POLL_S)
        return Flow(review_id, post_s, None, f"not ready within {timeout_s:.0f} s")


def vip_answers(vip: str) -> str | None:
    try:
        reply = httpx.get(f"{vip}/api/products/1", timeout=5)
    except httpx.HTTPError as exc:
        return f"{vip} did not answer: {exc}"
    return None if reply.status_code == 200 else f"{vip} answered {reply.status_code}"


def delete_all(vip: str, token: str, flows: list[Flow]) -> None:
    with httpx.Client(base_url=vip, timeout=30) as http:
        for flow in flows:
            if flow.review_id is not None:
                http.delete(
                    f"/api/reviews/{flow.review_id}", headers={"Authorization": f"Bearer {token}"}
                )


def report(flows: list[Flow], wall_s: float, concurrency: int) -> None:
    ready = [f.ready_s for f in flows if f.ready_s is not None]
    posts = [f.post_s for f in flows]
    failed = [f for f in flows if f.ready_s is None]
    print(f"\n{len(flows)} reviews with photos through the vIP, concurrency {concurrency}")
    print(f"{'':>24} {'p50':>8} {'p95':>8} {'max':>8}")
    print(
        f"{'POST (ms)':>24} {percentile(posts, 50) * 1000:8.0f} "
        f"{percentile(posts, 95) * 1000:8.0f} {max(posts) * 1000:8.0f}"
    )
    if ready:
        print(
            f"{'POST to cutout ready (ms)':>24} {percentile(ready, 50) * 1000:8.0f} "
            f"{percentile(ready, 95) * 1000:8.0f} {max(ready) * 1000:8.0f}"
        )
    print(f"throughput: {len(ready) / wall_s:.2f} photos/s ready ({len(ready)} in {wall_s:.1f} s)")
    if failed:
        print(f"{len(failed)} not ready:")
        for flow in failed[:10]:
            print(f"  review {flow.review_id}: {flow.outcome}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=bounded(1, MAX_COUNT), default=50, help="reviews (50)")
    parser.add_argument(
        "--concurrency", type=bounded(1, MAX_CONCURRENCY), default=1, help="in flight (1)"
    )
    parser.add_argument("--user", type=bounded(1, 5), default=5, help="author (5: loadtest)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per photo, seconds (60)")
    parser.add_argument("--keep", action="store_true", help="keep the reviews afterwards")
    args = parser.parse_args(argv)

    topology: Topology = runtimes.activate()
    vip = topology.nodes[topology.services["www"]].host_url
    problem = vip_answers(vip)
    if problem:
        progress(f"the lab is not answering ({problem}): run `make up` first")
        return 2
    token = tokens.issue(lab_secrets.load(topology).token_secret, args.user)
    run = uuid.uuid4().hex[:8]
    progress(f"bench-flow {run}: {args.count} reviews, concurrency {args.concurrency}, via {vip}")

    flows: list[Flow] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        futures = [
            pool.submit(one_flow, vip, token, run, n, args.timeout) for n in range(args.count)
        ]
        for future in as_completed(futures):
            flow = future.result()
            flows.append(flow)
            done = len(flows)
            took = f"{flow.ready_s * 1000:.0f} ms" if flow.ready_s is not None else flow.outcome
            progress(f"  {done:>3}/{args.count} review {flow.review_id}: {took}")
    wall_s = time.perf_counter() - started

    report(flows, wall_s, args.concurrency)
    if not args.keep:
        delete_all(vip, token, flows)
    return 0 if all(f.ready_s is not None for f in flows) else 1


if __name__ == "__main__":
    sys.exit(main())
