"""Buckets, review ids and the initial shard map."""

from __future__ import annotations

import tomllib
from collections import Counter

import pytest
from reviewlab_common import shards
from reviewlab_common.topology import Topology, parse
from reviewlab_lab.paths import TOPOLOGY_PATH


@pytest.fixture()
def topology() -> Topology:
    with TOPOLOGY_PATH.open("rb") as handle:
        return parse(tomllib.load(handle))


def test_bucket_of_is_stable_and_in_range() -> None:
    buckets = [shards.bucket_of(pid, 256) for pid in range(1, 2001)]
    assert buckets == [shards.bucket_of(pid, 256) for pid in range(1, 2001)]
    assert all(0 <= b < 256 for b in buckets)
    assert len(set(buckets)) > 200  # products spread over the buckets
    # No bucket takes much more than its share (2000 / 256 is about 8).
    assert max(Counter(buckets).values()) < 24


def test_bucket_of_does_not_change_between_releases() -> None:
    # Pinned: a different hash would move every stored review to another bucket.
    assert [shards.bucket_of(pid, 256) for pid in (1, 2, 3, 42, 1000)] == [118, 108, 1, 122, 2]


@pytest.mark.parametrize("buckets", [1, 7, 256, shards.MAX_BUCKETS])
def test_bucket_of_stays_below_any_bucket_count(buckets: int) -> None:
    assert all(0 <= shards.bucket_of(pid, buckets) < buckets for pid in range(500))


def test_a_review_id_carries_its_bucket() -> None:
    for bucket in (0, 1, 128, 255, shards.MAX_BUCKETS - 1):
        for _ in range(20):
            review_id = shards.new_review_id(bucket)
            assert 0 < review_id < 2**63
            assert shards.bucket_of_review(review_id) == bucket


def test_a_review_id_carries_its_bucket_at_any_time() -> None:
    for offset_ms in (0, 1, 86_400_000, (1 << 41) - 1):
        review_id = shards.new_review_id(77, now_ms=shards.EPOCH_MS + offset_ms)
        assert shards.bucket_of_review(review_id) == 77
        assert 0 <= review_id < 2**63


def test_review_ids_increase_with_time() -> None:
    # A later millisecond wins whatever the buckets and the random bits.
    start = shards.EPOCH_MS + 1_000
    ids = [
        shards.new_review_id(bucket, now_ms=start + step)
        for step, bucket in enumerate([1023, 0, 512, 1, 1023, 0])
    ]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_the_even_map_covers_every_bucket_and_every_shard(topology: Topology) -> None:
    mapping = shards.even_map(topology)
    assert sorted(mapping) == list(range(topology.lab.buckets))
    names = [c.name for c in topology.shards if not c.starts_empty]
    assert set(mapping.values()) == set(names)
    # A shard that starts empty (reviews-2, for moves) is given no bucket.
    assert [c.name for c in topology.shards if c.starts_empty] == ["reviews-2"]
    # Contiguous ranges in shard order, of equal size.
    assert [mapping[b] for b in range(topology.lab.buckets)] == sorted(mapping.values())
    sizes = Counter(mapping.values())
    assert max(sizes.values()) - min(sizes.values()) <= 1
    assert shards.decode(shards.encode(mapping)) == mapping
