"""Faults during the review flow: Redis down, a worker killed mid-job, replicas that lag.

Each test disrupts one node for seconds and restores it in a `finally`, because the lab is
shared while the tests run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from reviewlab_common import queue, storage
from reviewlab_common.topology import Node, Topology

from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes
from tests.integration.shop import (
    CONSISTENCY,
    KIM,
    SAM,
    Authored,
    assert_error,
    get_review,
    marker,
    patroni_members,
    pending_job,
    post_review,
    products_by_shard,
    rows_with_body,
    superuser,
    unique_photo,
    wait_photo_ready,
)

# worker-1 sleeps this long mid-job (after reading the job, before writing the cutout).
MID_JOB_DELAY_MS = 8000


def replicas_of(topology: Topology, shard: str) -> list[Node]:
    """The shard's current replicas, as its Patroni members report them."""
    members = patroni_members(topology.clusters[shard])
    return [topology.nodes[m["name"]] for m in members if m["role"] != "leader"]


@contextmanager
def replay_paused(topology: Topology, replicas: list[Node]) -> Iterator[None]:
    """WAL replay paused on every replica: they keep receiving WAL but show none of it."""
    try:
        for node in replicas:
            with superuser(topology, node, "reviews") as conn:
                conn.execute("SELECT pg_wal_replay_pause()")
        yield
    finally:
        for node in replicas:
            with superuser(topology, node, "reviews") as conn:
                conn.execute("SELECT pg_wal_replay_resume()")


def test_a_review_posted_while_redis_is_down_gets_its_cutout_after_redis_returns(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    authored: Authored,
    nodes: Nodes,
) -> None:
    nodes.stop("redis")
    try:
        posted = post_review(
            client,
            token_for(KIM),
            product_id=12,
            body=marker("Redis is down"),
            photo=unique_photo(),
        )
    finally:
        nodes.start("redis")
    review = authored.add(posted, KIM)
    # The job is in the shard's outbox, committed with the review: Redis was not needed.
    assert review["photo"]["status"] == "processing"
    done = wait_photo_ready(client, review["id"], posted.headers[CONSISTENCY], within=60)
    assert done["photo"]["cutout_url"]
    for worker in topology.of_kind("worker"):
        nodes.wait_ready(worker.name, within=30)


def test_a_post_while_minio_is_down_is_a_clear_503_that_writes_nothing(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    nodes: Nodes,
) -> None:
    photo = unique_photo()
    body = marker("MinIO is down")
    nodes.stop("minio")
    try:
        reply = post_review(client, token_for(KIM), product_id=13, body=body, photo=photo)
    finally:
        nodes.start("minio")
    error = assert_error(reply, 503)
    assert error["code"] == "storage_unavailable"
    assert "Nothing was written" in error["message"]
    assert reply.headers.get("Retry-After")
    assert sum(rows_with_body(topology, body).values()) == 0
    key = f"originals/{hashlib.sha256(photo).hexdigest()}.jpg"
    assert not storage.exists(storage.client(topology), key)
    for web in topology.of_kind("web"):
        nodes.wait_ready(web.name, within=30)


def test_a_job_of_a_worker_killed_mid_job_is_finished_by_the_other(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    authored: Authored,
    nodes: Nodes,
) -> None:
    victim, survivor = "worker-1", "worker-2"
    nodes.set_delay(victim, MID_JOB_DELAY_MS)
    try:
        # Only the victim reads new jobs for a few seconds, so it is the one that takes ours.
        nodes.stop(survivor)
        try:
            posted = post_review(
                client,
                token_for(SAM),
                product_id=14,
                body=marker("killed mid-job"),
                photo=unique_photo(),
            )
            review = authored.add(posted, SAM)
            eventually(
                lambda: pending_job(topology, review["id"], victim),
                within=30,
                every=0.1,
                what=f"{victim} holds the job of review {review['id']}",
            )
        finally:
            nodes.start(survivor, wait_ready=False)
        nodes.kill(victim)
        nodes.stop(victim)
        nodes.wait_ready(survivor)

        consistency = posted.headers[CONSISTENCY]
        killed = get_review(client, review["id"], consistency).json()
        assert killed["photo"]["status"] == "processing", "the job finished before the kill"
        # The survivor claims the silent consumer's job once it has been idle 15 s.
        done = wait_photo_ready(client, review["id"], consistency, within=60)
        assert done["photo"]["cutout_url"]
        assert nodes.state(victim) == "stopped", "the killed worker came back early"
        assert pending_job(topology, review["id"], victim) is None
        assert pending_job(topology, review["id"], survivor) is None
    finally:
        nodes.start(survivor)
        nodes.start(victim)
        nodes.set_delay(victim, 0)


@dataclass
class Observed:
    """What the vIP answered while replay was paused, judged once the window is known valid."""

    review_id: int
    with_token: list[httpx.Response] = field(default_factory=list)
    listings: list[httpx.Response] = field(default_factory=list)
    by_id_without_token: httpx.Response | None = None


def replicas_behind(topology: Topology, replicas: list[Node], lsn: str) -> bool:
    """Has no replica replayed LSN yet? (Then no read from one could have seen that write.)"""
    for node in replicas:
        with superuser(topology, node, "reviews") as conn:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() < %s::pg_lsn", (lsn,)).fetchone()
            if not row or not row[0]:
                return False
    return True


def observe_reads(
    vip: str, token: str, product_id: int, shard: str, authored: Authored
) -> tuple[Observed, str]:
    # A fresh client: the cookie a write sets must not stand in for the header below.
    with httpx.Client(base_url=vip, timeout=15) as writer:
        posted = post_review(writer, token, product_id=product_id, body=marker("read my write"))
    review = authored.add(posted, KIM)
    consistency = posted.headers[CONSISTENCY]
    seen = Observed(review["id"])
    for _ in range(3):  # whichever web server the vIP picks
        seen.with_token.append(
            httpx.get(
                f"{vip}/api/reviews/{review['id']}", headers={CONSISTENCY: consistency}, timeout=15
            )
        )
        seen.listings.append(
            httpx.get(f"{vip}/api/products/{product_id}/reviews?limit=100", timeout=15)
        )
    seen.by_id_without_token = httpx.get(f"{vip}/api/reviews/{review['id']}", timeout=15)
    return seen, consistency.removeprefix(f"{shard}=")


def test_read_your_writes_while_replicas_do_not_replay(
    topology: Topology, vip: str, token_for: Callable[[int], str], authored: Authored
) -> None:
    shard = "reviews-1"
    product_id = products_by_shard(topology)[shard][1]
    replicas = replicas_of(topology, shard)
    assert replicas, f"{shard} has no replica to lag"
    replica_names = {r.name for r in replicas}
    # Patroni resumes a paused replay on its next HA loop (every few seconds), so a window
    # counts only if, at its end, no replica had replayed the write yet.
    seen: Observed | None = None
    for _ in range(5):
        with replay_paused(topology, replicas):
            attempt, lsn = observe_reads(vip, token_for(KIM), product_id, shard, authored)
            if replicas_behind(topology, replicas, lsn):
                seen = attempt
                break
    assert seen, "Patroni resumed replay before every one of 5 short windows ended"

    for mine in seen.with_token:
        assert mine.status_code == 200, mine.text
        assert mine.headers["X-Read-From"] == f"{shard}/primary"
        assert mine.headers["X-Read-Node"] not in replica_names
    replica_reads = 0
    for page in seen.listings:
        assert page.status_code == 200, page.text
        ids = {item["id"] for item in page.json()["items"]}
        if page.headers["X-Read-From"].endswith("/replica"):
            # Without the token a lagging replica answers: the new review is not there yet.
            replica_reads += 1
            assert page.headers["X-Read-Node"] in replica_names
            assert seen.review_id not in ids
        else:
            assert seen.review_id in ids
    assert replica_reads, "no read without a token went to a replica"
    anyone = seen.by_id_without_token
    assert anyone is not None
    if anyone.status_code == 200:
        assert anyone.headers["X-Read-From"] == f"{shard}/primary"
    else:
        assert anyone.status_code == 404, anyone.text
        assert anyone.json()["error"]["code"] == "review_not_found"

    # Once replay resumes the replicas catch up and serve it without a token too.
    eventually(
        lambda: httpx.get(f"{vip}/api/reviews/{seen.review_id}", timeout=15).status_code == 200,
        within=15,
        what="the replicas show the review after replay resumed",
    )


def test_a_job_that_keeps_failing_ends_in_the_dead_letter_stream(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    authored: Authored,
    nodes: Nodes,
) -> None:
    """The original vanishes before any worker runs: retries with backoff, then dead letter."""
    workers = [n.name for n in topology.of_kind("worker")]
    redis_client = queue.connect(topology, "admin")
    dead_before = redis_client.xlen(queue.DEAD_LETTER_STREAM)
    for name in workers:
        nodes.stop(name)
    try:
        posted = post_review(
            client, token_for(SAM), product_id=9, body=marker("dead letter"), photo=unique_photo()
        )
        review = authored.add(posted, SAM)
        original = review["photo"]["original_url"].split("/media/", 1)[1]
        storage.client(topology).delete_object(Bucket=storage.MEDIA_BUCKET, Key=original)
    finally:
        for name in workers:
            nodes.start(name, wait_ready=False)
    consistency = posted.headers[CONSISTENCY]

    def failed() -> dict[str, Any] | None:
        photo = get_review(client, review["id"], consistency).json()["photo"]
        return photo if photo["status"] == "failed" else None

    # Three attempts with 1 s and 4 s of backoff between them.
    photo = eventually(failed, within=60, what="the photo marked failed")
    assert "after 3 attempts" in photo["error"], photo
    assert photo["cutout_url"] is None
    dead = redis_client.xrevrange(queue.DEAD_LETTER_STREAM, count=20)
    assert redis_client.xlen(queue.DEAD_LETTER_STREAM) > dead_before
    assert any(fields.get("review_id") == str(review["id"]) for _, fields in dead), dead
    for name in workers:
        nodes.wait_ready(name)
    scraped = [httpx.get(f"{topology.nodes[n].url}/metrics", timeout=5).text for n in workers]
    assert any('worker_jobs_total{outcome="dead_letter"}' in text for text in scraped)
