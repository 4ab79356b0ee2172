"""Photo jobs: read from the stream's consumer group, cut out, store, mark the review's photo.

Attempts are counted by Redis, not by the worker: the consumer group's delivery count of a
job (XPENDING's times_delivered) grows with every XREADGROUP and XCLAIM, survives a worker's
restart and is the same for every worker. A failed job stays pending; it is claimed again
once it has been idle for its backoff. A job that failed on its last allowed delivery, or
that cannot succeed, goes to the dead-letter stream and its photo is marked failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import psycopg
import redis
from prometheus_client import Counter, Histogram
from reviewlab_common import fence, queue, storage, tracing
from reviewlab_common.db import ClusterRouter, DatabaseUnavailable
from reviewlab_common.faults import DelaySwitch
from reviewlab_common.images import PhotoRejected
from reviewlab_common.photos import (
    InvalidPhotoJob,
    PhotoJob,
    PhotoStatus,
    cutout_keys,
)
from reviewlab_common.shards import bucket_of_review
from reviewlab_common.storage import StorageUnavailable
from reviewlab_common.tables import bucket_fence, compiled, reviews
from sqlalchemy import bindparam, literal_column, null, select, update

from reviewlab_worker.segmentation import PortraitSegmenter

log = logging.getLogger(__name__)
STAGE_SECONDS = Histogram(
    "worker_stage_seconds",
    "Time per pipeline stage",
    ["stage"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
JOBS = Counter("worker_jobs_total", "Jobs finished", ["outcome"])
# Pending jobs looked at per round, oldest first.
PENDING_SCAN = 100
# The longest wait before a delivery, however often the job was delivered before.
BACKOFF_CAP_S = 60.0
# XREADGROUP's reply: [(stream, [(message id, fields), ...]), ...]
StreamReply = list[tuple[str, list[tuple[str, dict[str, str]]]]]
# XCLAIM's reply: [(message id, fields), ...]; an entry deleted from the stream has none.
ClaimReply = list[tuple[str, dict[str, str] | None]]

# The photo's statements, compiled once.
FENCE_STATE = compiled(
    select(bucket_fence.c.state).where(bucket_fence.c.bucket == bindparam("bucket"))
)
PHOTO_STATE = compiled(select(reviews.c.photo_status).where(reviews.c.id == bindparam("id")))
MARK_READY = compiled(
    update(reviews)
    .where(reviews.c.id == bindparam("id"))
    .values(
        photo_status=literal_column(f"'{PhotoStatus.READY}'"),
        photo_cutout_key=bindparam("cutout_key"),
        photo_error=null(),
        photo_attempts=bindparam("attempts"),
    )
)
# Only a photo still processing fails: a finished one stays finished.
MARK_FAILED = compiled(
    update(reviews)
    .where(
        reviews.c.id == bindparam("id"),
        reviews.c.photo_status == literal_column(f"'{PhotoStatus.PROCESSING}'"),
    )
    .values(
        photo_status=literal_column(f"'{PhotoStatus.FAILED}'"),
        photo_error=bindparam("error"),
        photo_attempts=bindparam("attempts"),
    )
)


class PermanentFailure(Exception):
    """Retrying cannot help (the original does not decode, the job names no review)."""


@dataclass(frozen=True)
class Delivery:
    """One delivery of a job, and how often Redis has delivered it (this one included)."""

    message_id: str
    # The stream entry as it came: a malformed one still reaches the dead-letter stream whole.
    fields: dict[str, str]
    deliveries: int

    @property
    def job(self) -> PhotoJob:
        """The photo job it carries; PermanentFailure when it is none."""
        try:
            return PhotoJob.from_fields(self.fields)
        except InvalidPhotoJob as exc:
            raise PermanentFailure(f"the job names no review this lab holds ({exc})") from exc


def failure_reason(exc: Exception, attempts: int) -> str:
    """The photo's error as its reader sees it: what happened, what was kept, what to do."""
    if isinstance(exc, PermanentFailure):
        what = str(exc)
    elif isinstance(exc, StorageUnavailable):
        what = "the stored photo could not be fetched"
    elif isinstance(exc, DatabaseUnavailable):
        what = "the review's database did not answer"
    else:
        what = "the photo worker failed on it"
    tries = f"after {attempts} attempt{'' if attempts == 1 else 's'}"
    return (
        f"The cutout could not be made: {what} ({tries}). The review is kept; "
        "delete it and post the photo again to try once more."
    )


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
        push: Callable[[list[str]], object] | None = None,
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
        # Pre-warms the CDN (reviewlab_common.cdn.push) with a cutout's keys before the photo
        # is marked ready, so the first shopper's request is an edge HIT; None: no CDN push.
        self.push = push
        # The cutout's two objects are uploaded side by side (8-10 ms each to MinIO here).
        self._uploads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cutout-upload")

    # One job ---------------------------------------------------------------------------------
    def _review_of(self, job: PhotoJob) -> tuple[ClusterRouter, int]:
        """The shard that holds the job's review now: the one the job names, unless its
        fence closed the review's bucket (it moved, or is moving, to another shard)."""
        named = self.shards.get(job.shard)
        if named is None:
            raise PermanentFailure(f"the job names shard {job.shard!r}, which this lab lacks")
        bucket = bucket_of_review(job.review_id)
        others = [s for name, s in sorted(self.shards.items()) if name != job.shard]
        for shard in (named, *others):
            if self._fence_state(shard, bucket) != fence.CLOSED:
                return shard, job.review_id
        raise DatabaseUnavailable(
            f"bucket {bucket} is closed on every shard: a move is cutting over; retried later"
        )

    @staticmethod
    def _fence_state(shard: ClusterRouter, bucket: int) -> str | None:
        def read(conn: psycopg.Connection[Any]) -> str | None:
            row = conn.execute(FENCE_STATE, {"bucket": bucket}).fetchone()
            return None if row is None else str(row[0])

        try:
            state, _ = shard.write(read)  # the primary: the fence changes there first
        except psycopg.errors.UndefinedTable:
            return None  # a shard before revision 0003 has no fence: it takes every write
        return state

    def _photo_state(self, shard: ClusterRouter, review_id: int) -> str | None:
        def read(conn: psycopg.Connection[Any]) -> str | None:
            row = conn.execute(PHOTO_STATE, {"id": review_id}).fetchone()
            return None if row is None else str(row[0])

        state, _ = shard.write(read)  # the primary: a replica may not have the row yet
        return state

    def process(self, delivery: Delivery) -> str:
        """Do one job; returns the outcome. Idempotent: a finished job is acknowledged again."""
        job = delivery.job
        shard, review_id = self._review_of(job)
        state = self._photo_state(shard, review_id)
        if state is None:
            return "review_gone"  # deleted before its photo was processed
        if state == PhotoStatus.READY:
            return "already_done"
        pause = self.delay.delay_seconds()
        if pause:
            time.sleep(pause)  # a lab-only fault, so chaos can kill a worker mid-job
        original = storage.get_object(self.s3, job.original_key)
        started_ns = time.time_ns()
        try:
            cut = self.segmenter.cutout(original, max_side=self.max_side)
        except (PhotoRejected, OSError, ValueError) as exc:
            raise PermanentFailure("the stored photo is not a readable image") from exc
        tracing.record_stages(started_ns, cut.timings)  # decode, infer, mask, encode
        for stage, seconds in cut.timings.items():
            STAGE_SECONDS.labels(stage).observe(seconds)
        key, mask_key = cutout_keys(job.original_key)
        # Both before the photo is marked ready: no reader learns the keys earlier.
        with tracing.span("cutout upload", attributes={"reviewlab.cutout_key": key}):
            mask_upload = self._uploads.submit(
                storage.put_object, self.s3, mask_key, cut.mask_png, content_type="image/png"
            )
            storage.put_object(self.s3, key, cut.photo_jpeg, content_type="image/jpeg")
            mask_upload.result()
        if self.push is not None:
            self.push([key, mask_key])  # a push that fails leaves a MISS, never a failed job

        def mark(conn: psycopg.Connection[Any]) -> None:
            done = {"id": review_id, "cutout_key": key, "attempts": delivery.deliveries}
            conn.execute(MARK_READY, done)

        shard.write(mark)
        return "ready"

    def handle(self, delivery: Delivery) -> None:
        """Run one delivery; whatever fails is this job's failure, never the worker's."""
        if delivery.deliveries > self.max_attempts:
            # Every allowed delivery ended without an outcome (the worker was killed or
            # crashed while on it, or its failure could not be recorded): stop here.
            exhausted = PermanentFailure("its processing never finished")
            self._dead_letter(delivery, exhausted, attempts=self.max_attempts)
            return
        try:
            with tracing.job(delivery.message_id, delivery.fields, delivery.deliveries):
                outcome = self.process(delivery)
        except Exception as exc:
            self._failed(delivery, exc)
            return
        self.client.xack(queue.JOBS_STREAM, queue.WORKERS_GROUP, delivery.message_id)
        JOBS.labels(outcome).inc()
        log.info(
            "job %s review %s: %s", delivery.message_id, delivery.fields.get("review_id"), outcome
        )

    def _failed(self, delivery: Delivery, exc: Exception) -> None:
        expected = (PermanentFailure, StorageUnavailable, DatabaseUnavailable)
        if not isinstance(exc, expected):
            log.exception("job %s: unexpected failure", delivery.message_id)
        if isinstance(exc, PermanentFailure) or delivery.deliveries >= self.max_attempts:
            self._dead_letter(delivery, exc, attempts=delivery.deliveries)
            return
        # It stays pending: the next round claims it again once it has been idle this long.
        JOBS.labels("retry").inc()
        log.warning(
            "job %s delivery %d failed (%s); retry in %.0f s",
            delivery.message_id,
            delivery.deliveries,
            exc,
            self.backoff_s(delivery.deliveries),
        )

    def _dead_letter(self, delivery: Delivery, exc: Exception, *, attempts: int) -> None:
        """Mark the photo failed, then move the job to the dead-letter stream."""
        reason = failure_reason(exc, attempts)
        try:
            shard, review_id = self._review_of(delivery.job)
        except PermanentFailure:
            pass  # a malformed job names no review to mark
        else:

            def mark(conn: psycopg.Connection[Any]) -> None:
                failed = {"id": review_id, "error": reason, "attempts": attempts}
                conn.execute(MARK_FAILED, failed)

            try:
                shard.write(mark)
            except DatabaseUnavailable as db_exc:
                # Still pending: its next delivery is past the limit and lands here again.
                log.warning(
                    "job %s: cannot record its failure yet: %s", delivery.message_id, db_exc
                )
                return
        cause = exc.__cause__
        error = f"{type(exc).__name__}: {exc}"
        if cause:
            error += f" ({type(cause).__name__}: {cause})"
        dead = {
            **delivery.fields,
            "message_id": delivery.message_id,
            "deliveries": str(delivery.deliveries),
            "consumer": self.consumer,
            "reason": reason,
            "error": error[:1000],
        }
        # Appended before the acknowledgement: a crash in between repeats the entry, never
        # loses the job.
        self.client.xadd(queue.DEAD_LETTER_STREAM, dead)  # type: ignore[arg-type]
        self.client.xack(queue.JOBS_STREAM, queue.WORKERS_GROUP, delivery.message_id)
        JOBS.labels("dead_letter").inc()
        log.warning("job %s to the dead-letter stream: %s", delivery.message_id, dead["error"])

    # The loop --------------------------------------------------------------------------------
    def backoff_s(self, deliveries: int) -> float:
        """How long a job that failed its DELIVERIES-th delivery waits: 1 s, 4 s, 16 s, ..."""
        return float(min(self.backoff_base_s * 4 ** max(deliveries - 1, 0), BACKOFF_CAP_S))

    def _claim_after_ms(self, consumer: str, deliveries: int) -> int:
        backoff_ms = int(self.backoff_s(deliveries) * 1000)
        if consumer == self.consumer:
            return backoff_ms  # this worker's own failed job (or one from before a restart)
        return max(backoff_ms, self.reclaim_idle_ms)  # only if that consumer went silent

    def _due_pending(self) -> tuple[Delivery | None, int]:
        """A pending job whose wait is over, claimed; else how many ms until the next one."""
        pending = self.client.xpending_range(
            queue.JOBS_STREAM, queue.WORKERS_GROUP, min="-", max="+", count=PENDING_SCAN
        )
        wait_ms = 1000
        for entry in pending:
            after_ms = self._claim_after_ms(str(entry["consumer"]), int(entry["times_delivered"]))
            idle_ms = int(entry["time_since_delivered"])
            if idle_ms < after_ms:
                wait_ms = min(wait_ms, after_ms - idle_ms)
                continue
            # min_idle_time makes the claim atomic: of two workers, only the first gets it.
            claimed = self.client.xclaim(
                queue.JOBS_STREAM,
                queue.WORKERS_GROUP,
                self.consumer,
                min_idle_time=after_ms,
                message_ids=[entry["message_id"]],
            )
            for message_id, fields in cast(ClaimReply, claimed):
                if not fields:  # deleted from the stream: nothing left to do
                    self.client.xack(queue.JOBS_STREAM, queue.WORKERS_GROUP, message_id)
                    continue
                if entry["consumer"] != self.consumer:
                    log.info("claimed job %s from silent %s", message_id, entry["consumer"])
                deliveries = int(entry["times_delivered"]) + 1  # XCLAIM counted one more
                return Delivery(str(message_id), dict(fields), deliveries), 0
        return None, wait_ms

    def next_delivery(self) -> Delivery | None:
        """A pending job that is due, else a new one (waiting up to 1 s for it), else None."""
        due, wait_ms = self._due_pending()
        if due:
            return due
        reply = self.client.xreadgroup(
            queue.WORKERS_GROUP,
            self.consumer,
            {queue.JOBS_STREAM: ">"},
            count=1,
            block=max(50, wait_ms),
        )
        for _, messages in cast(StreamReply, reply) or []:
            for message_id, fields in messages:
                return Delivery(message_id, fields, 1)
        return None

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                queue.ensure_group(self.client)
                while not stop.is_set():
                    delivery = self.next_delivery()
                    if delivery:
                        self.handle(delivery)
            except redis.RedisError as exc:
                log.warning("queue unavailable: %s; retrying", exc)
                stop.wait(1.0)
            except Exception:  # a fault in the loop itself must not end the worker either
                log.exception("the job loop failed; starting it again")
                stop.wait(1.0)
