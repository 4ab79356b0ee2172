"""The outbox relay: moves committed photo jobs from each shard's outbox to the Redis stream.

A review and its job commit in one transaction on the shard; this relay is what makes a
review written while Redis is down still get processed once Redis is back. That transaction
also sends NOTIFY on photos.JOBS_CHANNEL: a listener per shard wakes the relay at once, and
the relay still polls every interval, for a notification missed while a listener reconnects.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import psycopg
import redis
from opentelemetry.trace import SpanKind
from prometheus_client import Counter
from reviewlab_common import queue, tracing
from reviewlab_common.db import ClusterRouter, DatabaseUnavailable
from reviewlab_common.photos import JOBS_CHANNEL, PhotoJob
from reviewlab_common.tables import compiled, outbox
from sqlalchemy import BigInteger, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY

log = logging.getLogger(__name__)
RELAYED = Counter("outbox_relayed_total", "Outbox rows published to the job stream", ["shard"])
BATCH = 50
# A listener that lost its primary connects again after this long (the poll covers the gap).
RELISTEN_S = 1.0
# Compiled once: the oldest unpublished rows (skipping those another relay holds), then
# marking the ones published.
UNPUBLISHED = compiled(
    select(outbox.c.id, outbox.c.payload, outbox.c.traceparent)
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
        for row_id, payload, traceparent in rows:
            try:
                fields = PhotoJob.from_payload(payload, outbox_id=row_id).to_fields()
            except ValueError as exc:  # InvalidPhotoJob, or not JSON at all
                # Published as it is: the worker dead-letters it, where it can be seen.
                log.warning("outbox row %s of %s: %s", row_id, shard.cluster.name, exc)
                raw = payload if isinstance(payload, dict) else {"payload": payload}
                fields = {**{k: str(v) for k, v in raw.items()}, "outbox_id": str(row_id)}
            publish(client, shard.cluster.name, fields, traceparent)
        if rows:
            conn.execute(MARK_PUBLISHED, {"ids": [r[0] for r in rows]})
        return len(rows)

    moved, _ = shard.write(move)
    if moved:
        RELAYED.labels(shard.cluster.name).inc(moved)
    return moved


def publish(
    client: redis.Redis, shard: str, fields: dict[str, str], traceparent: str | None
) -> None:
    """Append one job to the stream as a child span of the request that wrote its row.

    A child, not a link: each row has exactly one cause, and a child keeps POST, relay,
    queue wait and worker in one trace (Zipkin shows no links). The stream entry carries this
    span's traceparent (or the row's, when this worker does not trace) for the worker.
    """
    named = {"review.id": fields.get("review_id", ""), "reviewlab.shard": shard}
    with tracing.span(
        "relay publish", kind=SpanKind.PRODUCER, parent=traceparent, attributes=named
    ):
        carried = tracing.current_traceparent() or traceparent
        queue.publish(client, fields | ({tracing.TRACEPARENT: carried} if carried else {}))


def listen(shard: ClusterRouter, wake: threading.Event, stop: threading.Event) -> None:
    """Set WAKE whenever SHARD's primary reports a committed photo job, until STOP."""
    while not stop.is_set():
        primary = shard.primary_pool.conninfo  # every member: libpq finds the writable one
        try:
            with psycopg.connect(
                primary() if callable(primary) else primary, autocommit=True
            ) as conn:
                conn.execute(f"LISTEN {JOBS_CHANNEL}")
                wake.set()  # a job committed while nobody listened is published now
                while not stop.is_set():
                    for _ in conn.notifies(timeout=RELISTEN_S, stop_after=1):
                        wake.set()
        except psycopg.Error as exc:
            # A failover or a lost primary: the relay's poll publishes meanwhile.
            log.info("relay listener %s: %s; listening again", shard.cluster.name, exc)
            stop.wait(RELISTEN_S)


def start_listeners(shards: list[ClusterRouter], stop: threading.Event) -> threading.Event:
    """One listener thread per shard; the event they set when a photo job was committed."""
    wake = threading.Event()
    for shard in shards:
        threading.Thread(
            target=listen,
            args=(shard, wake, stop),
            name=f"outbox-listener-{shard.cluster.name}",
            daemon=True,
        ).start()
    return wake


def run(
    shards: list[ClusterRouter],
    client: redis.Redis,
    interval_s: float,
    stop: threading.Event,
    wake: threading.Event | None = None,
) -> None:
    """Relay forever (until STOP): at once when WAKE is set, else every INTERVAL_S."""
    while not stop.is_set():
        if wake is not None:
            wake.clear()  # before the round: a job committed during it wakes the next one
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
            (wake or stop).wait(interval_s)
