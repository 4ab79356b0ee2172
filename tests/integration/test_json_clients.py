"""A client whose JSON numbers are doubles (JavaScript in Chromium) follows a review id the API
gave it and finds the review: ids above 2^53 travel as strings, so nothing rounds them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
from reviewlab_common.topology import Topology

from tests.integration.browser import Browser
from tests.integration.shop import KIM, auth, marker

PRODUCT = 12

POST_AND_FOLLOW = """
(async () => {
  const form = new FormData();
  form.append("product_id", %(product)s);
  form.append("rating", "4");
  form.append("body", %(body)s);
  const posted = await fetch("/api/reviews", {
    method: "POST", headers: { Authorization: "Bearer " + %(token)s }, body: form,
  });
  const review = JSON.parse(await posted.text());
  const again = await fetch("/api/reviews/" + review.id, {
    headers: { "X-Consistency-Token": posted.headers.get("X-Consistency-Token") },
  });
  const found = JSON.parse(await again.text());
  return {
    status: posted.status, id: review.id, type: typeof review.id,
    beyond_doubles: BigInt(review.id) > BigInt(Number.MAX_SAFE_INTEGER),
    location: posted.headers.get("Location"),
    followed: again.status, found_id: found.id, found_body: found.body,
  };
})()
"""


def test_javascript_json_parse_follows_a_review_id(
    topology: Topology, vip: str, token_for: Callable[[int], str], tmp_path: Path
) -> None:
    www = topology.nodes[topology.services["www"]]
    browser = Browser(tmp_path / "profile", {topology.fqdn("www"): www.host_address})
    body = marker("parsed by JSON.parse")
    seen: dict[str, object] = {}
    try:
        browser.navigate(f"http://{topology.fqdn('www')}:{www.port}/healthz")
        script = POST_AND_FOLLOW % {
            "product": json.dumps(str(PRODUCT)),
            "body": json.dumps(body),
            "token": json.dumps(token_for(KIM)),
        }
        seen = browser.evaluate(script)
        assert seen["status"] == 201, seen
        assert seen["type"] == "string" and seen["beyond_doubles"] is True, seen
        assert seen["location"] == f"/api/reviews/{seen['id']}", seen
        assert (seen["followed"], seen["found_id"], seen["found_body"]) == (200, seen["id"], body)
    finally:
        browser.close()
        if seen.get("id"):
            httpx.delete(
                f"{vip}/api/reviews/{seen['id']}", headers=auth(token_for(KIM)), timeout=10
            )
