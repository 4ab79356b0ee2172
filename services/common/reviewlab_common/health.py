"""Readiness checks shared by every service: which of its dependencies it cannot reach."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis
from botocore.exceptions import BotoCoreError, ClientError

from reviewlab_common import storage
from reviewlab_common.db import ClusterRouter


def unreachable(
    *, clusters: Mapping[str, ClusterRouter], queue_client: redis.Redis, s3: Any
) -> dict[str, str]:
    """Dependency name -> what went wrong; empty when everything answers."""
    found = {name: problem for name, router in clusters.items() if (problem := router.ping())}
    try:
        queue_client.ping()
    except redis.RedisError as exc:
        found["redis"] = str(exc)
    try:
        s3.head_bucket(Bucket=storage.MEDIA_BUCKET)
    except (BotoCoreError, ClientError) as exc:
        found["minio"] = str(exc)
    return found
