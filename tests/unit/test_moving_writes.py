"""A write to a bucket that is moving: it waits for the new map and lands there, or it
answers 503 with Retry-After once the wait is over, having written nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from reviewlab_common import fence, shards
from reviewlab_common.db import BucketClosed
from reviewlab_common.topology import Topology, current

from tests.unit.memory_shop import MemoryShop, memory_shop
from tests.unit.test_web_routes import post, serve

PRODUCT = 1


class MovingMap:
    """etcd's shard map, which a test moves a bucket in (a new revision each time)."""

    def __init__(self, topology: Topology) -> None:
        self.mapping = shards.even_map(topology)
        self.revision = 1

    def get(self, key: str) -> tuple[str, int]:
        assert key == shards.SHARD_MAP_KEY
        return shards.encode(self.mapping), self.revision

    def move(self, bucket: int, shard: str) -> None:
        self.mapping[bucket] = shard
        self.revision += 1


@pytest.fixture(scope="module")
def topology() -> Topology:
    return current()


@pytest.fixture()
def shop(topology: Topology) -> Iterator[tuple[MemoryShop, MovingMap, int, str]]:
    made = memory_shop(topology)
    etcd = MovingMap(topology)
    made.backends.shard_map = shards.ShardMap(topology, etcd)  # type: ignore[arg-type]
    bucket = shards.bucket_of(PRODUCT, topology.lab.buckets)
    source = etcd.mapping[bucket]
    # The source's fence closed the bucket: every write there is refused, nothing written.
    made.backends.shards[source].fault = BucketClosed(  # type: ignore[attr-defined]
        f"{source}: bucket {bucket} is closed on this shard"
    )
    yield made, etcd, bucket, source
    made.backends.checks.close()


def test_a_write_during_a_cutover_waits_and_lands_on_the_new_shard(
    shop: tuple[MemoryShop, MovingMap, int, str],
) -> None:
    made, etcd, bucket, source = shop
    client = serve(made)

    def flip() -> None:
        etcd.move(bucket, "reviews-2")
        made.backends.shard_map.refresh()  # what the watch does when etcd says the map changed

    threading.Timer(0.2, flip).start()
    reply = post(client, made, product_id=str(PRODUCT))
    assert reply.status_code == 201, reply.text
    review = reply.json()
    assert review["shard"] == "reviews-2"
    assert int(review["id"]) in made.shards["reviews-2"].reviews
    assert not made.shards[source].reviews
    # The id still carries its bucket, which now routes to the new shard.
    assert shards.bucket_of_review(int(review["id"])) == bucket
    assert client.get(f"/api/reviews/{review['id']}").json()["shard"] == "reviews-2"


def test_a_cutover_longer_than_the_wait_is_a_503_with_retry_after(
    shop: tuple[MemoryShop, MovingMap, int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    made, _, bucket, _ = shop
    monkeypatch.setattr(fence, "WRITE_WAIT_S", 0.3)
    reply = post(serve(made), made, product_id=str(PRODUCT))
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "1"
    error = reply.json()["error"]
    assert error["code"] == "bucket_moving"
    assert f"bucket {bucket} is moving to another shard" in error["message"]
    assert "Nothing was written" in error["message"]
    assert all(not tables.reviews for tables in made.shards.values())
