"""Marking a review helpful (shard revision 0002): counted once per reader, on every shard."""

from __future__ import annotations

from collections.abc import Callable

import httpx
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
)


def test_each_reader_counts_once_on_every_shard(
    topology: Topology,
    client: httpx.Client,
    token_for: Callable[[int], str],
    authored: Authored,
) -> None:
    for shard, products in products_by_shard(topology).items():
        posted = post_review(client, token_for(KIM), product_id=products[0], body=marker("vote"))
        review = authored.add(posted, KIM)
        assert review["helpful_votes"] == 0
        url = f"/api/reviews/{review['id']}/helpful"
        first = client.post(url, headers=auth(token_for(ALEX)))
        assert first.status_code == 200, first.text
        assert first.json()["helpful_votes"] == 1
        assert "Idempotent-Replayed" not in first.headers
        again = client.post(url, headers=auth(token_for(ALEX)))
        assert again.status_code == 200, again.text
        assert again.json()["helpful_votes"] == 1, "a repeated vote is the same vote"
        assert again.headers["Idempotent-Replayed"] == "true"
        other = client.post(url, headers=auth(token_for(SAM)))
        assert other.json()["helpful_votes"] == 2
        assert other.json()["shard"] == shard
        # The vote's write position comes back, so the reader's next GET sees the count.
        seen = get_review(client, review["id"], other.headers[CONSISTENCY])
        assert seen.json()["helpful_votes"] == 2


def test_votes_need_a_reader_and_an_existing_review(
    client: httpx.Client, token_for: Callable[[int], str]
) -> None:
    assert_error(client.post("/api/reviews/1/helpful"), 401)
    token = auth(token_for(ALEX))
    assert_error(client.post("/api/reviews/1/helpful", headers=token), 404)
    assert_error(client.post("/api/reviews/not-a-number/helpful", headers=token), 422)
