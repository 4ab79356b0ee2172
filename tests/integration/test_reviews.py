"""The review API through the vIP: shards, product pages, paging, listing, auth, idempotency.

The helpers at the top are shared by the other integration files of the review flow.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from reviewlab_common import db, shards
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology

from tests.integration.conftest import eventually

PORTRAIT = Path(__file__).resolve().parents[1] / "fixtures" / "portrait.jpg"
CONSISTENCY = "X-Consistency-Token"
# Users seeded by the lab: 1 kim, 2 alex, 3 sam, 4 noor, 5 loadtest.
KIM, ALEX, SAM, NOOR = 1, 2, 3, 4


# Shared helpers -------------------------------------------------------------------------------
def unique_photo(tag: str | None = None) -> bytes:
    """The portrait with a JPEG comment: new bytes, so a new content-addressed original."""
    data = PORTRAIT.read_bytes()
    text = (tag or uuid.uuid4().hex).encode()
    comment = b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text
    return data[:2] + comment + data[2:]


def marker(what: str) -> str:
    """A review body no one else writes, so rows can be counted by it."""
    return f"{what} [{uuid.uuid4().hex}]"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_review(
    client: httpx.Client,
    token: str,
    *,
    product_id: int | str,
    body: str,
    rating: int | str = 4,
    photo: bytes | None = None,
    filename: str = "photo.jpg",
    content_type: str = "image/jpeg",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    files = {"photo": (filename, photo, content_type)} if photo is not None else None
    return client.post(
        "/api/reviews",
        headers={**auth(token), **(headers or {})},
        data={"product_id": str(product_id), "rating": str(rating), "body": body},
        files=files,
    )


def get_review(client: httpx.Client, review_id: int, consistency: str | None) -> httpx.Response:
    """GET a review; the token (not the client's cookie) decides read-your-writes."""
    client.cookies.clear()
    headers = {CONSISTENCY: consistency} if consistency else {}
    return client.get(f"/api/reviews/{review_id}", headers=headers)


def wait_photo_ready(
    client: httpx.Client, review_id: int, consistency: str, *, within: float = 60
) -> dict[str, Any]:
    """Poll the review until its photo is ready; a failed photo fails at once."""

    def ready() -> dict[str, Any] | None:
        reply = get_review(client, review_id, consistency)
        assert reply.status_code == 200, reply.text
        review: dict[str, Any] = reply.json()
        status = review["photo"]["status"]
        if status == "failed":
            pytest.fail(f"photo of review {review_id} failed: {review['photo']['error']}")
        return review if status == "ready" else None

    return eventually(ready, within=within, every=0.2, what=f"photo of review {review_id} ready")


def edge_url(topology: Topology, url: str) -> str:
    """A media URL from the API, sent to the CDN edge's address instead of its DNS name."""
    edge = topology.nodes[topology.services["cdn"]]
    return f"{edge.url}{httpx.URL(url).raw_path.decode()}"


def assert_error(reply: httpx.Response, status: int | tuple[int, ...]) -> dict[str, Any]:
    """The reply is the expected 4xx with a JSON error that says something."""
    expected = status if isinstance(status, tuple) else (status,)
    assert reply.status_code in expected, f"{reply.status_code}: {reply.text[:300]}"
    assert reply.headers["content-type"].startswith("application/json"), reply.text[:300]
    error = reply.json()["error"]
    assert error["code"], error
    assert len(error["message"]) > 10, error
    return dict(error)


def shard_primary(topology: Topology, shard: str) -> psycopg.Connection[Any]:
    """A superuser connection to the shard's primary, for checks the API cannot make."""
    cluster = topology.clusters[shard]
    info = db.conninfo(
        [m.address for m in cluster.members],
        cluster.members[0].port,
        dbname="reviews",
        user="postgres",
        password=lab_secrets.load(topology).postgres_password,
        app="reviewlab-tests",
        session="read-write",
        timeout=3,
    )
    return psycopg.connect(info, autocommit=True)


def rows_with_body(topology: Topology, body: str) -> dict[str, int]:
    """How many reviews carry exactly BODY, per shard."""
    found = {}
    for cluster in topology.shards:
        with shard_primary(topology, cluster.name) as conn:
            row = conn.execute("SELECT count(*) FROM reviews WHERE body = %s", (body,)).fetchone()
            found[cluster.name] = int(row[0]) if row else 0
    return found


def products_by_shard(topology: Topology) -> dict[str, list[int]]:
    """The seeded products (1..50) grouped by the shard their reviews live on."""
    shard_map = shards.ShardMap(topology)
    grouped: dict[str, list[int]] = {c.name: [] for c in topology.shards}
    for product_id in range(1, 51):
        grouped[shard_map.shard_for_product(product_id)].append(product_id)
    return grouped


class Authored:
    """Reviews a test made, deleted by their authors when the test ends."""

    def __init__(self, vip: str, token_for: Callable[[int], str]) -> None:
        self.vip = vip
        self.token_for = token_for
        self.made: list[tuple[int, int]] = []

    def add(self, reply: httpx.Response, user_id: int) -> dict[str, Any]:
        assert reply.status_code == 201, reply.text
        review: dict[str, Any] = reply.json()
        self.made.append((review["id"], user_id))
        return review

    def delete_all(self) -> None:
        for review_id, user_id in self.made:
            gone = httpx.delete(
                f"{self.vip}/api/reviews/{review_id}", headers=auth(self.token_for(user_id))
            )
            assert gone.status_code in (204, 404), gone.text


@pytest.fixture()
def authored(vip: str, token_for: Callable[[int], str]) -> Iterator[Authored]:
    made = Authored(vip, token_for)
    yield made
    made.delete_all()


# Tests ----------------------------------------------------------------------------------------
def test_get_by_id_is_served_by_the_products_shard(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    authored: Authored,
) -> None:
    for shard, products in products_by_shard(topology).items():
        body = marker(f"goes to {shard}")
        posted = post_review(client, token_for(KIM), product_id=products[0], body=body)
        review = authored.add(posted, KIM)
        assert posted.headers["Location"] == f"/api/reviews/{review['id']}"
        assert review["shard"] == shard
        assert shards.bucket_of_review(review["id"]) == shards.bucket_of(
            products[0], topology.lab.buckets
        )

        got = get_review(client, review["id"], posted.headers[CONSISTENCY])
        assert got.status_code == 200, got.text
        assert got.json() == review
        assert got.headers["X-Read-From"].startswith(f"{shard}/")
        members = {m.name for m in topology.clusters[shard].members}
        assert got.headers["X-Read-Node"] in members
        assert rows_with_body(topology, body) == {
            c.name: int(c.name == shard) for c in topology.shards
        }


def test_product_page_counts_and_averages_new_ratings(
    client: httpx.Client, token_for: Callable[[int], str], authored: Authored
) -> None:
    product_id = 23
    before = client.get(f"/api/products/{product_id}").json()
    consistency = ""
    for rating in (2, 5):
        posted = post_review(
            client,
            token_for(SAM),
            product_id=product_id,
            rating=rating,
            body=marker("counted"),
            headers={CONSISTENCY: consistency} if consistency else None,
        )
        authored.add(posted, SAM)
        consistency = posted.headers[CONSISTENCY]

    client.cookies.clear()
    after = client.get(f"/api/products/{product_id}", headers={CONSISTENCY: consistency})
    assert after.status_code == 200, after.text
    page = after.json()
    count = before["rating_count"]
    total = (before["rating_average"] or 0) * count + 2 + 5
    assert page["rating_count"] == count + 2
    assert page["rating_average"] == pytest.approx(total / (count + 2), abs=0.01)
    assert page["id"] == product_id and page["name"]


def test_product_reviews_page_newest_first_without_duplicates(
    client: httpx.Client, token_for: Callable[[int], str], authored: Authored
) -> None:
    product_id = 31
    mine: list[int] = []
    consistency = ""
    for n in range(5):
        posted = post_review(
            client,
            token_for(ALEX),
            product_id=product_id,
            body=marker(f"page item {n}"),
            headers={CONSISTENCY: consistency} if consistency else None,
        )
        mine.append(authored.add(posted, ALEX)["id"])
        consistency = posted.headers[CONSISTENCY]

    seen: list[int] = []
    cursor: str | None = None
    for _ in range(50):  # bounded: other engineers' reviews may sit between ours
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        client.cookies.clear()
        reply = client.get(
            f"/api/products/{product_id}/reviews",
            params=params,
            headers={CONSISTENCY: consistency},
        )
        assert reply.status_code == 200, reply.text
        page = reply.json()
        assert len(page["items"]) <= 2
        assert all(item["product_id"] == product_id for item in page["items"])
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if set(mine) <= set(seen) or cursor is None:
            break
    assert len(seen) == len(set(seen)), f"a review came twice across pages: {seen}"
    assert seen == sorted(seen, reverse=True), "pages are not newest first"
    assert [i for i in seen if i in mine] == sorted(mine, reverse=True)

    bad = client.get(f"/api/products/{product_id}/reviews", params={"cursor": "yesterday"})
    assert_error(bad, 422)


def test_listing_merges_every_shard_newest_first(
    topology: Topology, client: httpx.Client, token_for: Callable[[int], str], authored: Authored
) -> None:
    mine: dict[str, int] = {}
    consistency = ""
    for shard, products in products_by_shard(topology).items():
        posted = post_review(
            client,
            token_for(KIM),
            product_id=products[-1],
            body=marker(f"listed from {shard}"),
            headers={CONSISTENCY: consistency} if consistency else None,
        )
        mine[shard] = authored.add(posted, KIM)["id"]
        # The token of a write carries every shard the caller wrote before.
        consistency = posted.headers[CONSISTENCY]
    assert set(db_token_shards(consistency)) == set(mine)

    client.cookies.clear()
    reply = client.get("/api/reviews", params={"limit": 100}, headers={CONSISTENCY: consistency})
    assert reply.status_code == 200, reply.text
    items = reply.json()["items"]
    ids = [item["id"] for item in items]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == len(set(ids))
    created = [item["created_at"] for item in items]
    assert created == sorted(created, reverse=True)
    assert set(mine.values()) <= set(ids)
    read_from = {part.strip().split("/")[0] for part in reply.headers["X-Read-From"].split(",")}
    assert read_from == {c.name for c in topology.shards}


def db_token_shards(token: str) -> list[str]:
    return [part.split("=")[0] for part in token.split(",") if part]


def test_only_the_author_may_delete(
    client: httpx.Client, token_for: Callable[[int], str], authored: Authored
) -> None:
    posted = post_review(client, token_for(KIM), product_id=5, body=marker("mine to delete"))
    review = authored.add(posted, KIM)
    consistency = posted.headers[CONSISTENCY]

    refused = client.delete(f"/api/reviews/{review['id']}", headers=auth(token_for(ALEX)))
    assert assert_error(refused, 403)["code"] == "not_author"
    assert get_review(client, review["id"], consistency).status_code == 200

    gone = client.delete(f"/api/reviews/{review['id']}", headers=auth(token_for(KIM)))
    assert gone.status_code == 204, gone.text
    after = get_review(client, review["id"], gone.headers[CONSISTENCY])
    assert_error(after, 404)
    again = client.delete(f"/api/reviews/{review['id']}", headers=auth(token_for(KIM)))
    assert_error(again, 404)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer not-a-token", "Basic a2ltOnNlY3JldA==", "tampered"],
)
def test_missing_or_bad_token_is_401_and_writes_nothing(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    authorization: str | None,
) -> None:
    if authorization == "tampered":
        good = token_for(KIM)
        # Flip one character of the signature (the last part): a forged token.
        flipped = "A" if good[-2] != "A" else "B"
        authorization = f"Bearer {good[:-2]}{flipped}{good[-1]}"
    headers = {} if authorization is None else {"Authorization": authorization}
    body = marker("anonymous")
    reply = client.post(
        "/api/reviews", headers=headers, data={"product_id": "5", "rating": "5", "body": body}
    )
    assert assert_error(reply, 401)["code"] in ("missing_token", "bad_token")
    assert sum(rows_with_body(topology, body).values()) == 0
    assert_error(client.delete("/api/reviews/1", headers=headers), 401)


def test_idempotency_key_replays_the_same_review_once(
    topology: Topology, client: httpx.Client, token_for: Callable[[int], str], authored: Authored
) -> None:
    key = {"Idempotency-Key": f"test-{uuid.uuid4()}"}
    body = marker("sent twice")
    photo = unique_photo()
    first = post_review(client, token_for(KIM), product_id=9, body=body, photo=photo, headers=key)
    review = authored.add(first, KIM)
    again = post_review(client, token_for(KIM), product_id=9, body=body, photo=photo, headers=key)
    assert again.status_code == 201, again.text
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["id"] == review["id"]
    assert again.json()["photo"]["original_url"] == review["photo"]["original_url"]
    assert sum(rows_with_body(topology, body).values()) == 1

    other = post_review(
        client, token_for(KIM), product_id=9, body=marker("another review"), headers=key
    )
    assert assert_error(other, 409)["code"] == "idempotency_conflict"
    # The key belongs to its user: another user's same key is a new review.
    alex = post_review(client, token_for(ALEX), product_id=9, body=body, headers=key)
    assert authored.add(alex, ALEX)["id"] != review["id"]
    assert sum(rows_with_body(topology, body).values()) == 2
