"""The outbox relay: committed jobs reach the stream at least once, and none is lost.

relay.py runs unchanged; the shard and Redis are the stand-ins of tests/unit/edges.py.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis
from reviewlab_common import queue
from reviewlab_common.photos import PhotoJob
from reviewlab_worker import relay

from tests.unit.edges import FakeRedis, FakeShard, OutboxRow


def shard_with_jobs(count: int, name: str = "reviews-0", first_id: int = 1) -> FakeShard:
    shard = FakeShard(name=name)
    for row_id in range(first_id, first_id + count):
        job = PhotoJob(1000 + row_id, name, f"originals/{row_id}.jpg")
        shard.outbox.append(OutboxRow(row_id, job.to_payload()))
    return shard


def published(client: FakeRedis) -> list[dict[str, str]]:
    return client.entries(queue.JOBS_STREAM)


def relay_once(shard: FakeShard, client: FakeRedis) -> int:
    return relay.relay_once(shard, client)  # type: ignore[arg-type]


def test_each_committed_job_is_published_once() -> None:
    shard, client = shard_with_jobs(3), FakeRedis()
    assert relay_once(shard, client) == 3
    jobs = published(client)
    assert [j["outbox_id"] for j in jobs] == ["1", "2", "3"]
    assert jobs[0] == {
        "review_id": "1001",
        "shard": "reviews-0",
        "original_key": "originals/1.jpg",
        "outbox_id": "1",
    }
    assert all(row.published for row in shard.outbox)
    assert relay_once(shard, client) == 0
    assert len(published(client)) == 3


def test_a_backlog_moves_in_batches_in_commit_order() -> None:
    shard, client = shard_with_jobs(120), FakeRedis()
    assert [relay_once(shard, client) for _ in range(4)] == [50, 50, 20, 0]
    assert [int(j["outbox_id"]) for j in published(client)] == list(range(1, 121))


def test_jobs_stay_in_the_outbox_while_redis_is_down() -> None:
    shard, client = shard_with_jobs(2), FakeRedis()
    client.down = True
    with pytest.raises(redis.ConnectionError):
        relay_once(shard, client)
    assert not any(row.published for row in shard.outbox)
    client.down = False
    assert relay_once(shard, client) == 2
    assert len(published(client)) == 2


def test_redis_lost_mid_batch_publishes_again_rather_than_lose_a_job(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shard, client = shard_with_jobs(3), FakeRedis()
    accepted = client.xadd

    def xadd_then_lost(name: str, fields: dict[str, Any]) -> str:
        if len(published(client)) == 1:
            raise redis.ConnectionError("Connection reset by peer")
        return accepted(name, fields)

    monkeypatch.setattr(client, "xadd", xadd_then_lost)
    with pytest.raises(redis.ConnectionError):
        relay_once(shard, client)
    assert not any(row.published for row in shard.outbox), "the batch was not committed"
    monkeypatch.setattr(client, "xadd", accepted)
    assert relay_once(shard, client) == 3
    # At least once: job 1 twice (the worker acknowledges a finished photo again), none lost.
    assert [j["outbox_id"] for j in published(client)] == ["1", "1", "2", "3"]


def test_the_relay_outlives_any_failure_and_keeps_serving_the_other_shards() -> None:
    broken = shard_with_jobs(2, "reviews-0")
    healthy = shard_with_jobs(2, "reviews-1", first_id=10)
    broken.fault = RuntimeError("a bug nobody expected")
    client = FakeRedis()
    stop = threading.Event()
    thread = threading.Thread(
        target=relay.run,
        args=([broken, healthy], client, 0.01, stop),
        daemon=True,
    )
    thread.start()
    try:
        wait_for(lambda: len(published(client)) == 2, "the healthy shard's jobs")
        assert thread.is_alive()
        broken.fault = None
        wait_for(lambda: len(published(client)) == 4, "the broken shard's jobs once it is fixed")
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert sorted(int(j["outbox_id"]) for j in published(client)) == [1, 2, 10, 11]


def test_a_notified_job_is_published_at_once_not_at_the_next_poll() -> None:
    shard, client = FakeShard(), FakeRedis()
    stop, wake = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=relay.run, args=([shard], client, 60.0, stop, wake), daemon=True
    )
    thread.start()
    try:
        wait_for(lambda: bool(shard.statements), "the first round, which finds nothing")
        shard.outbox.append(OutboxRow(5, PhotoJob(5, "reviews-0", "originals/a.jpg").to_payload()))
        wake.set()  # what a listener does on the shard's NOTIFY
        wait_for(lambda: len(published(client)) == 1, "the job, long before the 60 s poll")
    finally:
        stop.set()
        wake.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert [j["outbox_id"] for j in published(client)] == ["5"]


def wait_for(check: Any, what: str, within: float = 5.0) -> None:
    limit = time.monotonic() + within
    while time.monotonic() < limit:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"not within {within} s: {what}")


def test_a_malformed_outbox_row_is_published_as_it_is_for_the_dead_letters() -> None:
    shard, client = FakeShard(), FakeRedis()
    shard.outbox.append(OutboxRow(7, json.dumps({"review_id": "x", "shard": "reviews-0"})))
    assert relay_once(shard, client) == 1
    assert published(client) == [{"review_id": "x", "shard": "reviews-0", "outbox_id": "7"}]
