"""Sharding of reviews: product -> logical bucket -> shard, and review ids that carry the bucket."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping

import httpx

from reviewlab_common.etcd import Etcd, EtcdError
from reviewlab_common.topology import Topology

SHARD_MAP_KEY = "/reviewlab/shardmap"
# The shards the map may place buckets on, including those with none yet (a JSON list), and
# the move in progress, if any: written by the lab's tooling as root, never by a service.
SHARD_SET_KEY = "/reviewlab/shardset"
MOVE_KEY = "/reviewlab/shardmove"
# A review id: 41 bits of milliseconds since EPOCH_MS, 10 bits of bucket, 12 random bits.
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
BUCKET_BITS = 10
RANDOM_BITS = 12
MAX_BUCKETS = 1 << BUCKET_BITS

log = logging.getLogger(__name__)


class ShardMapMissing(RuntimeError):
    """The shard map is not in etcd yet (the lab is not provisioned)."""


class BucketUnmapped(ShardMapMissing, KeyError):
    """The shard map assigns the bucket to no shard (a KeyError for callers that look up)."""

    def __str__(self) -> str:  # KeyError's own would quote the message
        return str(self.args[0])


def bucket_of(product_id: int, buckets: int) -> int:
    """The logical bucket of a product: a stable hash, independent of the number of shards."""
    digest = hashlib.blake2b(str(product_id).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def new_review_id(bucket: int, now_ms: int | None = None) -> int:
    """A 63-bit, time-ordered review id that carries its bucket."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    millis = (now_ms - EPOCH_MS) & ((1 << 41) - 1)
    return (
        (millis << (BUCKET_BITS + RANDOM_BITS))
        | (bucket << RANDOM_BITS)
        | secrets.randbits(RANDOM_BITS)
    )


def bucket_of_review(review_id: int) -> int:
    return (review_id >> RANDOM_BITS) & (MAX_BUCKETS - 1)


def even_map(topology: Topology) -> dict[int, str]:
    """The initial map: contiguous ranges of buckets, one range per shard (a shard that
    starts empty gets none)."""
    shards = [c.name for c in topology.shards if not c.starts_empty]
    buckets = topology.lab.buckets
    return {b: shards[b * len(shards) // buckets] for b in range(buckets)}


def encode(mapping: Mapping[int, str]) -> str:
    return json.dumps({str(b): s for b, s in sorted(mapping.items())})


def decode(text: str) -> dict[int, str]:
    return {int(b): s for b, s in json.loads(text).items()}


class ShardMap:
    """The bucket -> shard map from etcd, kept current by a background watch."""

    def __init__(self, topology: Topology, etcd: Etcd | None = None) -> None:
        self.topology = topology
        self.etcd = etcd or Etcd(topology)
        self._map: dict[int, str] = {}
        self._revision = 0
        self._lock = threading.Lock()
        # Notified on every new map: a write refused for a moving bucket waits on it.
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self, etcd: Etcd | None = None) -> None:
        """Read the map from etcd (through ETCD, e.g. a more tightly bounded client)."""
        found = (etcd or self.etcd).get(SHARD_MAP_KEY)
        if found is None:
            raise ShardMapMissing(f"no shard map at {SHARD_MAP_KEY} in etcd: run `reviewlab up`")
        text, revision = found
        self._apply(decode(text), revision)

    def _apply(self, mapping: dict[int, str], revision: int) -> None:
        with self._changed:
            if revision >= self._revision:
                self._map, self._revision = mapping, revision
            self._changed.notify_all()

    @property
    def revision(self) -> int:
        """etcd's mod revision of the map held (0 before the first read)."""
        with self._lock:
            return self._revision

    def wait_for_change(self, after: int, timeout: float) -> int:
        """Block until a map newer than revision AFTER is held, or TIMEOUT passes."""
        with self._changed:
            self._changed.wait_for(lambda: self._revision > after, timeout=timeout)
            return self._revision

    def shard_for_bucket(self, bucket: int) -> str:
        with self._lock:
            mapping = self._map
        if not mapping:
            self.refresh()
            with self._lock:
                mapping = self._map
        try:
            return mapping[bucket]
        except KeyError:
            raise BucketUnmapped(f"the shard map assigns bucket {bucket} to no shard") from None

    def shard_for_product(self, product_id: int) -> str:
        return self.shard_for_bucket(bucket_of(product_id, self.topology.lab.buckets))

    def snapshot(self) -> dict[int, str]:
        with self._lock:
            return dict(self._map)

    def start_watch(self) -> None:
        """Follow changes to the map in a daemon thread (reconnecting when etcd drops)."""
        self._thread = threading.Thread(target=self._follow, name="shardmap-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
                for text, revision in self.etcd.watch(SHARD_MAP_KEY, self.revision + 1, timeout=30):
                    self._apply(decode(text), revision)
                    log.info("shard map changed at revision %d", revision)
            except (EtcdError, ShardMapMissing, OSError, ValueError) as exc:
                log.warning("shard map watch: %s; retrying", exc)
                self._stop.wait(2.0)
            except httpx.ReadTimeout:
                # The watch's own window ended with no change: the normal case, start another.
                continue
            except Exception as exc:  # httpx stream errors end one watch; start another
                log.warning("shard map watch ended: %s", exc)
                self._stop.wait(1.0)
