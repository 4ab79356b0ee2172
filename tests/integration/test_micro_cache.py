"""The vIP's micro-cache of product review listings: anonymous readers share one copy for a
second; a reader with a consistency token, its cookie or a bearer token bypasses it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
from reviewlab_lab import loadbalancer

from tests.integration.conftest import eventually
from tests.integration.shop import (
    CONSISTENCY,
    SAM,
    Authored,
    auth,
    marker,
    post_review,
)

PRODUCT = 41
LISTING = f"/api/products/{PRODUCT}/reviews"
CACHE = "X-Micro-Cache"
COOKIE = loadbalancer.MICRO_CACHE.consistency_cookie


def ids(reply: httpx.Response) -> set[int]:
    assert reply.status_code == 200, reply.text
    return {item["id"] for item in reply.json()["items"]}


def test_anonymous_listing_is_served_from_the_vip(vip: str) -> None:
    with httpx.Client(base_url=vip, timeout=15) as anonymous:
        first = anonymous.get(LISTING)
        assert first.status_code == 200, first.text
        assert CACHE in first.headers, "no X-Micro-Cache header: is the vIP in layer 7?"

        def cached() -> httpx.Response | None:
            reply = anonymous.get(LISTING)
            return reply if reply.headers.get(CACHE) == "HIT" else None

        hit = eventually(cached, within=5, every=0.05, what="an anonymous listing is a HIT")
    # Nothing behind the vIP answered it.
    assert hit.headers["X-Upstream"] == "lb"
    assert hit.json()["items"] is not None


def test_readers_with_a_token_bypass_it_and_read_their_write(
    vip: str, token_for: Callable[[int], str], authored: Authored
) -> None:
    token = token_for(SAM)
    with httpx.Client(base_url=vip, timeout=15) as shopper:
        before = shopper.get(LISTING)  # fills the cache (or meets a copy already there)
        assert before.headers.get(CACHE) in ("MISS", "HIT", "EXPIRED", "UPDATING"), before.headers
        posted = post_review(shopper, token, product_id=PRODUCT, body=marker("micro-cache"))
        review = authored.add(posted, SAM)
        consistency = posted.headers[CONSISTENCY]
        assert shopper.cookies.get(COOKIE), "the write set no consistency cookie"

        # The cookie the write set: the browser's way.
        by_cookie = shopper.get(LISTING)
        assert by_cookie.headers[CACHE] == "BYPASS"
        assert review["id"] in ids(by_cookie)

        shopper.cookies.clear()
        by_header = shopper.get(LISTING, headers={CONSISTENCY: consistency})
        assert by_header.headers[CACHE] == "BYPASS"
        assert review["id"] in ids(by_header)

        signed_in = shopper.get(LISTING, headers=auth(token))
        assert signed_in.headers[CACHE] == "BYPASS"
        assert signed_in.headers["X-Upstream"] != "lb"

    # Everyone else sees it once the cached copy expires (and a replica has replayed it).
    def anonymous_sees_it() -> bool:
        return review["id"] in ids(httpx.get(f"{vip}{LISTING}", timeout=15))

    eventually(anonymous_sees_it, within=10, every=0.2, what="an anonymous reader sees the review")


def test_a_bypassing_reader_does_not_fill_the_shared_copy(
    vip: str, token_for: Callable[[int], str]
) -> None:
    # proxy_no_cache: a token holder's reply (maybe fresher, from the primary) never becomes
    # the copy anonymous readers get. A query no one else sends gives a key no one cached.
    # The anonymous reply does fill it: the next anonymous read within the copy's second of
    # life is a HIT. A fresh key per try, so a slow moment on a busy machine (the second ran
    # out between the two reads) costs a retry, never the assertion.
    seen = []
    with httpx.Client(base_url=vip, timeout=15) as http:
        for _ in range(5):
            listing = f"{LISTING}?limit=20&visit={uuid.uuid4().hex}"
            signed_in = http.get(listing, headers=auth(token_for(SAM)))
            assert signed_in.headers[CACHE] == "BYPASS"
            anonymous = http.get(listing)
            assert anonymous.headers[CACHE] == "MISS", "the token holder's reply was cached"
            seen.append(http.get(listing).headers[CACHE])
            if seen[-1] == "HIT":
                break
    assert "HIT" in seen, f"no anonymous read hit the copy an anonymous read filled: {seen}"
