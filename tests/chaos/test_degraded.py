"""A dependency the request path can do without: with Redis stopped the web servers stay
ready (degraded, and say so), and reviews are still accepted."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from reviewlab_common.topology import Topology

from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes
from tests.integration.shop import auth, marker, post_review

pytestmark = pytest.mark.chaos
KIM = 5


def test_with_redis_stopped_the_web_servers_are_ready_degraded_and_take_reviews(
    topology: Topology, nodes: Nodes, token_for: Callable[[int], str]
) -> None:
    token = token_for(KIM)
    webs = topology.of_kind("web")
    vip = topology.nodes[topology.services["www"]].host_url
    with httpx.Client(base_url=vip, timeout=15) as client, nodes.stopped("redis"):
        for web in webs:
            body = eventually(
                lambda web=web: (
                    (r := httpx.get(f"{web.url}/readyz", timeout=5)).status_code == 200
                    and r.json().get("status") == "degraded"
                    and r.json()
                ),
                within=10,
                what=f"{web.name} ready and degraded without Redis",
            )
            assert "redis" in body["degraded"], body
        posted = post_review(client, token, product_id=3, body=marker("redis stopped"))
        assert posted.status_code == 201, posted.text
        deleted = client.delete(f"/api/reviews/{posted.json()['id']}", headers=auth(token))
        assert deleted.status_code in (200, 204), deleted.text
    nodes.wait_all_ready(within=60)
    for web in webs:
        assert httpx.get(f"{web.url}/readyz", timeout=5).json()["status"] == "ready"
