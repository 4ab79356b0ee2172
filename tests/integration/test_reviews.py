"""The review API through the vIP: shards, product pages, paging, listing, auth, idempotency."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from reviewlab_common import shards
from reviewlab_common.topology import Topology

from tests.integration.shop import (
    ALEX,
    CONSISTENCY,
    KIM,
    SAM,
    Authored,
    assert_error,
    auth,
    get_review,
    marker,
    post_review,
    products_by_shard,
    rows_with_body,
    unique_photo,
)


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
        assert shards.bucket_of_review(int(review["id"])) == shards.bucket_of(
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
        mine.append(int(authored.add(posted, ALEX)["id"]))
        consistency = posted.headers[CONSISTENCY]

    seen: list[int] = []
    cursor: str | None = None
    for _ in range(50):  # bounded: other tests' reviews may sit between ours
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
        seen.extend(int(item["id"]) for item in page["items"])
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
        mine[shard] = int(authored.add(posted, KIM)["id"])
        # The token of a write carries every shard the caller wrote before.
        consistency = posted.headers[CONSISTENCY]
    assert set(db_token_shards(consistency)) == set(mine)

    client.cookies.clear()
    reply = client.get("/api/reviews", params={"limit": 100}, headers={CONSISTENCY: consistency})
    assert reply.status_code == 200, reply.text
    # One page of the newest: no cursor is promised (a product's listing is what pages).
    assert set(reply.json()) == {"items"}, reply.json().keys()
    items = reply.json()["items"]
    ids = [int(item["id"]) for item in items]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == len(set(ids))
    # Ids begin with the web server's millisecond; created_at is the database's clock, so
    # reviews other clients wrote in the same few milliseconds may differ in it. Ours were
    # written one after another: the later one comes first.
    assert set(mine.values()) <= set(ids)
    ours = [review_id for review_id in ids if review_id in mine.values()]
    assert ours == sorted(mine.values(), reverse=True)
    read_from = {part.strip().split("/")[0] for part in reply.headers["X-Read-From"].split(",")}
    # Every shard that holds buckets is asked; one the map gives none (a shard added to take
    # buckets later) holds no review to merge.
    shard_map = shards.ShardMap(topology)
    shard_map.refresh()
    assert read_from == set(shard_map.snapshot().values())


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


def test_the_catalog_is_listed_page_by_page(client: httpx.Client) -> None:
    listed: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(20):
        params = {"limit": 20, **({"cursor": cursor} if cursor else {})}
        reply = client.get("/api/products", params=params)
        assert reply.status_code == 200, reply.text
        page = reply.json()
        assert len(page["items"]) <= 20
        listed += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [p["id"] for p in listed]
    assert ids == sorted(set(ids)) and len(ids) >= 50, ids
    assert all(p["name"] and p["shard"].startswith("reviews-") for p in listed)
    assert_error(client.get("/api/products", params={"cursor": "next"}), 422)


def test_the_shop_page_offers_every_product(client: httpx.Client) -> None:
    catalog = client.get("/api/products", params={"limit": 100}).json()["items"]
    page = client.get("/")
    assert page.status_code == 200
    form = page.text[page.text.index('<select name="product_id">') :]
    offered = re.findall(r'<option value="(\d+)">', form[: form.index("</select>")])
    assert [int(i) for i in offered] == [p["id"] for p in catalog]
    shown = re.findall(r'<article class="product" id="product-(\d+)"', page.text)
    assert [int(i) for i in shown] == [p["id"] for p in catalog]
