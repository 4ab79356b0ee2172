"""In-process stand-ins for what the worker talks to: Redis streams, MinIO, a review shard.

Only the edges are stood in for; the worker's own code runs unchanged against them. Time in
FakeRedis is a counter: a blocking read that finds nothing moves it on by its block time.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import redis
from botocore.exceptions import ClientError
from reviewlab_common.db import DatabaseUnavailable
from reviewlab_worker import jobs, relay


@dataclass
class Pending:
    consumer: str
    delivered_ms: int
    deliveries: int


class FakeRedis:
    """Streams with consumer groups: entries, each group's pending list and delivery counts."""

    def __init__(self) -> None:
        self.now_ms = 1_000_000
        self.streams: dict[str, list[tuple[str, dict[str, str]]]] = {}
        self.groups: dict[tuple[str, str], int] = {}  # -> entries delivered so far
        self.pending: dict[tuple[str, str], dict[str, Pending]] = {}
        self.down = False
        self._seq = 0

    def _up(self) -> None:
        if self.down:
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.50:6379")

    def advance(self, ms: int) -> None:
        self.now_ms += ms

    def xadd(self, name: str, fields: dict[str, Any]) -> str:
        self._up()
        self._seq += 1
        message_id = f"{self.now_ms}-{self._seq}"
        self.streams.setdefault(name, []).append(
            (message_id, {k: str(v) for k, v in fields.items()})
        )
        return message_id

    def xlen(self, name: str) -> int:
        return len(self.streams.get(name, []))

    def entries(self, name: str) -> list[dict[str, str]]:
        return [fields for _, fields in self.streams.get(name, [])]

    def xdel(self, name: str, message_id: str) -> None:
        self.streams[name] = [e for e in self.streams[name] if e[0] != message_id]

    def xgroup_create(self, name: str, group: str, id: str = "$", mkstream: bool = False) -> None:
        self._up()
        if (name, group) in self.groups:
            raise redis.ResponseError("BUSYGROUP Consumer Group name already exists")
        self.streams.setdefault(name, [])
        self.groups[(name, group)] = 0
        self.pending[(name, group)] = {}

    def xreadgroup(
        self, group: str, consumer: str, streams: dict[str, str], count: int, block: int
    ) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
        self._up()
        ((name, position),) = streams.items()
        assert position == ">", "the runner reads only new entries; pending ones it claims"
        read = self.groups[(name, group)]
        fresh = self.streams[name][read : read + count]
        if not fresh:
            self.advance(block)  # it waited that long for nothing
            return []
        self.groups[(name, group)] = read + len(fresh)
        for message_id, _ in fresh:
            self.pending[(name, group)][message_id] = Pending(consumer, self.now_ms, 1)
        return [(name, list(fresh))]

    def xpending_range(
        self, name: str, groupname: str, min: str, max: str, count: int
    ) -> list[dict[str, Any]]:
        self._up()
        entries = sorted(self.pending[(name, groupname)].items())[:count]
        return [
            {
                "message_id": message_id,
                "consumer": p.consumer,
                "time_since_delivered": self.now_ms - p.delivered_ms,
                "times_delivered": p.deliveries,
            }
            for message_id, p in entries
        ]

    def xclaim(
        self,
        name: str,
        groupname: str,
        consumername: str,
        min_idle_time: int,
        message_ids: list[str],
    ) -> list[tuple[str, dict[str, str]]]:
        self._up()
        pending = self.pending[(name, groupname)]
        stored = dict(self.streams[name])
        claimed = []
        for message_id in message_ids:
            entry = pending.get(message_id)
            if entry is None or self.now_ms - entry.delivered_ms < min_idle_time:
                continue
            if message_id not in stored:  # deleted: Redis 7 drops it from the pending list
                del pending[message_id]
                continue
            pending[message_id] = Pending(consumername, self.now_ms, entry.deliveries + 1)
            claimed.append((message_id, stored[message_id]))
        return claimed

    def xack(self, name: str, groupname: str, *message_ids: str) -> int:
        self._up()
        pending = self.pending[(name, groupname)]
        return sum(pending.pop(m, None) is not None for m in message_ids)

    def deliveries(self, name: str, group: str) -> dict[str, int]:
        return {m: p.deliveries for m, p in self.pending[(name, group)].items()}


class FakeS3:
    """The media bucket: get and put by key (boto3's argument names); NoSuchKey like MinIO's."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.gets = 0
        self.fault: Exception | None = None

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.gets += 1
        if self.fault:
            raise self.fault
        if Key not in self.objects:
            error = {"Error": {"Code": "NoSuchKey", "Message": "The key does not exist."}}
            raise ClientError(error, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:
        self.objects[Key] = Body


@dataclass
class ReviewRow:
    photo_status: str | None = "processing"
    photo_cutout_key: str | None = None
    photo_error: str | None = None
    photo_attempts: int = 0


@dataclass
class OutboxRow:
    id: int
    payload: str
    published: bool = False
    traceparent: str | None = None  # the request's trace, as the web server stored it


@dataclass
class FakeShard:
    """A review shard's primary: the reviews and outbox rows the worker's SQL touches.

    write() runs the work in a transaction: its changes are kept only if it returns.
    """

    name: str = "reviews-0"
    reviews: dict[int, ReviewRow] = field(default_factory=dict)
    outbox: list[OutboxRow] = field(default_factory=list)
    down: bool = False
    fault: Exception | None = None  # raised by write(), for failures nobody expected
    # A statement (by its start) the primary refuses as if it had just gone away.
    refuse: str | None = None
    statements: list[str] = field(default_factory=list)
    # Buckets whose fence is closed here (moved to another shard).
    closed: set[int] = field(default_factory=set)

    @property
    def cluster(self) -> SimpleNamespace:
        return SimpleNamespace(name=self.name)

    def write(self, work: Any) -> tuple[Any, str]:
        if self.down:
            raise DatabaseUnavailable(f"{self.name} primary unavailable: connection refused")
        if self.fault:
            raise self.fault
        conn = FakeShardConnection(self)
        result = work(conn)
        for apply in conn.staged:
            apply()
        return result, "0/3000100"


class FakeShardConnection:
    """Answers the statements of jobs.py and relay.py; changes wait for the commit."""

    def __init__(self, shard: FakeShard) -> None:
        self.shard = shard
        self.staged: list[Any] = []
        self.rows: list[tuple[Any, ...]] = []

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> FakeShardConnection:
        self.shard.statements.append(sql)
        if self.shard.refuse and sql == self.shard.refuse:
            raise DatabaseUnavailable(f"{self.shard.name} primary unavailable: connection lost")
        reviews, outbox, p = self.shard.reviews, self.shard.outbox, params or {}
        if sql == jobs.FENCE_STATE:
            self.rows = [("closed" if p["bucket"] in self.shard.closed else "open",)]
        elif sql == jobs.PHOTO_STATE:
            row = reviews.get(p["id"])
            self.rows = [(row.photo_status,)] if row else []
        elif sql == jobs.MARK_READY:
            self.staged.append(lambda: self._ready(p["id"], p["cutout_key"], p["attempts"]))
        elif sql == jobs.MARK_FAILED:
            self.staged.append(lambda: self._failed(p["id"], p["error"], p["attempts"]))
        elif sql == relay.UNPUBLISHED:
            fresh = [r for r in outbox if not r.published][: p["limit"]]
            self.rows = [(r.id, json.loads(r.payload), r.traceparent) for r in fresh]
        elif sql == relay.MARK_PUBLISHED:
            self.staged.append(lambda: self._published(p["ids"]))
        else:
            raise AssertionError(f"unexpected statement: {sql}")
        return self

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows

    def _ready(self, review_id: int, key: str, attempts: int) -> None:
        if review_id in self.shard.reviews:
            row = self.shard.reviews[review_id]
            row.photo_status, row.photo_cutout_key = "ready", key
            row.photo_error, row.photo_attempts = None, attempts

    def _failed(self, review_id: int, reason: str, attempts: int) -> None:
        row = self.shard.reviews.get(review_id)
        if row and row.photo_status == "processing":
            row.photo_status, row.photo_error, row.photo_attempts = "failed", reason, attempts

    def _published(self, ids: list[int]) -> None:
        for row in self.shard.outbox:
            if row.id in ids:
                row.published = True
