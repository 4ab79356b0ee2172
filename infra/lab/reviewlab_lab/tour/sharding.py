"""Step sharding: a review id carries its bucket, the shard map names the bucket's shard; and
federation: the catalog and the reviews live on separate clusters."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
from reviewlab_common import secrets as lab_secrets
from reviewlab_common import shards, tokens

from reviewlab_lab import users
from reviewlab_lab.chaos import cleanup
from reviewlab_lab.demo import LINEN_SHIRT
from reviewlab_lab.tour.replication import SCRATCH_USER
from reviewlab_lab.tour.step import ClaimFailed, Evidence, Step, TourLab, require

BODY = "tour: which shard"
# Which table each cluster purpose holds, and must not hold.
TABLES = {"catalog": "products", "shard": "reviews"}


@dataclass
class ShardingEvidence(Evidence):
    product: int = 0
    bucket: int = 0
    mapped_shard: str = ""
    review_id: int = 0
    id_bucket: int = -1
    api_shard: str = ""
    rows_per_shard: dict[str, int] = field(default_factory=dict)
    buckets_per_shard: dict[str, int] = field(default_factory=dict)
    # Federation: each cluster's members, and which of the two tables its database holds.
    members: dict[str, set[str]] = field(default_factory=dict)
    tables: dict[str, dict[str, bool]] = field(default_factory=dict)
    read_from: list[str] = field(default_factory=list)


def run(lab: TourLab) -> ShardingEvidence:
    topology = lab.topology
    vip = topology.nodes[topology.services["www"]].host_url
    shard_map = shards.ShardMap(topology)
    shard_map.refresh()
    placement = shard_map.snapshot()
    seen = ShardingEvidence(product=LINEN_SHIRT)
    counted = Counter(placement.values())
    seen.buckets_per_shard = {c.name: counted[c.name] for c in topology.shards}
    seen.bucket = shards.bucket_of(LINEN_SHIRT, topology.lab.buckets)
    seen.mapped_shard = placement.get(seen.bucket, "")

    uid = users.user_id(topology, SCRATCH_USER)
    body = f"{BODY} {uuid.uuid4().hex[:10]}"
    lab.undo_later(
        "the tour's review out of the shop",
        lambda: cleanup.remove_run(topology, body_prefix=body, key_prefix=body, user_id=uid),
    )
    bearer = tokens.issue(lab_secrets.load(topology).token_secret, uid, ttl_s=600)
    posted = httpx.post(
        f"{vip}/api/reviews",
        headers={"Authorization": f"Bearer {bearer}"},
        data={"product_id": str(LINEN_SHIRT), "rating": "5", "body": body},
        timeout=10,
    )
    if posted.status_code != 201:
        raise ClaimFailed(f"the review was not written: {posted.status_code} {posted.text[:200]}")
    review = posted.json()
    seen.review_id, seen.api_shard = int(review["id"]), str(review["shard"])
    seen.id_bucket = shards.bucket_of_review(seen.review_id)

    def holds(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT count(*) FROM reviews WHERE id = %s", (seen.review_id,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    for cluster in topology.shards:
        seen.rows_per_shard[cluster.name] = cleanup.on_primary(topology, cluster, holds)

    # Federation: one request, two clusters.
    product = httpx.get(f"{vip}/api/products/{LINEN_SHIRT}", timeout=10)
    seen.read_from = [s.strip() for s in product.headers.get("X-Read-From", "").split(",")]

    def tables(conn: psycopg.Connection[Any]) -> dict[str, bool]:
        query = "SELECT to_regclass(%s) IS NOT NULL"
        found = {}
        for table in TABLES.values():
            row = conn.execute(query, (f"public.{table}",)).fetchone()
            found[table] = bool(row and row[0])
        return found

    for cluster in (topology.catalog, topology.clusters[seen.mapped_shard or seen.api_shard]):
        seen.members[cluster.name] = {m.name for m in cluster.members}
        seen.tables[cluster.name] = cleanup.on_primary(topology, cluster, tables)

    buckets = ", ".join(f"{s} {n}" for s, n in seen.buckets_per_shard.items())
    seen.shown += [
        f"shard map (etcd {shards.SHARD_MAP_KEY}): buckets per shard: {buckets}",
        f"product {LINEN_SHIRT} -> bucket {seen.bucket} (a hash of the product id) "
        f"-> {seen.mapped_shard}",
        f"new review {seen.review_id}: bits 12-21 of the id say bucket {seen.id_bucket} "
        f"-> {placement.get(seen.id_bucket, '?')}; the API says shard {seen.api_shard}",
        "rows with that id on each shard's primary: "
        + ", ".join(f"{s} {n}" for s, n in seen.rows_per_shard.items()),
        f"GET /api/products/{LINEN_SHIRT} read from: {', '.join(seen.read_from)}",
    ]
    for name, found in seen.tables.items():
        have = [t for t, present in found.items() if present] or ["neither"]
        seen.shown.append(
            f"{name}: members {', '.join(sorted(seen.members[name]))}; holds {', '.join(have)}"
        )
    seen.add("buckets", topology.lab.buckets, "", "the topology's [lab] buckets")
    for shard, count in seen.buckets_per_shard.items():
        seen.add(f"buckets on {shard}", count, "", "the shard map in etcd")
    return seen


def check(seen: ShardingEvidence) -> str:
    require(seen.mapped_shard != "", f"the shard map assigns bucket {seen.bucket} to no shard")
    require(
        seen.id_bucket == seen.bucket,
        f"review {seen.review_id} carries bucket {seen.id_bucket}, not its product's "
        f"bucket {seen.bucket}",
    )
    require(
        seen.api_shard == seen.mapped_shard,
        f"the API wrote to {seen.api_shard}; the map names {seen.mapped_shard}",
    )
    elsewhere = {s: n for s, n in seen.rows_per_shard.items() if s != seen.mapped_shard and n}
    require(
        seen.rows_per_shard.get(seen.mapped_shard) == 1 and not elsewhere,
        f"the review should be on {seen.mapped_shard} alone; rows: {seen.rows_per_shard}",
    )
    catalog = next(name for name in seen.tables if name not in seen.rows_per_shard)
    clusters = {source.split("/")[0] for source in seen.read_from if source}
    require(
        clusters == {catalog, seen.mapped_shard},
        f"the product page should read from {catalog} and {seen.mapped_shard}; "
        f"it read from {seen.read_from}",
    )
    require(
        not seen.members[catalog] & seen.members[seen.mapped_shard],
        f"{catalog} and {seen.mapped_shard} share members",
    )
    expected = {
        catalog: {"products": True, "reviews": False},
        seen.mapped_shard: {"products": False, "reviews": True},
    }
    require(seen.tables == expected, f"the tables per cluster were {seen.tables}")
    return (
        f"review {seen.review_id} carries bucket {seen.bucket}, which the map gives to "
        f"{seen.mapped_shard}, the one shard that holds it; products live on {catalog}, "
        f"reviews on {seen.mapped_shard}, separate nodes"
    )


STEP = Step(
    name="sharding",
    title="Sharding and federation",
    concept=(
        "When one database cannot hold every review, the reviews are split over shards: "
        "each product hashes to one of a fixed set of buckets, and a shard map in etcd gives each "
        "bucket to a shard. Federation splits by function instead: the catalog (users, "
        "products) and the reviews live on separate clusters."
    ),
    claim=(
        "A new review's id carries its product's bucket, the shard map gives that bucket to "
        "one shard, and the review's row is on that shard alone; one product page reads from "
        "the catalog cluster and a review shard, separate nodes with separate tables."
    ),
    saw=(
        "Any web server can find a review from its id alone, with no lookup table: the bucket "
        "is in the id, the shard in the map. Buckets, not shards, are hashed, so adding a "
        "shard moves whole buckets (`reviewlab shard move`, docs/resharding.md) instead of "
        "rehashing every review."
    ),
    run=run,
    check=check,
)
