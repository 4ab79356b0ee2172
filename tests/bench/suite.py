"""`make bench`: every figure of the lab beside its ceiling, in one run, into docs/benchmarks.md.

Run: python -m tests.bench.suite [--duration S] [--connections N] [--out PATH]
Not a test: it measures (a) the nginx ceiling on the vIP, (b) the FastAPI floor through it
beside a bare FastAPI peer behind the same nginx (bench_peer.py),
(c) a hot product listing, uncached and through the vIP's micro-cache, (d) a CDN HIT beside
nginx serving the same bytes from disk, (e) 100 concurrent cold requests for one new cutout
and the origin fetches they caused, (f) POST to cutout ready with 10 shoppers, (g) the
worker's stages beside raw inference, (h) the vIP pair's failover over five kills of the
holder. The goals are reported, never asserted.
The parts stay runnable alone: bench_lb.py, bench_flow.py, bench_worker.py, vip_failover.py.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from reviewlab_common import cdn, storage, tokens
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology
from reviewlab_lab import edgestats, install, loadbalancer, runtimes
from reviewlab_lab.paths import REPO
from reviewlab_worker.segmentation import STAGES, PortraitSegmenter

from tests.bench import bench_flow, bench_lb, bench_peer, bench_worker, vip_failover

LOADTEST_USER = 5
LISTING_PRODUCT = 7
LISTING = f"/api/products/{LISTING_PRODUCT}/reviews"
LISTING_PAGE = 20  # the listing's default page size
BURST = 100
SHOPPERS = 10
FLOWS = 30
WORKER_RUNS = 10
# What follows this line in docs/benchmarks.md is written by hand (before/after tables,
# profiles) and kept when `make bench` writes the measured part above it again.
KEPT = "<!-- kept by make bench: written by hand below this line -->"


@dataclass(frozen=True)
class Figure:
    """One line of the table: what, how much, and against what."""

    label: str
    value: str
    ratio: str = ""
    goal: str = ""
    verdict: str = ""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def rps(result: bench_lb.Result) -> str:
    errors = f", {result.errors} errors" if result.errors else ""
    return f"{result.per_second:,.0f} req/s (p99 {result.p99_ms:.1f} ms{errors})"


@contextmanager
def static_nginx(address: str, files: dict[str, bytes]) -> Iterator[str]:
    """nginx (one worker, like the edge) serving FILES from disk on ADDRESS; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="bench-static-") as tmp:
        root = Path(tmp) / "root"
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        with socket.socket() as probe:  # a free port on the edge's own address
            probe.bind((address, 0))
            port = probe.getsockname()[1]
        temp = " ".join(f"{kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy"))
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            f"worker_processes 1; daemon off; master_process off; pid {tmp}/nginx.pid;\n"
            f"error_log {tmp}/error.log; events {{ worker_connections 1024; }}\n"
            # The edge's own file settings, so the two differ only in the cache in between.
            f"http {{ access_log off; sendfile on; {temp}\n"
            f"  default_type application/octet-stream;\n"
            f"  server {{ listen {address}:{port}; root {root}; }} }}\n"
        )
        argv = ["nginx", "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log"]
        server = subprocess.Popen(argv)
        url = f"http://{address}:{port}"
        try:
            limit = time.monotonic() + 5
            while time.monotonic() < limit:
                try:
                    httpx.get(f"{url}/", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.05)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_cutout(vip: str, token: str, run: str) -> tuple[int, str]:
    """A review with a new photo, once its cutout is ready: (review id, cutout path)."""
    flow = bench_flow.one_flow(vip, token, f"bench {run}", 0, timeout_s=60)
    if flow.review_id is None or flow.ready_s is None:
        raise SystemExit(f"make bench: no cutout to measure ({flow.outcome})")
    with httpx.Client(base_url=vip, timeout=15) as http:
        reply = http.get(f"/api/reviews/{flow.review_id}", headers=bearer(token))
        url = reply.json()["photo"]["cutout_url"]
    return flow.review_id, httpx.URL(url).raw_path.decode()


def seed_listing(vip: str, token: str, run: str, made: list[int]) -> None:
    """A full first page of text reviews on the listed product, so that (c) serializes a page
    of reviews, not an empty list. Their ids go into MADE, which the bench deletes."""
    with httpx.Client(base_url=vip, timeout=15, headers=bearer(token)) as http:
        for n in range(LISTING_PAGE):
            form = {"product_id": LISTING_PRODUCT, "rating": "4", "body": f"bench {run} {n}"}
            reply = http.post("/api/reviews", data=form)
            if reply.status_code != 201:
                raise SystemExit(f"make bench: could not seed the listing: {reply.text[:200]}")
            made.append(int(reply.json()["id"]))


def cold_burst(topology: Topology, path: str) -> tuple[int, Counter[str], int]:
    """BURST requests at once for one object no tier holds yet, spread over every edge:
    (fetches from MinIO the shield logged, X-Cache-Status counts, failures)."""
    edges = topology.of_kind("edge")
    ready = threading.Barrier(BURST)

    def one(n: int) -> str | None:
        with httpx.Client(base_url=edges[n % len(edges)].host_url, timeout=30) as http:
            http.get("/healthz")  # connected before the burst starts
            ready.wait()
            reply = http.get(path)
        return str(reply.headers.get("X-Cache-Status")) if reply.status_code == 200 else None

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        answers = list(pool.map(one, range(BURST)))
    # The shield writes its log in batches, at most a second late.
    limit = time.monotonic() + 5
    while (fetches := edgestats.shield_fetches(topology, path)) < 1 and time.monotonic() < limit:
        time.sleep(0.1)
    statuses = Counter(a for a in answers if a is not None)
    return fetches, statuses, answers.count(None)


@contextmanager
def unpushed_object(topology: Topology, body: bytes) -> Iterator[str]:
    """BODY as a new object straight in MinIO, which no CDN tier was told of: its /media/
    path. Removed from MinIO and purged from every tier after."""
    s3 = storage.client(topology)
    key = f"cutouts/bench-cold-{uuid.uuid4().hex}.jpg"
    storage.put_object(s3, key, body, content_type="image/jpeg")
    try:
        yield f"/media/{key}"
    finally:
        s3.delete_object(Bucket=storage.MEDIA_BUCKET, Key=key)
        cdn.purge(topology, [key], cdn.purge_key(lab_secrets.load(topology).token_secret))


def worker_stage_totals(topology: Topology) -> dict[str, tuple[float, float]]:
    """worker_stage_seconds summed over every worker: stage -> (seconds, count)."""
    totals: dict[str, list[float]] = {}
    for worker in topology.of_kind("worker"):
        text = httpx.get(f"{worker.url}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            if family.name != "worker_stage_seconds":
                continue
            for sample in family.samples:
                suffix = sample.name.removeprefix("worker_stage_seconds")
                if suffix in ("_sum", "_count"):
                    pair = totals.setdefault(sample.labels["stage"], [0.0, 0.0])
                    pair[0 if suffix == "_sum" else 1] += sample.value
    return {stage: (pair[0], pair[1]) for stage, pair in totals.items()}


def live_stage_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Mean ms per stage of the jobs done between two readings."""
    means = {}
    for stage, (seconds, count) in after.items():
        was_s, was_n = before.get(stage, (0.0, 0.0))
        if count > was_n:
            means[stage] = (seconds - was_s) / (count - was_n) * 1000
    return means


def measure(topology: Topology, duration: int, connections: int) -> tuple[list[Figure], str]:
    lb = topology.vip
    vip = topology.nodes[topology.services["www"]].host_url
    edge = topology.nodes[topology.services["cdn"]]
    token = tokens.issue(lab_secrets.load(topology).token_secret, LOADTEST_USER)
    signed_in = bearer(token)
    run = f"{time.time():.0f}"

    def wrk(label: str, url: str, headers: dict[str, str] | None = None) -> bench_lb.Result:
        progress(f"  {label}: wrk {duration} s x {connections} connections")
        return bench_lb.wrk(label, url, duration, connections, headers)

    ceiling = wrk("(a) nginx ceiling", f"http://{lb.host_address}:{lb.ceiling_port}/")
    with bench_peer.running(topology, runtimes.of(topology)) as peer_url:
        # Side by side: the bare peer, our /healthz, the peer again (the better of its two).
        peers = [wrk("(b) bare FastAPI peer", peer_url)] if peer_url else []
        floor = wrk("(b) FastAPI floor", f"{vip}/healthz")
        if peer_url:
            peers.append(wrk("(b) bare FastAPI peer", peer_url))
    peer = max(peers, key=lambda r: r.per_second) if peers else None
    # Every review the bench writes is deleted, also when a step fails (the shop stays clean).
    made: list[int] = []
    try:
        seed_listing(vip, token, run, made)
        listing = wrk(
            f"(c) hot listing of {len(made)} reviews, uncached", f"{vip}{LISTING}", signed_in
        )
        cached = wrk("(c) hot listing, micro-cache", f"{vip}{LISTING}")

        progress("  (d)/(e) a new cutout")
        review_id, cutout = new_cutout(vip, token, run)
        made.append(review_id)
        cutout_bytes = httpx.get(f"{edge.host_url}{cutout}", timeout=15).content
        # The worker pushed the cutout to every edge: the burst asks for a copy nobody pushed.
        with unpushed_object(topology, cutout_bytes) as cold:
            origin_fetches, statuses, burst_failures = cold_burst(topology, cold)
        with static_nginx(edge.host_address, {"cutout.jpg": cutout_bytes}) as static:
            # Alternated, the better of two each: the machine's other load hits both alike.
            hits, disks = [], []
            for _ in range(2):
                hits.append(wrk("(d) CDN HIT", f"{edge.host_url}{cutout}"))
                disks.append(wrk("(d) nginx from disk", f"{static}/cutout.jpg"))
        cdn_hit = max(hits, key=lambda r: r.per_second)
        from_disk = max(disks, key=lambda r: r.per_second)

        progress(f"  (f) {FLOWS} reviews with photos, {SHOPPERS} at a time")
        before = worker_stage_totals(topology)
        with ThreadPoolExecutor(max_workers=SHOPPERS) as pool:
            flows = list(
                pool.map(lambda n: bench_flow.one_flow(vip, token, run, n, 60), range(1, FLOWS + 1))
            )
        live = live_stage_means(before, worker_stage_totals(topology))
        made += [f.review_id for f in flows if f.review_id is not None]
        ready = [f.ready_s * 1000 for f in flows if f.ready_s is not None]
    finally:
        for made_id in made:
            httpx.delete(f"{vip}/api/reviews/{made_id}", headers=signed_in, timeout=15)

    progress("  (g) the worker's stages beside raw inference")
    segmenter = PortraitSegmenter(install.current().model, num_threads=1)
    raw_ms, rows = bench_worker.measure(segmenter, WORKER_RUNS, max_side=1024)
    at_1024 = next(row for row in rows if row[0] == 1024)

    p95 = bench_flow.percentile(ready, 95) if ready else float("inf")
    figures = [
        Figure("(a) nginx static reply on the vIP (the ceiling)", rps(ceiling), "1"),
        Figure(
            "(b) `GET /healthz` through the vIP (the FastAPI floor)",
            rps(floor),
            f"{floor.per_second / ceiling.per_second:.3f} × (a)",
        ),
        Figure(
            "(b) a bare FastAPI app (one async `/healthz`, tests/bench/bare_app.py) beside each "
            "web server, same uvicorn settings, behind the same nginx",
            rps(peer) if peer else "not measured: the peers did not answer through the vIP",
            f"{floor.per_second / peer.per_second:.2f} = (b) ÷ peer" if peer else "",
            "(b) ≥ 0.9 × peer",
            verdict(floor.per_second >= 0.9 * peer.per_second) if peer else "",
        ),
        Figure(
            f"(c) hot listing `GET {LISTING}` ({LISTING_PAGE} reviews), signed in "
            "(bypasses the micro-cache)",
            rps(listing),
            f"{listing.per_second / floor.per_second:.2f} × (b)",
            "≥ 0.8 × (b)",
            verdict(listing.per_second >= 0.8 * floor.per_second),
        ),
        Figure(
            "(c) the same listing, anonymous, through the vIP's 1 s micro-cache",
            rps(cached),
            f"{cached.per_second / ceiling.per_second:.2f} × (a); "
            f"{cached.per_second / listing.per_second:.0f} × uncached",
            "≥ 0.3 × (a)",
            verdict(cached.per_second >= 0.3 * ceiling.per_second),
        ),
        Figure(
            f"(d) CDN edge HIT of a {len(cutout_bytes) // 1024} KB cutout",
            rps(cdn_hit),
            f"{cdn_hit.per_second / from_disk.per_second:.2f} × nginx from disk",
            "≥ 0.8",
            verdict(cdn_hit.per_second >= 0.8 * from_disk.per_second),
        ),
        Figure("(d) nginx serving the same bytes from disk (1 worker)", rps(from_disk), "1"),
        Figure(
            f"(e) {BURST} concurrent cold requests for one unpushed object, over both edges",
            f"{origin_fetches} fetch(es) from MinIO; X-Cache-Status "
            + ", ".join(f"{s} {n}" for s, n in statuses.most_common())
            + (f"; {burst_failures} failed" if burst_failures else ""),
            "",
            "exactly 1",
            verdict(origin_fetches == 1 and not burst_failures),
        ),
        Figure(
            f"(f) POST → cutout ready, {SHOPPERS} concurrent shoppers, {FLOWS} photos",
            f"p50 {bench_flow.percentile(ready, 50):.0f} ms, p95 {p95:.0f} ms"
            + (f"; {FLOWS - len(ready)} not ready" if len(ready) < FLOWS else "")
            if ready
            else "none ready",
            "",
            "p95 ≤ 400 ms",
            verdict(p95 <= 400 and len(ready) == FLOWS),
        ),
        Figure(
            "(g) worker total for a 1024 px JPEG (in-process, median of "
            f"{WORKER_RUNS}) vs raw inference {raw_ms:.1f} ms",
            f"{at_1024[2]['total']:.1f} ms",
            f"{at_1024[3]:.1f} × raw inference",
            "≤ 6 ×",
            verdict(at_1024[3] <= 6),
        ),
    ]
    stages = " | ".join(f"{stage} {at_1024[2][stage]:.1f}" for stage in STAGES)
    detail = f"(g) in-process stages at 1024 px, median ms: {stages}\n"
    if live:
        live_text = " | ".join(f"{stage} {ms:.1f}" for stage, ms in sorted(live.items()))
        detail += f"(g) the live workers during (f), mean ms per job: {live_text}\n"
    return figures, detail


def markdown(figures: list[Figure], detail: str, duration: int, connections: int) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (tests/bench/suite.py): every figure measured in one run, on",
        "the same machine, with the whole lab running. The Python tier is the bottleneck by",
        "design; read the ratios, not the absolutes. Goals are reported, never asserted.",
        "",
        f"- run: {time.strftime('%Y-%m-%d %H:%M')}, wrk -t2 -c{connections} -d{duration}s "
        "per throughput figure",
        f"- machine: {bench_lb.machine()}",
        "",
        "| figure | measured | ratio | goal | |",
        "|---|---|---|---|---|",
    ]
    for f in figures:
        lines.append(f"| {f.label} | {f.value} | {f.ratio} | {f.goal} | {f.verdict} |")
    lines += ["", *(f"- {line}" for line in detail.strip().splitlines()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk figure (5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    if not (1 <= args.duration <= bench_lb.MAX_DURATION_S) or not (
        1 <= args.connections <= bench_lb.MAX_CONNECTIONS
    ):
        parser.error(
            f"keep the load bounded: --duration 1..{bench_lb.MAX_DURATION_S}, "
            f"--connections 1..{bench_lb.MAX_CONNECTIONS}"
        )
    topology = runtimes.activate()
    vip = topology.nodes[topology.services["www"]].host_url
    problem = bench_flow.vip_answers(vip)
    if problem:
        print(f"make bench: the lab is not answering ({problem}); run `make up` first")
        return 2
    runtime = runtimes.of(topology)
    mode = runtime.lb_mode()
    # The micro-cache and the routing live in layer 7.
    runtime.apply_lb_mode(loadbalancer.LbMode("l7", mode.algorithm))
    try:
        figures, detail = measure(topology, args.duration, args.connections)
        progress(f"(h) the vIP pair: {vip_failover.KILLS} kills of the holder under reads")
        kills = vip_failover.measure(topology)
    finally:
        runtime.apply_lb_mode(mode)
    figures.append(
        Figure(
            f"(h) vIP failover: the holder SIGKILLed {len(kills)} times under "
            f"{vip_failover.CLIENTS} readers",
            vip_failover.summary(kills),
            "",
            "≤ 3 s, 0 failed after the retry",
            verdict(
                statistics.median(k.moved_s for k in kills) <= 3
                and not sum(k.failed_after_retry for k in kills)
            ),
        )
    )
    detail += (
        "(h) each kill: "
        + "; ".join(
            f"{k.killed} → {k.took_over} {k.moved_s:.2f} s, {k.failed_first} of {k.reads} reads "
            f"failed once, {k.failed_after_retry} after the retry"
            for k in kills
        )
        + "\n"
    )
    text = markdown(figures, detail, args.duration, args.connections)
    if args.out.exists() and KEPT in (previous := args.out.read_text()):
        text += "\n" + previous[previous.index(KEPT) :]
    args.out.write_text(text)
    print(text)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
