"""An in-memory shop behind a web server's Backends: the catalog and review shards as Python
dicts that answer the review service's own compiled statements, a shard map read from a
stand-in etcd, an object store that keeps what it is given. No socket, no lab.

The routes, their dependencies, the service functions and the real ShardMap run unchanged;
only the routers' connections and the storage client are stand-ins.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import EndpointConnectionError
from reviewlab_common import health, shards
from reviewlab_common.db import ReadSource
from reviewlab_common.topology import Topology
from reviewlab_lab import secretfile
from reviewlab_web.backends import Backends
from reviewlab_web.reviews import service

Row = tuple[Any, ...]
_lsn = itertools.count(0x1000)


class Result:
    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def fetchone(self) -> Row | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[Row]:
        return self.rows


@dataclasses.dataclass
class Tables:
    """What the catalog and one shard hold, in the columns service.REVIEW reads."""

    products: dict[int, Row] = dataclasses.field(default_factory=dict)
    keys: dict[tuple[int, str], tuple[int, str]] = dataclasses.field(default_factory=dict)
    reviews: dict[int, list[Any]] = dataclasses.field(default_factory=dict)
    votes: set[tuple[int, int]] = dataclasses.field(default_factory=set)
    outbox: list[str] = dataclasses.field(default_factory=list)
    notified: list[str] = dataclasses.field(default_factory=list)  # NOTIFY channels, in order


class Connection:
    """Answers each statement of reviews/service.py from TABLES."""

    def __init__(self, tables: Tables) -> None:
        self.t = tables

    def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> Result:
        if statement.startswith("NOTIFY "):
            self.t.notified.append(statement.split()[1])  # a channel's listeners are told
            return Result([])
        handler = HANDLERS.get(statement)
        if handler is None:
            raise AssertionError(f"the memory shop does not know: {statement[:80]}")
        return Result(handler(self.t, params or {}))


def _row(review: list[Any]) -> Row:
    return tuple(review)


def _newest(t: Tables, limit: int, buckets: list[int]) -> list[Row]:
    mine = [i for i in t.reviews if shards.bucket_of_review(i) in buckets]
    return [_row(t.reviews[i]) for i in sorted(mine, reverse=True)[:limit]]


def _insert(t: Tables, p: Mapping[str, Any]) -> list[Row]:
    if p["id"] in t.reviews:
        return []
    t.reviews[p["id"]] = [
        p["id"],
        p["product_id"],
        p["user_id"],
        p["rating"],
        p["body"],
        datetime.now(UTC),
        p["photo_status"],
        p["photo_original_key"],
        None,
        None,
        0,
    ]
    return [(p["id"],)]


def _vote(t: Tables, p: Mapping[str, Any]) -> list[Row]:
    key = (p["review_id"], p["user_id"])
    if key in t.votes:
        return []
    t.votes.add(key)
    return [(p["review_id"],)]


def _count_vote(t: Tables, p: Mapping[str, Any]) -> list[Row]:
    t.reviews[p["id"]][10] += 1
    return [_row(t.reviews[p["id"]])]


def _ratings(t: Tables, p: Mapping[str, Any]) -> list[Row]:
    stars = [r[3] for r in t.reviews.values() if r[1] == p["product_id"]]
    return [(len(stars), sum(stars) / len(stars) if stars else None)]


def _product_page(t: Tables, p: Mapping[str, Any]) -> list[Row]:
    ids = sorted(
        (
            i
            for i, r in t.reviews.items()
            if r[1] == p["product_id"] and (p["before"] is None or i < p["before"])
        ),
        reverse=True,
    )
    return [_row(t.reviews[i]) for i in ids[: p["limit"]]]


def _reserve(t: Tables, p: Mapping[str, Any]) -> list[Row]:
    t.keys.setdefault((p["user_id"], p["key"]), (p["review_id"], p["request_hash"]))
    return []


def _outbox(t: Tables, p: Mapping[str, Any]) -> list[Row]:
    t.outbox.append(p["payload"])
    return []


def _delete(t: Tables, p: Mapping[str, Any]) -> list[Row]:
    t.reviews.pop(p["id"], None)
    return []


HANDLERS: dict[str, Callable[[Tables, Mapping[str, Any]], list[Row]]] = {
    service.PRODUCT_EXISTS: lambda t, p: [(1,)] if p["id"] in t.products else [],
    service.PRODUCT: lambda t, p: [t.products[p["id"]]] if p["id"] in t.products else [],
    service.PRODUCT_LIST: lambda t, p: [
        t.products[i] for i in sorted(t.products) if i > p["after"]
    ][: p["limit"]],
    service.RESERVE_KEY: _reserve,
    service.RESERVED: lambda t, p: [t.keys[(p["user_id"], p["key"])]],
    service.INSERT_REVIEW: _insert,
    service.INSERT_JOB: _outbox,
    service.REVIEW_BY_ID: lambda t, p: [_row(t.reviews[p["id"]])] if p["id"] in t.reviews else [],
    service.REVIEW_FOR_UPDATE: lambda t, p: (
        [_row(t.reviews[p["id"]])] if p["id"] in t.reviews else []
    ),
    service.AUTHOR_FOR_UPDATE: lambda t, p: (
        [(t.reviews[p["id"]][2],)] if p["id"] in t.reviews else []
    ),
    service.DELETE_REVIEW: _delete,
    service.NEWEST: lambda t, p: _newest(t, p["limit"], p["buckets"]),
    service.PRODUCT_PAGE: _product_page,
    service.RATINGS: _ratings,
    service.VOTE: _vote,
    service.COUNT_VOTE: _count_vote,
}


class NoEjections:
    def ejected(self) -> set[str]:
        return set()


class Router:
    """A cluster router whose reads come from its replica and writes from its primary."""

    def __init__(self, name: str, tables: Tables) -> None:
        self.name = name
        self.tables = tables
        self.ejector = NoEjections()
        self.reads: list[str | None] = []  # the min_lsn of each read
        # Set by a test: what the next reads or writes raise instead (a cluster fault).
        self.fault: Exception | None = None

    def read(self, work: Callable[[Any], Any], *, min_lsn: str | None = None) -> tuple[Any, Any]:
        self.reads.append(min_lsn)
        if self.fault:
            raise self.fault
        return work(Connection(self.tables)), ReadSource(self.name, "replica", f"{self.name}b")

    def write(self, work: Callable[[Any], Any]) -> tuple[Any, str]:
        if self.fault:
            raise self.fault
        return work(Connection(self.tables)), f"0/{next(_lsn):X}"

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None


class AsyncResult:
    def __init__(self, result: Result) -> None:
        self.result = result

    async def fetchone(self) -> Row | None:
        return self.result.fetchone()

    async def fetchall(self) -> list[Row]:
        return self.result.fetchall()


class AsyncConnection:
    """The async face of Connection, for the reads that run on the event loop."""

    def __init__(self, tables: Tables) -> None:
        self.sync = Connection(tables)

    async def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> Any:
        return AsyncResult(self.sync.execute(statement, params))


class AsyncReads:
    """A cluster's async reads (reviewlab_common.asyncreads), over ROUTER's tables and faults."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def read(self, work: Callable[[Any], Any], *, min_lsn: str | None = None) -> Any:
        self.router.reads.append(min_lsn)
        if self.router.fault:
            raise self.router.fault
        result = await work(AsyncConnection(self.router.tables))
        return result, ReadSource(self.router.name, "replica", f"{self.router.name}b")

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None


class MapInEtcd:
    """etcd holding the even shard map, as provisioning leaves it (or nothing, when EMPTY)."""

    def __init__(self, topology: Topology, *, empty: bool = False) -> None:
        self.value = None if empty else shards.encode(shards.even_map(topology))

    def get(self, key: str) -> tuple[str, int] | None:
        assert key == shards.SHARD_MAP_KEY
        return (self.value, 1) if self.value else None


class ObjectStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.refusing = False  # set by a test: MinIO answers every request with an error

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:
        if self.refusing:
            raise EndpointConnectionError(endpoint_url="http://minio:9000")
        self.objects[Key] = Body


@dataclasses.dataclass
class MemoryShop:
    backends: Backends
    catalog: Tables
    shards: dict[str, Tables]
    s3: ObjectStore

    def shard_holding(self, review_id: int) -> Tables:
        return next(t for t in self.shards.values() if review_id in t.reviews)


def memory_shop(
    topology: Topology,
    *,
    checks: Mapping[str, health.Check] | None = None,
    shard_map_in_etcd: bool = True,
) -> MemoryShop:
    """A web server's Backends over dicts; CHECKS are its readiness checks (all fine by default)."""
    catalog = Tables(products={1: (1, "linen shirt", None), 2: (2, "wool coat", "products/2.jpg")})
    by_shard = {c.name: Tables() for c in topology.shards}
    store = ObjectStore()
    bounds = health.ProbeBounds(connect_s=0.05, reply_s=0.05, pool_wait_s=0.05, answer_within_s=0.3)
    routers = {"catalog": Router("catalog", catalog)}
    routers.update({name: Router(name, t) for name, t in by_shard.items()})
    backends = Backends(
        topology=topology,
        node=topology.nodes["web-1"],
        secrets=secretfile.generate(),
        catalog=routers["catalog"],  # type: ignore[arg-type]
        shards={name: routers[name] for name in by_shard},  # type: ignore[misc]
        shard_map=shards.ShardMap(topology, MapInEtcd(topology, empty=not shard_map_in_etcd)),  # type: ignore[arg-type]
        s3=store,
        checks=health.DependencyChecks(checks or {"catalog": lambda: None}, bounds),
        reads={name: AsyncReads(r) for name, r in routers.items()},  # type: ignore[misc]
    )
    return MemoryShop(backends, catalog, by_shard, store)
