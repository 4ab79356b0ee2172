"""`reviewlab reset --data`: every review gone, the lab left running.

Clears what reviews wrote (reviews, their helpful votes and outbox rows on every shard, the
catalog's Idempotency-Keys, the photos' originals and cutouts in MinIO) and keeps what the lab
is made of: nodes, users, products and their images, the shard map, schemas and secrets.
"""

from __future__ import annotations

from typing import Any

from reviewlab_common import photos, storage
from reviewlab_common.db import database_of
from reviewlab_common.topology import Topology

from reviewlab_lab.dbmigrate import superuser_connection

SHARD_TABLES = ("review_votes", "outbox", "reviews")
CATALOG_TABLES = ("idempotency_keys",)


def _truncate(topology: Topology, cluster_name: str, tables: tuple[str, ...]) -> int:
    """Empty TABLES on the cluster's primary; how many rows the last of them held."""
    cluster = topology.clusters[cluster_name]
    with superuser_connection(topology, cluster, database_of(cluster)) as conn:
        row = conn.execute(f"SELECT count(*) FROM {tables[-1]}").fetchone()
        conn.execute(f"TRUNCATE {', '.join(tables)}")
    return int(str(row[0])) if row else 0


def _delete_prefix(s3: Any, prefix: str) -> int:
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=storage.MEDIA_BUCKET, Prefix=prefix
    ):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=storage.MEDIA_BUCKET, Delete={"Objects": keys})
            deleted += len(keys)
    return deleted


def clear_reviews(topology: Topology) -> list[str]:
    """Clear every review and its photos; one line per place cleared."""
    said = []
    for cluster in topology.shards:
        count = _truncate(topology, cluster.name, SHARD_TABLES)
        said.append(f"{cluster.name}: {count} reviews deleted (with their votes and outbox rows)")
    for name in topology.clusters:
        if topology.clusters[name] not in topology.shards:
            _truncate(topology, name, CATALOG_TABLES)
            said.append(f"{name}: Idempotency-Keys cleared; users and products kept")
    s3 = storage.client(topology)
    removed = sum(_delete_prefix(s3, prefix) for prefix in (photos.ORIGINALS, photos.CUTOUTS))
    said.append(f"minio: {removed} photos deleted (originals and cutouts); product images kept")
    return said
