"""The move in progress and the registered shards, kept in etcd beside the shard map.

The map changes only through `flip`: one etcd transaction that checks neither the map nor
the move record changed since they were read, then writes both. A runner holds the move
through a lock key bound to an etcd lease it keeps alive: a second runner is refused while
the first lives, and takes over (`--resume`) once the lease of a killed one expired.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from typing import Any

from reviewlab_common import shards
from reviewlab_common.etcd import Etcd, EtcdError, b64
from reviewlab_common.topology import Topology

LOCK_KEY = shards.MOVE_KEY + ".runner"
LEASE_TTL_S = 10
# Phases of one step, in order; a step before FLIPPED can be undone, one after it cannot.
PLANNED, CAPTURE, COPIED, FLIPPED, DONE, ABORTED = (
    "planned",
    "capture",
    "copied",
    "flipped",
    "done",
    "aborted",
)


@dataclass
class StepRecord:
    source: str
    buckets: list[int]
    phase: str = PLANNED
    rows_copied: int = 0
    changes_replayed: int = 0
    freeze_s: float | None = None
    attempts: int = 0
    verified: dict[str, Any] = field(default_factory=dict)
    # Where the freeze went, phase by phase (ms).
    freeze_parts_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class MoveRecord:
    move_id: str
    target: str
    steps: list[StepRecord]
    started: float = field(default_factory=time.time)
    runner: str = ""

    def describe(self) -> str:
        buckets = sum(len(s.buckets) for s in self.steps)
        done = sum(s.phase in (DONE, ABORTED) for s in self.steps)
        return f"{self.move_id}: {buckets} buckets to {self.target}, {done}/{len(self.steps)} steps"

    def encode(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> MoveRecord:
        data = json.loads(text)
        steps = [StepRecord(**s) for s in data.pop("steps")]
        return cls(steps=steps, **data)


def root(topology: Topology) -> Etcd:
    return Etcd(topology, user="root", timeout=3.0)


def placement(etcd: Etcd) -> tuple[dict[int, str], int]:
    found = etcd.get(shards.SHARD_MAP_KEY)
    if found is None:
        raise EtcdError(f"no shard map at {shards.SHARD_MAP_KEY}: run `reviewlab up`")
    return shards.decode(found[0]), found[1]


def registered(etcd: Etcd, topology: Topology) -> list[str]:
    """The shards buckets may move to: the shard set, else every shard the map uses."""
    found = etcd.get(shards.SHARD_SET_KEY)
    if found is not None:
        return sorted(json.loads(found[0]))
    mapping, _ = placement(etcd)
    return sorted(set(mapping.values()))


def register(etcd: Etcd, name: str) -> bool:
    """Add NAME to the shard set (with no buckets); False if it was there."""
    for _ in range(5):
        found = etcd.get(shards.SHARD_SET_KEY)
        names = set(json.loads(found[0])) if found else set(placement(etcd)[0].values())
        if name in names and found is not None:
            return False
        added = name not in names
        names.add(name)
        compare = _same(shards.SHARD_SET_KEY, found[1] if found else 0)
        ok, _ = etcd.txn([compare], [_put(shards.SHARD_SET_KEY, json.dumps(sorted(names)))])
        if ok:
            return added
    raise EtcdError("the shard set kept changing while a shard was registered; try again")


def current(etcd: Etcd) -> tuple[MoveRecord, int] | None:
    found = etcd.get(shards.MOVE_KEY)
    return None if found is None else (MoveRecord.decode(found[0]), found[1])


def create(etcd: Etcd, move: MoveRecord) -> bool:
    return etcd.put_if_absent(shards.MOVE_KEY, move.encode())


def save(etcd: Etcd, move: MoveRecord, revision: int) -> int:
    """Write MOVE if the record is still at REVISION (this runner's); its new revision."""
    ok, new = etcd.txn([_same(shards.MOVE_KEY, revision)], [_put(shards.MOVE_KEY, move.encode())])
    if not ok:
        raise EtcdError("the move record changed under this runner: another runner took it over")
    return new


def flip(
    etcd: Etcd,
    move: MoveRecord,
    revision: int,
    mapping: dict[int, str],
    map_revision: int,
) -> int:
    """The new map and the move record together, atomically; the store's new revision."""
    ok, new = etcd.txn(
        [_same(shards.SHARD_MAP_KEY, map_revision), _same(shards.MOVE_KEY, revision)],
        [
            _put(shards.SHARD_MAP_KEY, shards.encode(mapping)),
            _put(shards.MOVE_KEY, move.encode()),
        ],
    )
    if not ok:
        raise EtcdError("the shard map or the move record changed since the cutover began")
    return new


def finish(etcd: Etcd, revision: int) -> None:
    ok, _ = etcd.txn(
        [_same(shards.MOVE_KEY, revision)],
        [{"request_delete_range": {"key": b64(shards.MOVE_KEY)}}],
    )
    if not ok:
        raise EtcdError("the move record changed under this runner: another runner took it over")


def _same(key: str, revision: int) -> dict[str, object]:
    return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def _put(key: str, value: str) -> dict[str, object]:
    return {"request_put": {"key": b64(key), "value": b64(value)}}


class RunnerLock:
    """The one runner of the move: a key under a lease this process keeps alive."""

    def __init__(self, etcd: Etcd) -> None:
        self.etcd = etcd
        self.lease = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, wait_s: float = 0.0) -> None:
        """Hold the lock; waits up to WAIT_S for a holder's lease (a killed runner's) to end."""
        limit = time.monotonic() + wait_s
        while True:
            try:
                return self._try()
            except EtcdError:
                if time.monotonic() >= limit:
                    raise
                time.sleep(1.0)

    def _try(self) -> None:
        granted = self.etcd.call("lease/grant", {"TTL": LEASE_TTL_S})
        self.lease = str(granted["ID"])
        me = f"{socket.gethostname()} pid {os.getpid()}"
        put: dict[str, object] = {
            "request_put": {"key": b64(LOCK_KEY), "value": b64(me), "lease": self.lease}
        }
        ok, _ = self.etcd.txn([_same_create(LOCK_KEY)], [put])
        if not ok:
            held = self.etcd.get(LOCK_KEY)
            self.etcd.call("lease/revoke", {"ID": self.lease})
            who = held[0] if held else "another runner"
            raise EtcdError(
                f"another move runner is at work ({who}); wait for it, or for its lease "
                f"({LEASE_TTL_S} s) to expire if it was killed"
            )
        self._thread = threading.Thread(target=self._keep_alive, daemon=True, name="move-lease")
        self._thread.start()

    def _keep_alive(self) -> None:
        while not self._stop.wait(LEASE_TTL_S / 3):
            try:
                self.etcd.call("lease/keepalive", {"ID": self.lease})
            except EtcdError:
                continue  # the next round tries again; the lease outlives one miss

    def release(self) -> None:
        self._stop.set()
        if self.lease:
            with suppress(EtcdError):  # else it expires by itself
                self.etcd.call("lease/revoke", {"ID": self.lease})


def _same_create(key: str) -> dict[str, object]:
    return {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
