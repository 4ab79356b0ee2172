"""Readiness checks shared by every service: which of its dependencies it cannot reach, fast.

A fault in a dependency gets a fast, clear answer. Each check uses clients bounded for the
lab's network (a connect as long as [runtimes.*] connect_timeout_ms, a reply within
REPLY_TIMEOUT_S, no retries), and the checks run side by side under one deadline: a check that
has not answered by then (a dropped link, a frozen node) is named as not answering, and the
next readiness question finds it still running instead of starting another behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from typing import Any

import redis
from botocore.exceptions import BotoCoreError, ClientError

from reviewlab_common import queue, storage
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.db import ClusterRouter
from reviewlab_common.topology import Topology

# How long a dependency that is up takes to answer a check, with the lab's two cores busy.
REPLY_TIMEOUT_S = 0.5
# How long a cluster's check waits for a primary connection: a busy pool under load is not a
# fault, so this is as long as the answer can wait, less the check's own query.
POOL_WAIT_S = 0.8
# A readiness answer is due this long after the question, whatever a dependency does.
ANSWER_WITHIN_S = 1.0

# A check returns None when its dependency answers, else what went wrong.
Check = Callable[[], str | None]


@dataclass(frozen=True)
class ProbeBounds:
    """How long a readiness check may wait on a dependency: connect, reply, whole answer."""

    connect_s: float
    reply_s: float = REPLY_TIMEOUT_S
    pool_wait_s: float = POOL_WAIT_S
    answer_within_s: float = ANSWER_WITHIN_S

    @classmethod
    def of(cls, topology: Topology) -> ProbeBounds:
        """The running runtime's connect bound (a member that does not connect in it is down)."""
        return cls(connect_s=topology.lab.runtime.connect_timeout_s)


class DependencyChecks:
    """Named checks run side by side, answered within the bounds' deadline."""

    def __init__(self, checks: Mapping[str, Check], bounds: ProbeBounds) -> None:
        self.checks = dict(checks)
        self.bounds = bounds
        # One thread per check is enough: a check never runs twice at once.
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self.checks)), thread_name_prefix="readiness"
        )
        self._running: dict[str, tuple[Future[str | None], float]] = {}
        self._lock = threading.Lock()

    def _start(self) -> dict[str, tuple[Future[str | None], float]]:
        """Each check's run: the one still in flight from an earlier question, or a new one."""
        with self._lock:
            for name, check in self.checks.items():
                current = self._running.get(name)
                if current is None or current[0].done():
                    self._running[name] = (self._pool.submit(check), time.monotonic())
            return dict(self._running)

    def unreachable(self) -> dict[str, str]:
        """Dependency name -> what went wrong; empty when everything answered in time."""
        asked = time.monotonic()
        runs = self._start()
        wait_for(
            [future for future, _ in runs.values()],
            timeout=max(0.0, asked + self.bounds.answer_within_s - time.monotonic()),
        )
        found: dict[str, str] = {}
        for name, (future, started) in runs.items():
            if not future.done():
                waited = time.monotonic() - started
                found[name] = f"no answer in {waited:.1f} s"
                continue
            try:
                problem = future.result()
            except Exception as exc:  # a check that raised is a dependency fault, named
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                found[name] = problem
        return found

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def redis_check(client: redis.Redis) -> Check:
    def check() -> str | None:
        try:
            client.ping()
        except redis.RedisError as exc:
            return str(exc) or type(exc).__name__
        return None

    return check


def minio_check(s3: Any) -> Check:
    def check() -> str | None:
        try:
            s3.head_bucket(Bucket=storage.MEDIA_BUCKET)
        except (BotoCoreError, ClientError) as exc:
            return str(exc)
        return None

    return check


def cluster_check(router: ClusterRouter, bounds: ProbeBounds) -> Check:
    def check() -> str | None:
        return router.ping(wait=bounds.pool_wait_s)

    return check


def probe_clients(
    topology: Topology,
    user: queue.RedisUser,
    bounds: ProbeBounds,
    *,
    secrets: lab_secrets.LabSecrets,
) -> tuple[redis.Redis, Any]:
    """A Redis client and an S3 client for readiness only: bounded, without retries.

    The clients a service works with wait longer and retry (a blocking stream read, a photo
    upload); a readiness check must not.
    """
    queue_client = queue.connect(
        topology,
        user,
        timeout=bounds.reply_s,
        connect_timeout=bounds.connect_s,
        retries=0,
        secrets=secrets,
    )
    s3 = storage.client(
        topology,
        connect_timeout=bounds.connect_s,
        read_timeout=bounds.reply_s,
        retries=0,
        secrets=secrets,
    )
    return queue_client, s3


def service_checks(
    topology: Topology,
    *,
    clusters: Mapping[str, ClusterRouter],
    user: queue.RedisUser,
    secrets: lab_secrets.LabSecrets,
    extra: Mapping[str, Check] | None = None,
) -> DependencyChecks:
    """The checks of a service that uses CLUSTERS, Redis as USER and MinIO (and EXTRA)."""
    bounds = ProbeBounds.of(topology)
    queue_client, s3 = probe_clients(topology, user, bounds, secrets=secrets)
    checks: dict[str, Check] = {
        name: cluster_check(router, bounds) for name, router in clusters.items()
    }
    checks["redis"] = redis_check(queue_client)
    checks["minio"] = minio_check(s3)
    checks.update(extra or {})
    return DependencyChecks(checks, bounds)
