"""The photo job queue: a Redis Stream with one consumer group, and its dead-letter stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology

JOBS_STREAM = "photo-jobs"
DEAD_LETTER_STREAM = "photo-jobs-dead"
WORKERS_GROUP = "workers"

RedisUser = Literal["admin", "web", "worker", "metrics"]


def connect(
    topology: Topology,
    user: RedisUser,
    *,
    timeout: float = 2.0,
    connect_timeout: float | None = None,
    retries: int = 1,
    secrets: lab_secrets.LabSecrets | None = None,
) -> redis.Redis:
    """A client that authenticates as USER with its password from the lab's secrets.

    TIMEOUT bounds a reply and (unless CONNECT_TIMEOUT says otherwise) a connect; a command
    that failed to connect or timed out is sent again RETRIES times. The client library's own
    default (ten retries, each connect retried ten times too) kept a caller waiting over a
    minute on a dropped link.
    """
    node = topology.one("redis")
    return redis.Redis(
        host=node.address,
        port=node.port,
        username=user,
        password=(secrets or lab_secrets.load(topology)).redis_password(user),
        socket_timeout=timeout,
        socket_connect_timeout=timeout if connect_timeout is None else connect_timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries),
        decode_responses=True,
    )


def ensure_group(client: redis.Redis) -> None:
    """Create the stream and its consumer group if missing (idempotent)."""
    try:
        client.xgroup_create(JOBS_STREAM, WORKERS_GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def publish(client: redis.Redis, fields: Mapping[str, str]) -> str:
    """Append one job's stream fields (photos.PhotoJob.to_fields); returns its stream id."""
    return str(client.xadd(JOBS_STREAM, dict(fields)))  # type: ignore[arg-type]
