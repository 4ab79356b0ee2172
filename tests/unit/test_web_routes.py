"""The web service in-process: its routes, dependencies, auth, errors and method hygiene over an
in-memory shop (tests/unit/memory_shop.py) put in by a dependency override. No lab."""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image
from reviewlab_common import health, photos, shards, tokens
from reviewlab_common.consistency import HEADER
from reviewlab_common.topology import Topology, current
from reviewlab_web import deps
from reviewlab_web.app import create_app
from reviewlab_web.reviews import service

from tests.unit.memory_shop import MemoryShop, memory_shop

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's notice about the httpx it drives
    from fastapi.testclient import TestClient

KIM, ALEX = 1, 2


class NoDelay:
    def delay_seconds(self) -> float:
        return 0.0


@pytest.fixture(scope="module")
def topology() -> Topology:
    return current()


def serve(shop: MemoryShop) -> TestClient:
    """The real app (no lifespan: nothing connects) with SHOP as its backends."""
    app = create_app()
    app.dependency_overrides[deps.get_backends] = lambda: shop.backends
    # The telemetry middleware and /healthz read the app's state, not a dependency.
    app.state.backends = shop.backends
    app.state.delay = NoDelay()
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture()
def shop(topology: Topology) -> Iterator[MemoryShop]:
    made = memory_shop(topology)
    yield made
    made.backends.checks.close()


@pytest.fixture()
def client(shop: MemoryShop) -> TestClient:
    return serve(shop)


def bearer(shop: MemoryShop, user_id: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.issue(shop.backends.secrets.token_secret, user_id)}"}


def post(
    client: TestClient, shop: MemoryShop, user_id: int = KIM, **form: object
) -> httpx.Response:
    data = {"product_id": "1", "rating": "5", "body": "fits well", **form}
    return client.post("/api/reviews", data=data, headers=bearer(shop, user_id))


# Auth: every way a bearer token is missing or wrong is a JSON 401 that says what to do.


def test_no_token_is_a_401_that_says_how_to_get_one(client: TestClient) -> None:
    reply = client.post("/api/reviews", data={"product_id": "1", "rating": "5", "body": "x"})
    assert reply.status_code == 401
    error = reply.json()["error"]
    assert error["code"] == "missing_token" and "reviewlab token kim" in error["message"]


@pytest.mark.parametrize("header", ["Basic a2ltOnB3", "Bearer", "kim"])
def test_a_header_that_is_not_bearer_is_a_bad_token(client: TestClient, header: str) -> None:
    reply = client.delete("/api/reviews/1", headers={"Authorization": header})
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "bad_token"


def test_another_labs_token_is_refused(client: TestClient) -> None:
    forged = tokens.issue("another lab's secret, long enough for HS256", KIM)
    reply = client.delete("/api/reviews/1", headers={"Authorization": f"Bearer {forged}"})
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "bad_token"


# reviews/service.py through the routes.


def test_a_posted_review_lands_on_its_products_shard_and_reads_back(
    client: TestClient, shop: MemoryShop, topology: Topology
) -> None:
    reply = post(client, shop)
    assert reply.status_code == 201, reply.text
    review = reply.json()
    expected = shards.even_map(topology)[shards.bucket_of(1, topology.lab.buckets)]
    assert review["shard"] == expected and review["photo"] is None
    assert (
        isinstance(review["id"], str)
        and reply.headers["Location"] == f"/api/reviews/{review['id']}"
    )
    assert int(review["id"]) in shop.shards[expected].reviews
    # The write's position travels with the caller: the next read asks for it.
    token = reply.headers[HEADER]
    assert token.startswith(f"{expected}=0/")
    again = client.get(f"/api/reviews/{review['id']}", headers={HEADER: token})
    assert again.status_code == 200 and again.json() == review
    assert again.headers["X-Read-From"] == f"{expected}/replica"
    assert shop.backends.shards[expected].reads[-1] == token.partition("=")[2]


def test_a_review_of_an_unknown_product_is_a_422_and_nothing_is_written(
    client: TestClient, shop: MemoryShop
) -> None:
    reply = post(client, shop, product_id="99")
    assert reply.status_code == 422
    assert reply.json()["error"]["code"] == "unknown_product"
    assert not any(t.reviews for t in shop.shards.values())


def test_an_idempotency_key_replays_the_same_review_and_refuses_another(
    client: TestClient, shop: MemoryShop
) -> None:
    key = {"Idempotency-Key": "order-7"}
    form = {"product_id": "1", "rating": "4", "body": "soft linen"}
    first = client.post("/api/reviews", data=form, headers={**bearer(shop, KIM), **key})
    second = client.post("/api/reviews", data=form, headers={**bearer(shop, KIM), **key})
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    other = client.post(
        "/api/reviews", data={**form, "rating": "1"}, headers={**bearer(shop, KIM), **key}
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_conflict"
    assert sum(len(t.reviews) for t in shop.shards.values()) == 1


def test_a_photo_is_stored_before_the_review_and_its_job_written_with_it(
    client: TestClient, shop: MemoryShop
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 80)).save(buffer, format="PNG")
    reply = client.post(
        "/api/reviews",
        data={"product_id": "1", "rating": "5", "body": "with a photo"},
        files={"photo": ("kim.png", buffer.getvalue(), "image/png")},
        headers=bearer(shop, KIM),
    )
    assert reply.status_code == 201, reply.text
    review = reply.json()
    assert review["photo"]["status"] == photos.PhotoStatus.PROCESSING
    (key,) = shop.s3.objects
    assert key.startswith("originals/") and review["photo"]["original_url"].endswith(key)
    job = photos.PhotoJob.from_payload(shop.shard_holding(int(review["id"])).outbox[0])
    assert job == photos.PhotoJob(int(review["id"]), review["shard"], key)


def test_only_the_author_deletes_a_review(client: TestClient, shop: MemoryShop) -> None:
    review_id = post(client, shop).json()["id"]
    refused = client.delete(f"/api/reviews/{review_id}", headers=bearer(shop, ALEX))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_author"
    done = client.delete(f"/api/reviews/{review_id}", headers=bearer(shop, KIM))
    assert done.status_code == 204 and HEADER in done.headers
    gone = client.get(f"/api/reviews/{review_id}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "review_not_found"
    again = client.delete(f"/api/reviews/{review_id}", headers=bearer(shop, KIM))
    assert again.status_code == 404


@pytest.mark.parametrize("review_id", ["0", str(service.MAX_REVIEW_ID + 1), "7"])
def test_an_id_no_review_can_have_is_a_404(client: TestClient, review_id: str) -> None:
    reply = client.get(f"/api/reviews/{review_id}")
    assert reply.status_code == 404
    assert "does not exist" in reply.json()["error"]["message"]


def test_a_helpful_vote_counts_once_per_reader(client: TestClient, shop: MemoryShop) -> None:
    review_id = post(client, shop).json()["id"]
    url = f"/api/reviews/{review_id}/helpful"
    first = client.post(url, headers=bearer(shop, ALEX))
    repeat = client.post(url, headers=bearer(shop, ALEX))
    other = client.post(url, headers=bearer(shop, KIM))
    assert [r.status_code for r in (first, repeat, other)] == [200, 200, 200]
    assert [r.json()["helpful_votes"] for r in (first, repeat, other)] == [1, 1, 2]
    assert repeat.headers["Idempotent-Replayed"] == "true"
    assert client.post("/api/reviews/7/helpful", headers=bearer(shop, KIM)).status_code == 404


def test_recent_reviews_merge_every_shard_newest_first(
    client: TestClient, shop: MemoryShop, topology: Topology
) -> None:
    # Products on both shards, so the merge has something to merge.
    by_shard: dict[str, int] = {}
    for product_id in range(1, 200):
        shard = shards.even_map(topology)[shards.bucket_of(product_id, topology.lab.buckets)]
        by_shard.setdefault(shard, product_id)
    placed = set(shards.even_map(topology).values())  # a shard with no bucket is not asked
    assert len(by_shard) == len(placed)
    for product_id in by_shard.values():
        shop.catalog.products[product_id] = (product_id, f"item {product_id}", None)
        assert post(client, shop, product_id=str(product_id)).status_code == 201
    reply = client.get("/api/reviews", params={"limit": 10})
    assert reply.status_code == 200
    ids = [int(r["id"]) for r in reply.json()["items"]]
    assert len(ids) == len(by_shard) and ids == sorted(ids, reverse=True)
    assert {r["shard"] for r in reply.json()["items"]} == set(by_shard)
    assert len(reply.headers["X-Read-From"].split(", ")) == len(placed)


def test_products_page_by_cursor_and_a_bad_cursor_says_what_to_pass(client: TestClient) -> None:
    first = client.get("/api/products", params={"limit": 1})
    assert first.status_code == 200
    page = first.json()
    assert [p["id"] for p in page["items"]] == [1] and page["next_cursor"] == "1"
    second = client.get("/api/products", params={"limit": 1, "cursor": page["next_cursor"]})
    assert [p["id"] for p in second.json()["items"]] == [2]
    assert second.json()["next_cursor"] is None
    assert second.json()["items"][0]["image_url"].endswith("/media/products/2.jpg")
    bad = client.get("/api/products", params={"cursor": "²"})
    assert bad.status_code == 422 and "next_cursor" in bad.json()["error"]["message"]


def test_a_product_carries_its_rating_from_its_shard(client: TestClient, shop: MemoryShop) -> None:
    post(client, shop, rating="4")
    post(client, shop, rating="2", user_id=ALEX)
    reply = client.get("/api/products/1")
    assert reply.status_code == 200
    assert reply.json()["rating_count"] == 2 and reply.json()["rating_average"] == 3.0
    assert client.get("/api/products/3").status_code == 404


# errors.py: a shard map etcd does not hold is a JSON 503 that says so, with Retry-After.


def test_no_shard_map_is_a_json_503_for_a_write(topology: Topology) -> None:
    shop = memory_shop(topology, shard_map_in_etcd=False)
    try:
        reply = post(serve(shop), shop)
        assert reply.status_code == 503, reply.text
        assert reply.headers["Retry-After"]
        assert "shard map" in reply.json()["error"]["message"]
    finally:
        shop.backends.checks.close()


def test_a_lost_primary_is_a_503_that_says_nothing_was_written(
    client: TestClient, shop: MemoryShop
) -> None:
    from reviewlab_common.db import DatabaseUnavailable

    for router in shop.backends.shards.values():
        router.fault = DatabaseUnavailable("reviews-0 primary unavailable")  # type: ignore[attr-defined]
    reply = post(client, shop)
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "2"
    error = reply.json()["error"]
    assert error["code"] == "database_unavailable" and "Nothing was written" in error["message"]


def test_a_commit_with_an_unknown_outcome_says_to_read_back_or_reuse_the_key(
    client: TestClient, shop: MemoryShop
) -> None:
    from reviewlab_common.db import CommitOutcomeUnknown

    for router in shop.backends.shards.values():
        router.fault = CommitOutcomeUnknown("reviews-0 primary was lost while committing")  # type: ignore[attr-defined]
    reply = post(client, shop)
    assert reply.status_code == 503
    message = reply.json()["error"]["message"]
    assert "may have been kept" in message and "Idempotency-Key" in message


def test_storage_refusing_a_photo_is_a_503_and_no_review_is_written(
    client: TestClient, shop: MemoryShop
) -> None:
    shop.s3.refusing = True
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(buffer, format="PNG")
    reply = client.post(
        "/api/reviews",
        data={"product_id": "1", "rating": "5", "body": "photo while MinIO is down"},
        files={"photo": ("kim.png", buffer.getvalue(), "image/png")},
        headers=bearer(shop, KIM),
    )
    assert reply.status_code == 503, reply.text
    assert reply.json()["error"]["code"] == "storage_unavailable"
    assert not any(t.reviews for t in shop.shards.values())


# /readyz through the route: 503 for what every request needs, 200 degraded for the rest,
# and an answer within the deadline when a check hangs.


def readiness_of(topology: Topology, checks: dict[str, health.Check]) -> tuple[int, dict[str, Any]]:
    shop = memory_shop(topology, checks=checks)
    try:
        reply = serve(shop).get("/readyz")
        return reply.status_code, reply.json()
    finally:
        shop.backends.checks.close()


def test_readyz_is_ready_when_every_check_answers(topology: Topology) -> None:
    status, body = readiness_of(topology, {"catalog": lambda: None, "redis": lambda: None})
    assert status == 200 and body["status"] == "ready" and body["node"] == "web-1"


def test_readyz_without_redis_is_degraded_and_names_it(topology: Topology) -> None:
    status, body = readiness_of(
        topology, {"catalog": lambda: None, "redis": lambda: "Timeout connecting to server"}
    )
    assert status == 200 and body["status"] == "degraded"
    assert body["degraded"] == {"redis": "Timeout connecting to server"}


def test_readyz_without_the_catalog_is_a_503_naming_it(topology: Topology) -> None:
    status, body = readiness_of(topology, {"catalog": lambda: "primary unavailable"})
    assert status == 503
    assert body["error"]["message"] == "cannot reach: catalog"


def test_readyz_answers_within_its_deadline_while_a_check_hangs(topology: Topology) -> None:
    release = threading.Event()

    def hangs() -> str | None:
        release.wait(10)
        return None

    try:
        status, body = readiness_of(topology, {"catalog": lambda: None, "minio": hangs})
    finally:
        release.set()
    assert status == 200 and body["status"] == "degraded"
    assert str(body["degraded"]["minio"]).startswith("no answer in")


# methods.py: a known method a resource lacks is a 405 with its Allow list; an unknown one 501.


def test_a_known_method_the_resource_lacks_is_a_405_with_allow(client: TestClient) -> None:
    reply = client.put("/api/reviews/1")
    assert reply.status_code == 405
    assert reply.headers["Allow"] == "DELETE, GET, HEAD"
    assert (
        reply.json()["error"]["message"]
        == "PUT is not allowed on /api/reviews/1; use DELETE or GET or HEAD"
    )
    trace = client.request("TRACE", "/api/products")
    assert trace.status_code == 405 and trace.headers["Allow"] == "GET, HEAD"


def test_an_unknown_method_is_a_501_naming_what_the_api_answers(client: TestClient) -> None:
    reply = client.request("BREW", "/api/products")
    assert reply.status_code == 501
    error = reply.json()["error"]
    assert error["code"] == "method_not_implemented" and "DELETE" in error["message"]


def test_head_is_answered_by_get_without_content(client: TestClient) -> None:
    get = client.get("/api/products")
    head = client.head("/api/products")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"]
