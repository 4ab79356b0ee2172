"""The outbox relay: moves committed photo jobs from each shard's outbox to the Redis stream.

A review and its job commit in one transaction on the shard; this relay is what makes a
review written while Redis is down still get processed once Redis is back.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
import redis
from prometheus_client import Counter
from reviewlab_common import queue
from reviewlab_common.db import ClusterRouter, DatabaseUnavailable
from reviewlab_common.photos import PhotoJob
from reviewlab_common.tables import compiled, outbox
from sqlalchemy import BigInteger, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY

log = logging.getLogger(__name__)
RELAYED = Counter("outbox_relayed_total", "Outbox rows published to the job stream", ["shard"])
BATCH = 50
# Compiled once: the oldest unpublished rows (skipping those another relay holds), then
# marking the ones published.
UNPUBLISHED = compiled(
    select(outbox.c.id, outbox.c.payload)
    .where(outbox.c.published_at.is_(None))
    .order_by(outbox.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
MARK_PUBLISHED = compiled(
    update(outbox)
    .where(outbox.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    .values(published_at=func.now())
)


def relay_once(shard: ClusterRouter, client: redis.Redis) -> int:
    """Publish one batch of unpublished outbox rows; returns how many were published."""

    def move(conn: psycopg.Connection[Any]) -> int:
        rows = conn.execute(UNPUBLISHED, {"limit": BATCH}).fetchall()
        for row_id, payload in rows:
            try:
                fields = PhotoJob.from_payload(payload, outbox_id=row_id).to_fields()
            except ValueError as exc:  # InvalidPhotoJob, or not JSON at all
                # Published as it is: the worker dead-letters it, where it can be seen.
                log.warning("outbox row %s of %s: %s", row_id, shard.cluster.name, exc)
                raw = payload if isinstance(payload, dict) else {"payload": payload}
                fields = {**{k: str(v) for k, v in raw.items()}, "outbox_id": str(row_id)}
            queue.publish(client, fields)
        if rows:
            conn.execute(MARK_PUBLISHED, {"ids": [r[0] for r in rows]})
        return len(rows)

    moved, _ = shard.write(move)
    if moved:
        RELAYED.labels(shard.cluster.name).inc(moved)
    return moved


def run(
    shards: list[ClusterRouter], client: redis.Redis, interval_s: float, stop: threading.Event
) -> None:
    """Relay forever (until STOP), polling each shard every INTERVAL_S."""
    while not stop.is_set():
        busy = False
        for shard in shards:
            try:
                busy |= relay_once(shard, client) > 0
            except (DatabaseUnavailable, redis.RedisError) as exc:
                # The rows stay in the outbox; the next round publishes them.
                log.warning("relay %s: %s; will retry", shard.cluster.name, exc)
            except Exception:  # nor may anything else end the relay, or stop the other shards
                log.exception("relay %s failed; will retry", shard.cluster.name)
        if not busy:
            stop.wait(interval_s)
