"""The CDN's two tiers: two edges, one origin shield, GeoDNS, push and purge (docs/cdn.md)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest
from reviewlab_common import cdn, storage
from reviewlab_common import dns as lab_dns
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Node, Topology
from reviewlab_lab import edgestats, geodns

from tests.integration.conftest import eventually
from tests.integration.shop import (
    CONSISTENCY,
    KIM,
    Authored,
    marker,
    post_review,
    unique_photo,
    wait_photo_ready,
)

BURST = 100
NATIVE_ONLY = pytest.mark.skipif(
    os.environ.get("REVIEWLAB_RUNTIME", "native") != "native",
    reason="the machine's source address reaches a Compose node as the bridge's gateway",
)


@pytest.fixture()
def edges(topology: Topology) -> list[Node]:
    found = topology.of_kind("edge")
    assert len(found) == 2, [n.name for n in found]
    return found


@pytest.fixture()
def purge_key(topology: Topology) -> str:
    return cdn.purge_key(lab_secrets.load(topology).token_secret)


@pytest.fixture()
def new_object(topology: Topology) -> Iterator[str]:
    """An object no CDN tier has cached yet: its /media/ path; removed from MinIO after."""
    s3 = storage.client(topology)
    key = f"cutouts/test-tiers-{uuid.uuid4().hex}.jpg"
    storage.put_object(s3, key, os.urandom(8192), content_type="image/jpeg")
    yield f"/media/{key}"
    s3.delete_object(Bucket=storage.MEDIA_BUCKET, Key=key)
    cdn.purge(topology, [key], cdn.purge_key(lab_secrets.load(topology).token_secret))


def cache_status(edge: Node, path: str) -> str:
    reply = httpx.get(f"{edge.host_url}{path}", timeout=10)
    assert reply.status_code == 200, reply.text[:200]
    assert reply.headers["X-Served-By"] == edge.name
    return reply.headers["X-Cache-Status"]


@NATIVE_ONLY
def test_geodns_gives_each_client_network_the_edge_near_it(
    topology: Topology, edges: list[Node]
) -> None:
    edge_1, edge_2 = edges
    answers = {
        source: lab_dns.lookup(topology, "cdn", source=source, published=True)
        for source in ("127.0.1.5", "127.0.2.5", "127.0.3.5")
    }
    assert answers == {
        "127.0.1.5": [edge_1.host_address],
        "127.0.2.5": [edge_2.host_address],
        "127.0.3.5": [geodns.default_edge(topology).host_address],  # a network no edge claims
    }
    assert answers["127.0.1.5"] != answers["127.0.2.5"]
    # Split horizon still holds in every public view: no internal names.
    assert lab_dns.lookup(topology, "primary.catalog", source="127.0.2.5", published=True) == []
    assert lab_dns.lookup(topology, "www", source="127.0.2.5", published=True) == [
        topology.nodes[topology.services["www"]].host_address
    ]


@NATIVE_ONLY
def test_geodns_answers_match_the_topologys_choice(topology: Topology) -> None:
    for source in ("127.0.1.9", "127.0.2.9", "127.0.9.9"):
        got = lab_dns.lookup(topology, "cdn", source=source, published=True)
        assert got == [geodns.edge_for(topology, source).host_address], source


def test_cold_requests_over_both_edges_make_one_fetch_from_minio(
    topology: Topology, edges: list[Node], new_object: str
) -> None:
    ready = threading.Barrier(BURST)

    def one(n: int) -> str:
        edge = edges[n % 2]
        with httpx.Client(base_url=edge.host_url, timeout=30) as http:
            http.get("/healthz")  # connected before the burst starts
            ready.wait()
            reply = http.get(new_object)
        assert reply.status_code == 200
        return str(reply.headers["X-Cache-Status"])

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        statuses = list(pool.map(one, range(BURST)))
    assert len(statuses) == BURST
    assert statuses.count("origin MISS") == 1, statuses
    eventually(
        lambda: edgestats.shield_fetches(topology, new_object) >= 1,
        within=5,
        what="the shield's log line for the fetch",
    )
    assert edgestats.shield_fetches(topology, new_object) == 1


def test_the_edges_cache_what_the_shield_sends_whatever_its_expiry_headers(
    topology: Topology, edges: list[Node]
) -> None:
    # The two-tier pitfall: a shield's stale answer carries headers that say it expired.
    # Here the origin itself says so (an Expires in the past, no-cache); the edge must still
    # keep its copy for its own TTL and send the shield nothing more.
    s3 = storage.client(topology)
    key = f"products/test-expired-{uuid.uuid4().hex}.jpg"
    past = datetime(2000, 1, 1, tzinfo=UTC)
    s3.put_object(
        Bucket=storage.MEDIA_BUCKET,
        Key=key,
        Body=os.urandom(2048),
        ContentType="image/jpeg",
        CacheControl="no-cache, max-age=0",
        Expires=past,
    )
    path = f"/media/{key}"
    try:
        edge = edges[1]
        assert cache_status(edge, path) == "origin MISS"
        reply = httpx.get(f"{edge.host_url}{path}", timeout=10)
        assert reply.headers["X-Cache-Status"] == "edge HIT"
        assert "expires" not in reply.headers, reply.headers
        assert "no-cache" not in reply.headers["Cache-Control"]
    finally:
        s3.delete_object(Bucket=storage.MEDIA_BUCKET, Key=key)
        cdn.purge(topology, [key], cdn.purge_key(lab_secrets.load(topology).token_secret))


def test_a_purge_makes_the_next_request_a_miss(
    topology: Topology, edges: list[Node], new_object: str, purge_key: str
) -> None:
    edge_1, edge_2 = edges
    assert cache_status(edge_1, new_object) == "origin MISS"
    assert cache_status(edge_1, new_object) == "edge HIT"
    assert cache_status(edge_2, new_object) == "shield HIT"
    done = cdn.purge(topology, [new_object], purge_key)
    assert {(d.node, d.outcome) for d in done} == {
        ("shield", "purged"),
        (edge_1.name, "purged"),
        (edge_2.name, "purged"),
    }
    assert cache_status(edge_2, new_object) == "origin MISS"
    assert cache_status(edge_1, new_object) == "shield HIT"


def test_a_pushed_cutout_is_a_hit_on_both_edges_at_its_first_request(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    authored: Authored,
    edges: list[Node],
) -> None:
    posted = post_review(
        client, token_for(KIM), product_id=9, body=marker("pushed"), photo=unique_photo()
    )
    review = authored.add(posted, KIM)
    ready = wait_photo_ready(client, review["id"], posted.headers[CONSISTENCY])
    for url in (ready["photo"]["cutout_url"], ready["photo"]["mask_url"]):
        path = httpx.URL(url).raw_path.decode()
        assert [cache_status(edge, path) for edge in edges] == ["edge HIT", "edge HIT"], path


def test_a_deleted_reviews_photos_are_gone_from_every_cache(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    edges: list[Node],
    purge_key: str,
) -> None:
    token = token_for(KIM)
    posted = post_review(client, token, product_id=9, body=marker("deleted"), photo=unique_photo())
    assert posted.status_code == 201, posted.text
    review = posted.json()
    ready = wait_photo_ready(client, review["id"], posted.headers[CONSISTENCY])
    paths = [
        httpx.URL(ready["photo"][field]).raw_path.decode()
        for field in ("original_url", "cutout_url", "mask_url")
    ]
    assert cache_status(edges[0], paths[0]) in ("origin MISS", "shield HIT", "edge HIT")
    gone = client.delete(
        f"/api/reviews/{review['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert gone.status_code == 204, gone.text
    # A second purge finds nothing on any tier: the delete purged them all before it returned.
    after = cdn.purge(topology, paths, purge_key)
    assert len(after) == 3 * len(paths)
    assert {d.outcome for d in after} == {"not cached"}, after


def test_a_purge_without_the_labs_key_is_refused(
    topology: Topology, new_object: str, purge_key: str
) -> None:
    for node in cdn.tiers_to_purge(topology):
        url = f"{node.url}{cdn.PURGE_PATH}{new_object}"
        assert httpx.get(url, timeout=5).status_code == 403, node.name
        wrong = {cdn.PURGE_HEADER: "0" * 64}
        refused = httpx.get(url, headers=wrong, timeout=5)
        assert refused.status_code == 403, node.name
        assert "purge key" in refused.text


@NATIVE_ONLY
def test_a_purge_from_outside_the_labs_network_is_refused_even_with_the_key(
    topology: Topology, edges: list[Node], new_object: str, purge_key: str
) -> None:
    outside = httpx.HTTPTransport(local_address="127.0.1.5")
    with httpx.Client(transport=outside, timeout=5) as http:
        for edge in edges:
            url = f"{edge.host_url}{cdn.PURGE_PATH}{new_object}"
            assert http.get(url, headers={cdn.PURGE_HEADER: purge_key}).status_code == 403
