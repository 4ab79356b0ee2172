"""Helpers shared by the integration tests: posting reviews, polling, SQL and Patroni checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from reviewlab_common import consistency, db, queue, shards
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.photos import PhotoStatus
from reviewlab_common.topology import Cluster, Node, Topology
from reviewlab_lab import dnsrecords, photos

from tests.integration.conftest import eventually

CONSISTENCY = consistency.HEADER
# Users seeded by the lab: 1 kim, 2 alex, 3 sam, 4 noor, 5 loadtest.
KIM, ALEX, SAM, NOOR = 1, 2, 3, 4


# New bytes each call: a new content-addressed original (see reviewlab_lab.photos).
unique_photo = photos.portrait


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
        if status == PhotoStatus.FAILED:
            pytest.fail(f"photo of review {review_id} failed: {review['photo']['error']}")
        return review if status == PhotoStatus.READY else None

    return eventually(ready, within=within, every=0.2, what=f"photo of review {review_id} ready")


def edge_url(topology: Topology, url: str) -> str:
    """A media URL from the API, sent to the CDN edge's address instead of its DNS name."""
    edge = topology.nodes[topology.services["cdn"]]
    return f"{edge.host_url}{httpx.URL(url).raw_path.decode()}"


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
    info = db.cluster_conninfo(
        topology.clusters[shard],
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
    # A shard the map gives no bucket (one added to take buckets later) holds no product.
    return {shard: products for shard, products in grouped.items() if products}


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


def superuser(topology: Topology, node: Node, dbname: str = "postgres") -> psycopg.Connection[Any]:
    """A superuser connection to one Postgres node, for checks the API cannot make."""
    return psycopg.connect(
        host=node.address,
        port=node.port,
        dbname=dbname,
        user="postgres",
        password=lab_secrets.load(topology).postgres_password,
        connect_timeout=3,
        autocommit=True,
        # A commit waits for the sync replica; never let a test hang on that forever.
        options="-c statement_timeout=10000",
    )


def patroni_members(cluster: Cluster) -> list[dict[str, Any]]:
    """The members as Patroni's /cluster reports them (the lab's own lookup)."""
    members = dnsrecords.patroni_members(cluster, timeout=3)
    assert members, f"no Patroni member of {cluster.name} answered on its REST port"
    return list(members.values())


def pending_job(
    topology: Topology, review_id: int, consumer: str | None = None
) -> dict[str, Any] | None:
    """The pending entry (message_id, consumer, times_delivered) of the review's photo job,
    if it waits unacknowledged (held by CONSUMER, when given)."""
    admin = queue.connect(topology, "admin")
    held = {"consumername": consumer} if consumer else {}
    pending = admin.xpending_range(
        queue.JOBS_STREAM, queue.WORKERS_GROUP, min="-", max="+", count=1000, **held
    )
    for entry in pending:
        message_id = entry["message_id"]
        for _, fields in admin.xrange(queue.JOBS_STREAM, min=message_id, max=message_id):
            if fields.get("review_id") == str(review_id):
                return dict(entry)
    return None
