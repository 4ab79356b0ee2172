"""Online resharding, measured: rows copied per second, the write freeze per bucket, and the
throughput of the chaos runner's steady load during moves beside the steady state before.

`python -m tests.bench.bench_resharding [--rows 20000] [--moves 10]`:

1. copy rate: ROWS reviews are seeded into one bucket (SQL on its shard's primary), the
   bucket is moved to reviews-2 and back with no load, and each move's rows/s is printed;
   the seeded rows are deleted afterwards wherever they are.
2. under load (4 writers, 4 readers through the vIP): a baseline, then MOVES one-bucket
   moves of the load's buckets (to reviews-2 and back, in turn); every freeze, and requests
   per second during the moves as a ratio to the baseline. The map ends as it began.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections import Counter
from typing import Any

from reviewlab_common import shards
from reviewlab_common.topology import Topology
from reviewlab_lab import runtimes
from reviewlab_lab.chaos.load import Load
from reviewlab_lab.chaos.run import remove_writes
from reviewlab_lab.dbmigrate import superuser_connection
from reviewlab_lab.resharding import runner, view
from reviewlab_lab.resharding.fencing import OF_REVIEW

TARGET = "reviews-2"
SEED_BODY = "bench-resharding"
SEED_BUCKET = 5
BASELINE_S = 6.0
LOAD_PRODUCTS = (1, 2, 3, 4, 5)


def seed(topology: Topology, shard: str, rows: int) -> None:
    """ROWS reviews in SEED_BUCKET on SHARD: ids carry the bucket, as the web tier mints them."""
    with superuser_connection(topology, topology.clusters[shard], "reviews") as conn:
        conn.execute(
            "INSERT INTO reviews (id, bucket, product_id, user_id, rating, body) "
            "SELECT ((%(base)s::bigint + i) << 22) | (%(bucket)s << 12) | (i & 4095), "
            "%(bucket)s, 999999, 5, 1 + i %% 5, %(body)s || ' ' || i "
            "FROM generate_series(1, %(rows)s) AS i",
            {"base": 1 << 30, "bucket": SEED_BUCKET, "body": SEED_BODY, "rows": rows},
        )


def unseed(topology: Topology) -> int:
    gone = 0
    for cluster in topology.shards:
        with superuser_connection(topology, cluster, "reviews") as conn, conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            gone += conn.execute(
                f"DELETE FROM reviews WHERE {OF_REVIEW} = %s AND body LIKE %s",
                (SEED_BUCKET, SEED_BODY + " %"),
            ).rowcount
    return gone


def copy_rate(topology: Topology, rows: int) -> list[dict[str, Any]]:
    before = runner.placement(topology)
    source = before[SEED_BUCKET]
    seed(topology, source, rows)
    try:
        there = runner.start(topology, [SEED_BUCKET], TARGET)
        back = runner.start(topology, [SEED_BUCKET], source)
    finally:
        runner.restore(topology, before)
        unseed(topology)
    return [there, back]


def move_apart(bucket: int, to: str) -> dict[str, Any]:
    """One move by `reviewlab shard move`, in its own process: its CPU is not the load's
    (the load generator's threads share one interpreter)."""
    done = subprocess.run(
        ["reviewlab", "shard", "move", str(bucket), "--to", to, "--no-live"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"the move of bucket {bucket} failed: {done.stderr.strip()}")
    report: dict[str, Any] = json.loads(view.LAST.read_text())
    return report


def rate(load: Load, start: float, end: float) -> float:
    done = [o for o in load.outcomes if o.ok and start <= o.at < end]
    return len(done) / max(end - start, 1e-6)


def under_load(topology: Topology, moves: int) -> dict[str, Any]:
    before = runner.placement(topology)
    buckets = sorted({shards.bucket_of(p, topology.lab.buckets) for p in LOAD_PRODUCTS})
    load = Load(topology, writers=4, readers=4)
    reports: list[dict[str, Any]] = []
    load.start()
    try:
        time.sleep(BASELINE_S)
        moving_from = load.now()
        for turn in range(moves):
            bucket = buckets[(turn // 2) % len(buckets)]
            to = TARGET if turn % 2 == 0 else before[bucket]
            reports.append(move_apart(bucket, to))
        moving_to = load.now()
        time.sleep(2)
    finally:
        load.stop()
        runner.restore(topology, before)
        remove_writes(topology, load)
    freezes = sorted(f for r in reports for f in r["freezes_s"])
    steady = rate(load, 1.0, BASELINE_S)
    during = rate(load, moving_from, moving_to)
    return {
        "moves": len(reports),
        "freezes": freezes,
        "steady_rps": steady,
        "moving_rps": during,
        "moving_s": moving_to - moving_from,
        "failed": Counter(f"{o.kind} {o.status}" for o in load.outcomes if not o.ok),
        "map_restored": runner.placement(topology) == before,
    }


def pct(values: list[float], fraction: float) -> float:
    return values[min(len(values) - 1, int(fraction * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--moves", type=int, default=10)
    args = parser.parse_args()
    topology = runtimes.activate(None)
    print("| figure | measured | ratio | goal |")
    print("|---|---|---|---|")
    for report in copy_rate(topology, args.rows):
        step = report["steps"][0]
        print(
            f"| copy of one bucket, {report['rows_copied']:,} rows, {step['source']} -> "
            f"{report['target']} (no load) | {report['rows_per_s']:,} rows/s, freeze "
            f"{report['freezes_s'][0]:.3f} s |  |  |"
        )
    found = under_load(topology, args.moves)
    freezes = found["freezes"]
    p99 = pct(freezes, 0.99)
    print(
        f"| write freeze per one-bucket move under load ({found['moves']} moves) | p50 "
        f"{statistics.median(freezes):.3f} s, p99 {p99:.3f} s, max {max(freezes):.3f} s |  | "
        f"p99 ≤ 1 s: {'met' if p99 <= 1.0 else '**not met**'} |"
    )
    ratio = found["moving_rps"] / found["steady_rps"] if found["steady_rps"] else 0.0
    print(
        f"| requests/s of the steady load during the moves ({found['moving_s']:.1f} s) | "
        f"{found['moving_rps']:.0f} vs {found['steady_rps']:.0f} before | {ratio:.2f} × steady "
        f"|  |"
    )
    failed = ", ".join(f"{n} {what}" for what, n in found["failed"].most_common()) or "none"
    print(f"\nfailed requests (kind, status): {failed}; map as before: {found['map_restored']}")


if __name__ == "__main__":
    main()
