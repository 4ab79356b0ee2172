"""Photo jobs: read from the stream's consumer group, cut out, store, mark the review's photo."""

from __future__ import annotations

import hashlib
import heapq
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

import psycopg
import redis
from prometheus_client import Counter, Histogram
from reviewlab_common import queue, storage
from reviewlab_common.db import ClusterRouter, DatabaseUnavailable
from reviewlab_common.faults import DelaySwitch
from reviewlab_common.storage import StorageUnavailable

from reviewlab_worker.segmentation import PortraitSegmenter

log = logging.getLogger(__name__)
STAGE_SECONDS = Histogram(
    "worker_stage_seconds",
    "Time per pipeline stage",
    ["stage"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
JOBS = Counter("worker_jobs_total", "Jobs finished", ["outcome"])
MODEL_TAG = "selfie-v1"
# XREADGROUP's reply: [(stream, [(message id, fields), ...]), ...]
StreamReply = list[tuple[str, list[tuple[str, dict[str, str]]]]]


class PermanentFailure(Exception):
    """Retrying cannot help (e.g. the original cannot be decoded)."""


def cutout_key(original_key: str) -> str:
    """Content-versioned: the same original and model always give the same key."""
    digest = hashlib.sha256(f"{original_key}:{MODEL_TAG}".encode()).hexdigest()[:32]
    return f"cutouts/{digest}.webp"


@dataclass(order=True)
class Held:
    """A failed job waiting out its backoff; it stays pending in Redis until finished."""

    due: float
    message_id: str = field(compare=False)
    job: dict[str, str] = field(compare=False)


class JobRunner:
    def __init__(
        self,
        *,
        consumer: str,
        client: redis.Redis,
        s3: Any,
        shards: dict[str, ClusterRouter],
        segmenter: PortraitSegmenter,
        max_attempts: int,
        backoff_base_s: float,
        reclaim_idle_ms: int,
        max_side: int,
        delay: DelaySwitch,
    ) -> None:
        self.consumer = consumer
        self.client = client
        self.s3 = s3
        self.shards = shards
        self.segmenter = segmenter
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.reclaim_idle_ms = reclaim_idle_ms
        self.max_side = max_side
        self.delay = delay
        self.held: list[Held] = []
        self.attempts: dict[str, int] = {}
        self.busy = False

    # One job ---------------------------------------------------------------------------------
    def _photo_state(self, shard: ClusterRouter, review_id: int) -> str | None:
        def read(conn: psycopg.Connection[Any]) -> str | None:
            row = conn.execute(
                "SELECT photo_status FROM reviews WHERE id = %s", (review_id,)
            ).fetchone()
            return None if row is None else str(row[0])

        state, _ = shard.write(read)  # the primary: a replica may not have the row yet
        return state

    def process(self, job: dict[str, str]) -> str:
        """Do one job; returns the outcome. Idempotent: a finished job is acknowledged again."""
        shard = self.shards[job["shard"]]
        review_id = int(job["review_id"])
        state = self._photo_state(shard, review_id)
        if state is None:
            return "review_gone"  # deleted before its photo was processed
        if state == "ready":
            return "already_done"
        pause = self.delay.delay_seconds()
        if pause:
            time.sleep(pause)  # a lab-only fault, so chaos can kill a worker mid-job
        original = storage.get_object(self.s3, job["original_key"])
        try:
            cut = self.segmenter.cutout(original, max_side=self.max_side)
        except (OSError, ValueError) as exc:
            raise PermanentFailure(f"the photo could not be decoded: {exc}") from exc
        for stage, seconds in cut.timings.items():
            STAGE_SECONDS.labels(stage).observe(seconds)
        key = cutout_key(job["original_key"])
        storage.put_object(self.s3, key, cut.webp, content_type="image/webp")

        def mark(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "UPDATE reviews SET photo_status = 'ready', photo_cutout_key = %s, "
                "photo_error = NULL, photo_attempts = photo_attempts + 1 WHERE id = %s",
                (key, review_id),
            )

        shard.write(mark)
        return "ready"

    def _fail(self, job: dict[str, str], reason: str) -> None:
        shard = self.shards[job["shard"]]

        def mark(conn: psycopg.Connection[Any]) -> None:
            conn.execute(
                "UPDATE reviews SET photo_status = 'failed', photo_error = %s, "
                "photo_attempts = %s WHERE id = %s AND photo_status <> 'ready'",
                (reason, self.max_attempts, int(job["review_id"])),
            )

        shard.write(mark)
        self.client.xadd(
            queue.DEAD_LETTER_STREAM,
            dict(job, reason=reason, consumer=self.consumer),  # type: ignore[arg-type]
        )

    def handle(self, message_id: str, job: dict[str, str]) -> None:
        self.busy = True
        try:
            outcome = self.process(job)
            self.client.xack(queue.JOBS_STREAM, queue.WORKERS_GROUP, message_id)
            self.attempts.pop(message_id, None)
            JOBS.labels(outcome).inc()
            log.info("job %s review %s: %s", message_id, job.get("review_id"), outcome)
        except (PermanentFailure, StorageUnavailable, DatabaseUnavailable, KeyError) as exc:
            attempt = self.attempts.get(message_id, 0) + 1
            self.attempts[message_id] = attempt
            permanent = isinstance(exc, PermanentFailure | KeyError)
            if permanent or attempt >= self.max_attempts:
                reason = f"{exc} (after {attempt} attempt{'s' if attempt > 1 else ''})"
                try:
                    self._fail(job, reason)
                except DatabaseUnavailable as db_exc:  # keep it pending: retried later
                    log.warning("job %s: cannot record failure yet: %s", message_id, db_exc)
                    return
                self.client.xack(queue.JOBS_STREAM, queue.WORKERS_GROUP, message_id)
                self.attempts.pop(message_id, None)
                JOBS.labels("dead_letter").inc()
                log.warning("job %s to the dead-letter stream: %s", message_id, reason)
            else:
                backoff = self.backoff_base_s * 4 ** (attempt - 1)
                heapq.heappush(self.held, Held(time.monotonic() + backoff, message_id, job))
                JOBS.labels("retry").inc()
                log.warning(
                    "job %s attempt %d failed (%s); retry in %.0f s",
                    message_id,
                    attempt,
                    exc,
                    backoff,
                )
        finally:
            self.busy = False

    # The loop --------------------------------------------------------------------------------
    def _due_held(self) -> Held | None:
        if self.held and self.held[0].due <= time.monotonic():
            return heapq.heappop(self.held)
        return None

    def _next(self) -> tuple[str, dict[str, str]] | None:
        held = self._due_held()
        if held:
            return held.message_id, held.job
        # Jobs of a consumer that died (idle too long) are claimed here.
        _, claimed, *_ = self.client.xautoclaim(
            queue.JOBS_STREAM,
            queue.WORKERS_GROUP,
            self.consumer,
            min_idle_time=self.reclaim_idle_ms,
            start_id="0-0",
            count=1,
        )
        held_ids = {h.message_id for h in self.held}
        for message_id, fields in claimed:
            if fields and message_id not in held_ids:
                log.info("claimed job %s from a silent consumer", message_id)
                return message_id, fields
        block_ms = (
            1000 if not self.held else max(50, int((self.held[0].due - time.monotonic()) * 1000))
        )
        reply = self.client.xreadgroup(
            queue.WORKERS_GROUP,
            self.consumer,
            {queue.JOBS_STREAM: ">"},
            count=1,
            block=min(block_ms, 1000),
        )
        for _, messages in cast(StreamReply, reply) or []:
            for message_id, fields in messages:
                return message_id, fields
        return None

    def own_pending(self) -> list[tuple[str, dict[str, str]]]:
        """Jobs this consumer had read before a restart and not acknowledged."""
        reply = self.client.xreadgroup(
            queue.WORKERS_GROUP, self.consumer, {queue.JOBS_STREAM: "0"}, count=100
        )
        return [
            (mid, f) for _, messages in cast(StreamReply, reply) or [] for mid, f in messages if f
        ]

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                queue.ensure_group(self.client)
                for message_id, job in self.own_pending():
                    self.handle(message_id, job)
                while not stop.is_set():
                    found = self._next()
                    if found:
                        self.handle(*found)
            except redis.RedisError as exc:
                log.warning("queue unavailable: %s; retrying", exc)
                stop.wait(1.0)
