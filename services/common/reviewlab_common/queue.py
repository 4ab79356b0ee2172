"""The photo job queue: a Redis Stream with one consumer group, and its dead-letter stream."""

from __future__ import annotations

from typing import Any

import redis

from reviewlab_common.topology import Topology

JOBS_STREAM = "photo-jobs"
DEAD_LETTER_STREAM = "photo-jobs-dead"
WORKERS_GROUP = "workers"


def connect(topology: Topology, *, timeout: float = 2.0) -> redis.Redis:
    node = topology.one("redis")
    return redis.Redis(
        host=node.address,
        port=node.port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
    )


def ensure_group(client: redis.Redis) -> None:
    """Create the stream and its consumer group if missing (idempotent)."""
    try:
        client.xgroup_create(JOBS_STREAM, WORKERS_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def publish(client: redis.Redis, job: dict[str, Any]) -> str:
    """Append one job; returns its stream id."""
    fields = {k: str(v) for k, v in job.items()}
    return str(client.xadd(JOBS_STREAM, fields))  # type: ignore[arg-type]
