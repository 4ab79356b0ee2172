"""Buckets, review ids and the initial shard map."""

from __future__ import annotations

import tomllib

from reviewlab_common import shards
from reviewlab_common.topology import DEFAULT_PATH, parse


def test_bucket_of_is_stable_and_in_range() -> None:
    buckets = [shards.bucket_of(pid, 256) for pid in range(1, 2001)]
    assert buckets == [shards.bucket_of(pid, 256) for pid in range(1, 2001)]
    assert all(0 <= b < 256 for b in buckets)
    assert len(set(buckets)) > 200  # products spread over the buckets


def test_a_review_id_carries_its_bucket() -> None:
    for bucket in (0, 1, 128, 255, shards.MAX_BUCKETS - 1):
        review_id = shards.new_review_id(bucket)
        assert 0 < review_id < 2**63
        assert shards.bucket_of_review(review_id) == bucket


def test_review_ids_increase_with_time() -> None:
    first = shards.new_review_id(200, now_ms=shards.EPOCH_MS + 1_000)
    later = shards.new_review_id(3, now_ms=shards.EPOCH_MS + 1_001)
    assert later > first


def test_the_even_map_covers_every_bucket_and_every_shard() -> None:
    with DEFAULT_PATH.open("rb") as handle:
        topology = parse(tomllib.load(handle))
    mapping = shards.even_map(topology)
    assert sorted(mapping) == list(range(topology.lab.buckets))
    assert set(mapping.values()) == {c.name for c in topology.shards}
    assert shards.decode(shards.encode(mapping)) == mapping
