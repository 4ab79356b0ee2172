"""The outbox relay: moves committed photo jobs from each shard's outbox to the Redis stream.

A review and its job commit in one transaction on the shard; this relay is what makes a
review written while Redis is down still get processed once Redis is back.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import psycopg
import redis
from prometheus_client import Counter
from reviewlab_common import queue
from reviewlab_common.db import ClusterRouter, DatabaseUnavailable

log = logging.getLogger(__name__)
RELAYED = Counter("outbox_relayed_total", "Outbox rows published to the job stream", ["shard"])
BATCH = 50


def relay_once(shard: ClusterRouter, client: redis.Redis) -> int:
    """Publish one batch of unpublished outbox rows; returns how many were published."""

    def move(conn: psycopg.Connection[Any]) -> int:
        rows = conn.execute(
            "SELECT id, payload FROM outbox WHERE published_at IS NULL "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            (BATCH,),
        ).fetchall()
        for row_id, payload in rows:
            job = payload if isinstance(payload, dict) else json.loads(payload)
            queue.publish(client, {**job, "outbox_id": row_id})
        if rows:
            conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)", ([r[0] for r in rows],)
            )
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
