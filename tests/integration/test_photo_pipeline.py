"""Kim's review with a photo, end to end: vIP -> shard -> outbox -> worker -> MinIO -> CDN edge."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from PIL import Image
from reviewlab_common import cdn, queue, shards, storage
from reviewlab_common import dns as lab_dns
from reviewlab_common.topology import Topology

from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes
from tests.integration.shop import (
    CONSISTENCY,
    KIM,
    NOOR,
    Authored,
    edge_url,
    get_review,
    marker,
    pending_job,
    post_review,
    rows_with_body,
    shard_primary,
    unique_photo,
    wait_photo_ready,
)

# The edge keeps product images (mutable keys) for a short time only.
SHORT_TTL_S = 300


def max_ages(cache_control: str) -> list[int]:
    return [int(v) for v in re.findall(r"max-age=(\d+)", cache_control)]


def test_kims_photo_becomes_a_transparent_cutout_served_by_the_cdn(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    authored: Authored,
) -> None:
    product_id = 7
    photo = unique_photo()
    body = marker("Fits perfectly, lovely linen.")
    posted = post_review(
        client, token_for(KIM), product_id=product_id, rating=5, body=body, photo=photo
    )
    review = authored.add(posted, KIM)
    assert review["user_id"] == KIM
    assert review["rating"] == 5
    assert review["body"] == body
    assert review["photo"]["status"] == "processing"
    assert review["photo"]["cutout_url"] is None
    assert review["shard"] == shards.ShardMap(topology).shard_for_product(product_id)
    assert rows_with_body(topology, body)[review["shard"]] == 1

    # The original is content-addressed and stored before the review was committed.
    original = httpx.URL(review["photo"]["original_url"])
    assert original.host == topology.fqdn("cdn")
    assert original.path.startswith("/media/originals/") and original.path.endswith(".jpg")
    key = original.path.removeprefix("/media/")
    assert storage.exists(storage.client(topology), key)

    ready = wait_photo_ready(client, review["id"], posted.headers[CONSISTENCY])
    cutout_url = ready["photo"]["cutout_url"]
    assert cutout_url and ready["photo"]["error"] is None
    assert httpx.URL(cutout_url).path.startswith("/media/cutouts/")
    assert cutout_url.endswith(".jpg")
    mask_url = ready["photo"]["mask_url"]
    assert mask_url == cutout_url.removesuffix(".jpg") + ".mask.png"

    # The worker reports its time per stage in its metrics.
    scraped = [httpx.get(f"{n.url}/metrics", timeout=5).text for n in topology.of_kind("worker")]
    for stage in ("decode", "infer", "mask", "encode"):
        assert any(f'worker_stage_seconds_count{{stage="{stage}"}}' in t for t in scraped), stage

    # The CDN's public name resolves to the edge, where the machine reaches it.
    edge = topology.nodes[topology.services["cdn"]]
    assert lab_dns.lookup(topology, "cdn", published=True) == [edge.host_address]

    # The worker pushed the cutout to the edges before it marked it ready: a HIT at once.
    first = httpx.get(edge_url(topology, cutout_url), timeout=10)
    assert first.status_code == 200
    assert first.headers["X-Cache-Status"] == "edge HIT"
    assert first.headers["Content-Type"] == "image/jpeg"
    assert "immutable" in first.headers["Cache-Control"]
    second = httpx.get(edge_url(topology, cutout_url), timeout=10)
    assert second.status_code == 200
    assert second.headers["X-Cache-Status"] == "edge HIT"
    assert second.content == first.content
    mask = httpx.get(edge_url(topology, mask_url), timeout=10)
    assert mask.status_code == 200
    assert mask.headers["Content-Type"] == "image/png"
    assert "immutable" in mask.headers["Cache-Control"]

    with Image.open(io.BytesIO(first.content)) as cutout:
        assert (cutout.format, cutout.mode) == ("JPEG", "RGB")
        with Image.open(io.BytesIO(photo)) as source:
            assert cutout.size == source.size
        size = cutout.size
    with Image.open(io.BytesIO(mask.content)) as levels:
        assert (levels.format, levels.mode) == ("PNG", "LA")
        # Stretched over the photo, as the shop page's CSS mask draws it.
        alpha = levels.getchannel("A").resize(size, Image.Resampling.BILINEAR)
    low, high = alpha.getextrema()
    # Kim is kept and the studio backdrop is cut away: both opaque and clear pixels.
    assert low <= 10 and high >= 245, (low, high)
    histogram = alpha.histogram()
    pixels = size[0] * size[1]
    clear, opaque = sum(histogram[:16]) / pixels, sum(histogram[240:]) / pixels
    assert 0.05 < clear < 0.95 and 0.05 < opaque < 0.95, (clear, opaque)

    # The original is served by the edge as well, and the upload's bytes are kept as sent.
    served = httpx.get(edge_url(topology, str(original)), timeout=10)
    assert served.status_code == 200 and served.content == photo


def test_product_image_has_a_short_ttl_at_the_edge(
    topology: Topology, client: httpx.Client
) -> None:
    product = client.get("/api/products/1").json()
    image_url = product["image_url"]
    assert httpx.URL(image_url).path.startswith("/media/products/")
    reply = httpx.get(edge_url(topology, image_url), timeout=10)
    assert reply.status_code == 200
    tier, status = reply.headers["X-Cache-Status"].split(" ")
    assert tier in cdn.TIERS and status in ("MISS", "HIT", "EXPIRED", "REVALIDATED", "STALE")
    cache_control = reply.headers["Cache-Control"]
    assert "immutable" not in cache_control
    ages = max_ages(cache_control)
    assert ages and all(0 < age <= SHORT_TTL_S for age in ages), cache_control
    # A stale copy is served while one request refreshes it in the background (UPDATING):
    # the refreshed copy is then a HIT.
    eventually(
        lambda: (
            httpx.get(edge_url(topology, image_url), timeout=10).headers["X-Cache-Status"]
            == "edge HIT"
        ),
        within=10,
        what="the product image a HIT at the edge",
    )


def test_the_edge_answers_for_a_missing_media_key_without_leaking_the_bucket(
    topology: Topology,
) -> None:
    edge = topology.nodes[topology.services["cdn"]]
    reply = httpx.get(f"{edge.url}/media/cutouts/{'0' * 32}.jpg", timeout=10)
    assert reply.status_code in (403, 404)
    refused = httpx.put(f"{edge.url}/media/cutouts/{'0' * 32}.jpg", content=b"x", timeout=10)
    assert refused.status_code in (403, 405)


# Poison jobs. Both tests hold the workers stopped while the review is posted, so the job
# waits in the shard's outbox until the test has damaged its original.
MID_JOB_DELAY_MS = 8000
MAX_ATTEMPTS = 3  # the workers' default (WorkerSettings.max_attempts)


@contextmanager
def workers_held(topology: Topology, nodes: Nodes) -> Iterator[list[str]]:
    """Every worker stopped; started again (and ready) when the block ends, whatever happens."""
    names = [n.name for n in topology.of_kind("worker")]
    for name in names:
        nodes.stop(name)
    try:
        yield names
    finally:
        for name in names:
            nodes.set_delay(name, 0)
            nodes.start(name, wait_ready=False)
        for name in names:
            nodes.wait_ready(name)


def dead_letters_of(topology: Topology, review_id: int) -> list[dict[str, str]]:
    admin = queue.connect(topology, "admin")
    entries = admin.xrevrange(queue.DEAD_LETTER_STREAM, count=200)
    return [fields for _, fields in entries if fields.get("review_id") == str(review_id)]


def photo_when_failed(client: httpx.Client, review_id: int, consistency: str) -> dict[str, Any]:
    def failed() -> dict[str, Any] | None:
        photo: dict[str, Any] = get_review(client, review_id, consistency).json()["photo"]
        assert photo["status"] != "ready", "the damaged original was cut out"
        return photo if photo["status"] == "failed" else None

    return eventually(failed, within=60, every=0.2, what=f"photo of review {review_id} failed")


def test_an_original_damaged_after_the_post_fails_its_photo_not_the_worker(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    authored: Authored,
    nodes: Nodes,
) -> None:
    with workers_held(topology, nodes) as workers:
        posted = post_review(
            client, token_for(NOOR), product_id=15, body=marker("poison"), photo=unique_photo()
        )
        review = authored.add(posted, NOOR)
        key = review["photo"]["original_url"].split("/media/", 1)[1]
        # Each worker sleeps mid-job, after it took the job and before it reads the original.
        for name in workers:
            nodes.set_delay(name, MID_JOB_DELAY_MS)
            nodes.start(name, wait_ready=False)
        pids = {name: nodes.pid(name) for name in workers}
        taken = eventually(
            lambda: pending_job(topology, review["id"]),
            within=30,
            every=0.05,
            what=f"a worker holds the job of review {review['id']}",
        )
        damaged = b"\xff\xd8\xff\xe0" + b"no longer a photo " * 64
        storage.put_object(storage.client(topology), key, damaged, content_type="image/jpeg")
        assert taken["times_delivered"] == 1
        held = get_review(client, review["id"], posted.headers[CONSISTENCY]).json()["photo"]
        assert held["status"] == "processing", "the worker finished before the damage"

        photo = photo_when_failed(client, review["id"], posted.headers[CONSISTENCY])
        assert photo["cutout_url"] is None
        error = photo["error"]
        assert "not a readable image" in error and "(after 1 attempt)" in error, error
        assert "post the photo again" in error, error
        (dead,) = dead_letters_of(topology, review["id"])
        assert dead["consumer"] == taken["consumer"]
        assert dead["deliveries"] == "1"
        assert "PhotoRejected" in dead["error"], dead
        assert pending_job(topology, review["id"]) is None, "a dead letter is acknowledged"
        # No worker exited: the same processes run, and they still take jobs.
        assert {name: nodes.pid(name) for name in workers} == pids
        assert all(nodes.state(name) == "running" for name in workers)
        for name in workers:
            nodes.set_delay(name, 0)
        healthy = post_review(
            client,
            token_for(NOOR),
            product_id=15,
            body=marker("after poison"),
            photo=unique_photo(),
        )
        after = authored.add(healthy, NOOR)
        assert wait_photo_ready(client, after["id"], healthy.headers[CONSISTENCY])["photo"]
        assert {name: nodes.pid(name) for name in workers} == pids


def test_a_failing_jobs_attempt_count_survives_a_worker_restart(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    authored: Authored,
    nodes: Nodes,
) -> None:
    worker = "worker-1"
    with workers_held(topology, nodes):
        posted = post_review(
            client, token_for(NOOR), product_id=16, body=marker("restart"), photo=unique_photo()
        )
        review = authored.add(posted, NOOR)
        key = review["photo"]["original_url"].split("/media/", 1)[1]
        # Every delivery fails: the original is gone. Only worker-1 runs.
        storage.client(topology).delete_object(Bucket=storage.MEDIA_BUCKET, Key=key)
        nodes.start(worker, wait_ready=False)
        seen: list[int] = []

        def deliveries() -> int | None:
            """The job's delivery count now, as Redis keeps it; None once it left the list."""
            entry = pending_job(topology, review["id"])
            if entry is None:
                return None
            seen.append(int(entry["times_delivered"]))
            return seen[-1]

        eventually(
            lambda: (deliveries() or 0) >= 2, within=30, every=0.05, what="two failed deliveries"
        )
        before = nodes.pid(worker)
        nodes.stop(worker)
        nodes.start(worker)
        assert nodes.restarted_since(worker, before)

        # The new process goes on from the stream's count: one more delivery, then the end.
        eventually(
            lambda: deliveries() is None, within=60, every=0.05, what="the job leaves the list"
        )
        assert max(seen) <= MAX_ATTEMPTS, seen
        (dead,) = dead_letters_of(topology, review["id"])
        assert dead["deliveries"] == str(MAX_ATTEMPTS)
        photo = get_review(client, review["id"], posted.headers[CONSISTENCY]).json()["photo"]
        assert photo["status"] == "failed"
        assert f"(after {MAX_ATTEMPTS} attempts)" in photo["error"], photo
        with shard_primary(topology, review["shard"]) as conn:
            row = conn.execute(
                "SELECT photo_attempts FROM reviews WHERE id = %s", (review["id"],)
            ).fetchone()
        assert row == (MAX_ATTEMPTS,)
