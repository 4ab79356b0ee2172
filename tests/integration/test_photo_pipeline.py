"""Kim's review with a photo, end to end: vIP -> shard -> outbox -> worker -> MinIO -> CDN edge."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import httpx
from PIL import Image
from reviewlab_common import dns as lab_dns
from reviewlab_common import shards, storage
from reviewlab_common.topology import Topology

from tests.integration.shop import (
    CONSISTENCY,
    KIM,
    Authored,
    edge_url,
    marker,
    post_review,
    rows_with_body,
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
    assert cutout_url.endswith(".webp")

    # The worker reports its time per stage in its metrics.
    scraped = [httpx.get(f"{n.url}/metrics", timeout=5).text for n in topology.of_kind("worker")]
    for stage in ("decode", "infer", "compose", "encode"):
        assert any(f'worker_stage_seconds_count{{stage="{stage}"}}' in t for t in scraped), stage

    # The CDN's public name resolves to the edge in the lab's DNS.
    edge = topology.nodes[topology.services["cdn"]]
    assert edge.address in lab_dns.lookup(topology, "cdn")

    first = httpx.get(edge_url(topology, cutout_url), timeout=10)
    assert first.status_code == 200
    assert first.headers["X-Cache-Status"] == "MISS"
    assert first.headers["Content-Type"] == "image/webp"
    assert "immutable" in first.headers["Cache-Control"]
    second = httpx.get(edge_url(topology, cutout_url), timeout=10)
    assert second.status_code == 200
    assert second.headers["X-Cache-Status"] == "HIT"
    assert second.content == first.content

    with Image.open(io.BytesIO(first.content)) as cutout:
        assert cutout.format == "WEBP"
        assert cutout.mode == "RGBA"
        with Image.open(io.BytesIO(photo)) as source:
            assert cutout.size == source.size
        low, high = cutout.getchannel("A").getextrema()
        # Kim is kept and the studio backdrop is cut away: both opaque and clear pixels.
        assert low <= 10 and high >= 245, (low, high)
        histogram = cutout.getchannel("A").histogram()
        pixels = cutout.width * cutout.height
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
    assert reply.headers["X-Cache-Status"] in ("MISS", "HIT", "EXPIRED", "REVALIDATED", "STALE")
    cache_control = reply.headers["Cache-Control"]
    assert "immutable" not in cache_control
    ages = max_ages(cache_control)
    assert ages and all(0 < age <= SHORT_TTL_S for age in ages), cache_control
    again = httpx.get(edge_url(topology, image_url), timeout=10)
    assert again.headers["X-Cache-Status"] == "HIT"


def test_the_edge_answers_for_a_missing_media_key_without_leaking_the_bucket(
    topology: Topology,
) -> None:
    edge = topology.nodes[topology.services["cdn"]]
    reply = httpx.get(f"{edge.url}/media/cutouts/{'0' * 32}.webp", timeout=10)
    assert reply.status_code in (403, 404)
    refused = httpx.put(f"{edge.url}/media/cutouts/{'0' * 32}.webp", content=b"x", timeout=10)
    assert refused.status_code in (403, 405)
