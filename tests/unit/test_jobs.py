"""The job runner: attempts counted by the stream, failures kept to their job, dead letters.

The runner and the real segmentation model run unchanged; Redis, MinIO and the review shard
are the in-process stand-ins of tests/unit/edges.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reviewlab_common import queue
from reviewlab_common.photos import PhotoJob, cutout_key, cutout_keys
from reviewlab_common.shards import bucket_of_review
from reviewlab_worker import jobs
from reviewlab_worker.jobs import BACKOFF_CAP_S, Delivery, JobRunner
from reviewlab_worker.segmentation import PortraitSegmenter

from tests.unit.edges import FakeRedis, FakeS3, FakeShard, ReviewRow
from tests.unit.test_segmentation import model_path

PORTRAIT = Path(__file__).resolve().parents[1] / "fixtures" / "portrait.jpg"
ORIGINAL = "originals/kim.jpg"
REVIEW = 4242
MAX_ATTEMPTS = 3
RECLAIM_IDLE_MS = 15_000


class NoDelay:
    def delay_seconds(self) -> float:
        return 0.0


class Lab:
    """The edges of one test: a stream, a bucket and a shard with one review in it."""

    def __init__(self, segmenter: PortraitSegmenter) -> None:
        self.segmenter = segmenter
        self.redis = FakeRedis()
        self.s3 = FakeS3()
        self.shard = FakeShard()
        self.shard.reviews[REVIEW] = ReviewRow()
        queue.ensure_group(self.redis)  # type: ignore[arg-type]
        self.job_id = queue.publish(
            self.redis,  # type: ignore[arg-type]
            PhotoJob(REVIEW, self.shard.name, ORIGINAL).to_fields(),
        )

    def worker(self, consumer: str = "worker-1") -> JobRunner:
        """A worker process; a new one for the same consumer is that worker after a restart."""
        return JobRunner(
            consumer=consumer,
            client=self.redis,  # type: ignore[arg-type]
            s3=self.s3,
            shards={self.shard.name: self.shard},  # type: ignore[dict-item]
            segmenter=self.segmenter,
            max_attempts=MAX_ATTEMPTS,
            backoff_base_s=1.0,
            reclaim_idle_ms=RECLAIM_IDLE_MS,
            max_side=256,
            delay=NoDelay(),  # type: ignore[arg-type]
        )

    @property
    def review(self) -> ReviewRow:
        return self.shard.reviews[REVIEW]

    def pending(self) -> dict[str, int]:
        return self.redis.deliveries(queue.JOBS_STREAM, queue.WORKERS_GROUP)

    def dead(self) -> list[dict[str, str]]:
        return self.redis.entries(queue.DEAD_LETTER_STREAM)


@pytest.fixture(scope="module")
def segmenter() -> PortraitSegmenter:
    path = model_path()
    if not path.is_file():
        pytest.fail(f"segmentation model missing at {path}: run `make setup` to fetch it")
    return PortraitSegmenter(path)


@pytest.fixture()
def lab(segmenter: PortraitSegmenter) -> Iterator[Lab]:
    yield Lab(segmenter)


def step(worker: JobRunner) -> Delivery | None:
    """One turn of the worker's loop: take the next due delivery, if any, and handle it."""
    delivery = worker.next_delivery()
    if delivery:
        worker.handle(delivery)
    return delivery


def turns_until_delivered(worker: JobRunner, *, limit: int = 100) -> Delivery:
    for _ in range(limit):
        delivery = step(worker)
        if delivery:
            return delivery
    raise AssertionError(f"no delivery in {limit} turns")


def test_a_photo_is_cut_out_stored_and_acknowledged(lab: Lab) -> None:
    lab.s3.objects[ORIGINAL] = PORTRAIT.read_bytes()
    delivery = step(lab.worker())
    assert delivery and delivery.deliveries == 1
    assert lab.review.photo_status == "ready"
    assert lab.review.photo_cutout_key == cutout_key(ORIGINAL)
    assert lab.review.photo_attempts == 1
    photo, mask = cutout_keys(ORIGINAL)
    assert lab.s3.objects[photo][:3] == b"\xff\xd8\xff"  # a JPEG
    assert lab.s3.objects[mask][:8] == b"\x89PNG\r\n\x1a\n"
    assert lab.pending() == {}
    assert lab.dead() == []


def test_an_original_that_no_longer_decodes_is_a_dead_letter_not_a_crash(lab: Lab) -> None:
    # Replaced in storage after the POST was accepted: the bytes are no photo.
    lab.s3.objects[ORIGINAL] = b"\xff\xd8\xff\xe0 not a jpeg any more" * 40
    step(lab.worker())  # must not raise: the failure is the job's, not the worker's
    assert lab.review.photo_status == "failed"
    assert lab.review.photo_error and "not a readable image" in lab.review.photo_error
    assert "after 1 attempt)" in lab.review.photo_error
    assert "post the photo again" in lab.review.photo_error
    assert lab.review.photo_attempts == 1
    assert lab.pending() == {}, "a dead letter is acknowledged"
    (dead,) = lab.dead()
    assert dead["review_id"] == str(REVIEW)
    assert dead["message_id"] == lab.job_id
    assert dead["deliveries"] == "1"
    assert "PhotoRejected" in dead["error"]


def test_an_unexpected_error_is_the_jobs_failure_and_is_retried(lab: Lab) -> None:
    lab.s3.fault = RuntimeError("a bug nobody expected")
    worker = lab.worker()
    step(worker)
    assert lab.pending() == {lab.job_id: 1}, "still pending, for another delivery"
    assert lab.review.photo_status == "processing"
    lab.s3.fault = None
    lab.s3.objects[ORIGINAL] = PORTRAIT.read_bytes()
    delivery = turns_until_delivered(worker)
    assert delivery.deliveries == 2
    assert lab.review.photo_status == "ready"
    assert lab.review.photo_attempts == 2


def test_a_failed_job_waits_its_backoff_then_goes_to_the_dead_letter_stream(lab: Lab) -> None:
    worker = lab.worker()  # the original is missing: every delivery fails
    started = lab.redis.now_ms
    seen = [turns_until_delivered(worker) for _ in range(MAX_ATTEMPTS)]
    assert [d.deliveries for d in seen] == [1, 2, 3]
    # 1 s after the first failure, 4 s after the second; each read blocks at most 1 s.
    assert lab.redis.now_ms - started == 5_000
    assert lab.s3.gets == MAX_ATTEMPTS
    assert lab.review.photo_status == "failed"
    assert "could not be fetched (after 3 attempts)" in (lab.review.photo_error or "")
    assert lab.review.photo_attempts == 3
    assert [d["deliveries"] for d in lab.dead()] == ["3"]
    assert lab.pending() == {}
    for _ in range(20):
        assert step(worker) is None, "a dead letter is never delivered again"


def test_the_attempt_count_survives_a_worker_restart(lab: Lab) -> None:
    step(lab.worker())  # delivery 1 fails: the original is missing
    assert lab.pending() == {lab.job_id: 1}
    restarted = lab.worker()  # the same consumer, a new process: nothing in memory
    assert turns_until_delivered(restarted).deliveries == 2
    assert turns_until_delivered(restarted).deliveries == 3
    assert lab.review.photo_status == "failed"
    assert [d["deliveries"] for d in lab.dead()] == ["3"]
    assert lab.s3.gets == 3


def test_a_job_that_ends_its_worker_every_time_is_dead_lettered_unrun(lab: Lab) -> None:
    lab.s3.objects[ORIGINAL] = PORTRAIT.read_bytes()
    for expected in range(1, MAX_ATTEMPTS + 1):
        worker = lab.worker()  # after the restart
        for _ in range(100):
            delivery = worker.next_delivery()  # taken, then the process dies on it
            if delivery:
                break
        assert delivery and delivery.deliveries == expected
    past_the_limit = turns_until_delivered(lab.worker())
    assert past_the_limit.deliveries == MAX_ATTEMPTS + 1
    assert lab.s3.gets == 0, "the delivery past the limit is not run again"
    assert lab.review.photo_status == "failed"
    assert "never finished (after 3 attempts)" in (lab.review.photo_error or "")
    assert [d["deliveries"] for d in lab.dead()] == ["4"]
    assert lab.pending() == {}


def test_a_silent_consumers_job_is_claimed_only_after_the_reclaim_idle_time(lab: Lab) -> None:
    lab.s3.objects[ORIGINAL] = PORTRAIT.read_bytes()
    assert lab.worker("worker-1").next_delivery()  # worker-1 takes it and goes silent
    taken = lab.redis.now_ms
    other = lab.worker("worker-2")
    delivery = turns_until_delivered(other)
    assert lab.redis.now_ms - taken >= RECLAIM_IDLE_MS
    assert delivery.deliveries == 2
    assert lab.review.photo_status == "ready"
    assert lab.pending() == {}


def test_a_job_whose_review_was_deleted_is_acknowledged(lab: Lab) -> None:
    del lab.shard.reviews[REVIEW]
    step(lab.worker())
    assert lab.pending() == {}
    assert lab.dead() == []
    assert lab.s3.gets == 0


def test_a_malformed_job_is_a_dead_letter(lab: Lab) -> None:
    malformed = {"review_id": "not-a-number", "shard": "reviews-9"}
    queue.publish(lab.redis, malformed)  # type: ignore[arg-type]
    worker = lab.worker()
    lab.s3.objects[ORIGINAL] = PORTRAIT.read_bytes()
    step(worker)
    step(worker)
    assert lab.review.photo_status == "ready"
    (dead,) = lab.dead()
    assert dead["review_id"] == "not-a-number"
    assert lab.pending() == {}


def test_a_failure_that_cannot_be_recorded_keeps_the_job_pending(lab: Lab) -> None:
    lab.s3.objects[ORIGINAL] = b"garbage" * 100
    lab.shard.refuse = jobs.MARK_FAILED
    worker = lab.worker()
    step(worker)
    assert lab.review.photo_status == "processing"
    assert lab.pending() == {lab.job_id: 1}, "kept for a later delivery, not lost"
    assert lab.dead() == []
    lab.shard.refuse = None
    assert turns_until_delivered(worker).deliveries == 2
    assert lab.review.photo_status == "failed"
    assert [d["deliveries"] for d in lab.dead()] == ["2"]
    assert lab.pending() == {}


def test_of_two_workers_claiming_one_silent_job_only_the_first_gets_it(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lab.worker("worker-1").next_delivery()  # worker-1 takes it and goes silent
    lab.redis.advance(RECLAIM_IDLE_MS)
    listing = lab.redis.xpending_range(
        queue.JOBS_STREAM, queue.WORKERS_GROUP, min="-", max="+", count=100
    )
    first = lab.worker("worker-2").next_delivery()
    assert first and first.deliveries == 2
    # worker-3 listed the pending jobs just before worker-2's claim: it sees the job as idle.
    monkeypatch.setattr(lab.redis, "xpending_range", lambda *a, **k: listing)
    assert lab.worker("worker-3").next_delivery() is None
    assert lab.pending() == {lab.job_id: 2}


def test_a_job_delivered_many_times_before_waits_no_longer_than_the_cap(lab: Lab) -> None:
    lab.s3.objects[ORIGINAL] = PORTRAIT.read_bytes()
    assert lab.worker().next_delivery()
    pending = lab.redis.pending[(queue.JOBS_STREAM, queue.WORKERS_GROUP)][lab.job_id]
    pending.deliveries = 12  # e.g. a crash loop of an older worker
    taken = lab.redis.now_ms
    delivery = turns_until_delivered(lab.worker())
    assert delivery.deliveries == 13
    assert lab.redis.now_ms - taken == BACKOFF_CAP_S * 1000
    assert lab.review.photo_status == "failed"
    assert lab.s3.gets == 0


def test_a_job_follows_its_review_to_the_shard_it_moved_to(lab: Lab) -> None:
    # The job names reviews-0, but the review's bucket moved: reviews-0's fence is closed on
    # it (its old copy deleted), and the photo is marked on the shard whose fence is open.
    moved_to = FakeShard(name="reviews-2")
    moved_to.reviews[REVIEW] = lab.shard.reviews.pop(REVIEW)
    lab.shard.closed.add(bucket_of_review(REVIEW))
    lab.s3.objects[ORIGINAL] = PORTRAIT.read_bytes()
    worker = lab.worker()
    worker.shards[moved_to.name] = moved_to  # type: ignore[assignment]
    assert step(worker)
    assert moved_to.reviews[REVIEW].photo_status == "ready"
    assert jobs.MARK_READY in moved_to.statements
    assert jobs.MARK_READY not in lab.shard.statements
