"""A chaos run leaves nothing in the shop: its reviews, their outbox rows, its photos and its
Idempotency-Keys go once the report has read the writes back, or when the run is cut short."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from reviewlab_common import db, photos, storage
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Cluster, Topology

from reviewlab_lab.errors import LabFailed

# How long a step waits for a cluster to have a writable primary again (after a failover).
PRIMARY_S = 60.0
T = TypeVar("T")


@dataclass(frozen=True)
class Removed:
    reviews: int
    photos: int
    keys: int

    def __str__(self) -> str:
        return (
            f"{self.reviews} reviews, {self.photos} photo objects and "
            f"{self.keys} Idempotency-Keys of the run deleted"
        )


def on_primary(
    topology: Topology,
    cluster: Cluster,
    work: Callable[[psycopg.Connection[Any]], T],
    within: float = PRIMARY_S,
) -> T:
    """WORK in one transaction on CLUSTER's primary, retried while a primary settles."""
    password = lab_secrets.load(topology).app_password
    info = db.cluster_conninfo(
        cluster, user=db.APP_USER, password=password, app="chaos", session="read-write"
    )
    limit = time.monotonic() + within
    while True:
        try:
            with psycopg.connect(info) as conn:
                return work(conn)
        except psycopg.OperationalError as exc:
            if time.monotonic() > limit:
                raise LabFailed(f"{cluster.name}'s primary did not answer: {exc}") from exc
            time.sleep(1)


def remove_run(topology: Topology, *, body_prefix: str, key_prefix: str, user_id: int) -> Removed:
    """Delete USER_ID's reviews whose body starts with BODY_PREFIX (with their outbox rows and
    photos) and USER_ID's Idempotency-Keys that start with KEY_PREFIX. Another user's rows stay:
    a concurrent test that copied a body cleans up its own."""
    pattern = like_prefix(body_prefix)
    mine = "SELECT id FROM reviews WHERE user_id = %s AND body LIKE %s"

    def delete_reviews(conn: psycopg.Connection[Any]) -> list[tuple[str | None, str | None]]:
        conn.execute(f"DELETE FROM outbox WHERE review_id IN ({mine})", (user_id, pattern))
        rows = conn.execute(
            "DELETE FROM reviews WHERE user_id = %s AND body LIKE %s "
            "RETURNING photo_original_key, photo_cutout_key",
            (user_id, pattern),
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    reviews, objects = 0, set()
    for cluster in topology.shards:
        for original, cutout in on_primary(topology, cluster, delete_reviews):
            reviews += 1
            objects |= {original, cutout, photos.cutout_mask_key(cutout) if cutout else None}
    keys = 0
    for cluster in topology.clusters.values():
        if cluster in topology.shards:
            continue

        def delete_keys(conn: psycopg.Connection[Any]) -> int:
            done = conn.execute(
                "DELETE FROM idempotency_keys WHERE user_id = %s AND key LIKE %s",
                (user_id, like_prefix(key_prefix)),
            )
            return done.rowcount

        keys += on_primary(topology, cluster, delete_keys)
    stored = sorted(o for o in objects if o)
    if stored:
        s3 = storage.client(topology)
        for start in range(0, len(stored), 1000):
            chunk = [{"Key": key} for key in stored[start : start + 1000]]
            s3.delete_objects(Bucket=storage.MEDIA_BUCKET, Delete={"Objects": chunk})
    return Removed(reviews, len(stored), keys)


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching PREFIX literally, then anything."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
