"""The async reads route as the sync router does: replicas in rotation, ejection of a failed
member, the check of the reader's last write, the primary as the last resort."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout
from reviewlab_common import db
from reviewlab_common.asyncreads import AsyncReads
from reviewlab_common.outliers import Ejector
from reviewlab_common.topology import parse
from reviewlab_lab.paths import TOPOLOGY_PATH


class Cursor:
    def __init__(self, row: tuple[Any, ...]) -> None:
        self.row = row

    async def fetchone(self) -> tuple[Any, ...]:
        return self.row


class Connection:
    """A member's connection; BEHIND: its replay is short of any reader's last write."""

    class info:
        host = "127.0.0.21"

    def __init__(self, statements: list[str], behind: bool, primary: bool = False) -> None:
        self.statements = statements
        self.behind = behind
        self.primary = primary

    async def execute(self, sql: str, params: Any = None) -> Cursor:
        self.statements.append(sql)
        if "pg_is_in_recovery" in sql:
            return Cursor((not self.primary, not self.behind))
        return Cursor(("row",))

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[None]:
        yield


class Pool:
    """Serves, times out or breaks, as told; records each statement it was sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.timeout = 0.05
        self.fault: str | None = None
        self.behind = False
        self.primary = False  # not in recovery: a primary (one just promoted, say)
        self.statements: list[str] = []

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        if self.fault == "timeout":
            raise PoolTimeout("no connection")
        if self.fault == "broken":
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        yield Connection(self.statements, self.behind, self.primary)

    async def check(self) -> None:
        return None


@pytest.fixture()
def reads(monkeypatch: pytest.MonkeyPatch) -> AsyncReads:
    monkeypatch.setattr(db.lab_dns, "lookup", lambda *a, **k: [])  # no DNS in the unit tier
    with TOPOLOGY_PATH.open("rb") as handle:
        topology = parse(tomllib.load(handle))
    router = db.ClusterRouter(
        topology, topology.catalog, dbname="shop", user="app", password="x", app="t"
    )
    down: set[str] = set()
    router.member_answers = lambda name: name not in down  # type: ignore[method-assign]
    router.ejector = Ejector(router.member_answers)
    replicas = [m.name for m in topology.catalog.members[1:]]
    router.replica_names = lambda: list(replicas)  # type: ignore[method-assign]
    reads = AsyncReads(router)
    reads.member_pools = {n: Pool(n) for n in router.member_pools}  # type: ignore[misc]
    reads.primary_pool = Pool("primary")  # type: ignore[assignment]
    reads.down = down  # type: ignore[attr-defined]
    return reads


def pools(reads: AsyncReads) -> dict[str, Pool]:
    return reads.member_pools  # type: ignore[return-value]


async def fetch(conn: Any) -> tuple[Any, ...]:
    cursor = await conn.execute("SELECT 1")
    return await cursor.fetchone()  # type: ignore[no-any-return]


def read(reads: AsyncReads, min_lsn: str | None = None) -> db.ReadSource:
    return asyncio.run(reads.read(fetch, min_lsn=min_lsn))[1]


def test_a_read_with_no_write_to_catch_up_on_is_one_statement_on_a_replica(
    reads: AsyncReads,
) -> None:
    source = read(reads)
    assert source.role == "replica"
    assert pools(reads)[source.node].statements == ["SELECT 1"]


def test_a_reader_with_a_write_is_checked_and_goes_to_the_primary_when_replicas_lag(
    reads: AsyncReads,
) -> None:
    for pool in pools(reads).values():
        pool.behind = True
    source = read(reads, min_lsn="0/1000")
    assert source.role == "primary"
    assert all(
        "pg_is_in_recovery" in p.statements[0] for p in pools(reads).values() if p.statements
    )


@pytest.mark.parametrize("fault", ["timeout", "broken"])
def test_a_failed_replica_is_ejected_for_both_sides_and_another_serves(
    reads: AsyncReads, fault: str
) -> None:
    dead, alive = list(pools(reads))[1:]
    pools(reads)[dead].fault = fault
    reads.down.add(dead)  # type: ignore[attr-defined]
    assert {read(reads).node for _ in range(20)} == {alive}
    assert list(reads.router.ejector.ejected()) == [dead]  # the sync router's ejector too


def test_a_busy_replica_that_answers_is_not_ejected(reads: AsyncReads) -> None:
    busy = list(pools(reads))[1]
    pools(reads)[busy].fault = "timeout"
    for _ in range(10):
        assert read(reads).node != busy
    assert reads.router.ejector.ejected() == {}


def test_with_every_member_down_a_read_is_unavailable_not_an_error(
    reads: AsyncReads,
) -> None:
    for name in list(pools(reads)):
        pools(reads)[name].fault = "broken"
        reads.down.add(name)  # type: ignore[attr-defined]
    reads.primary_pool.fault = "broken"  # type: ignore[attr-defined]
    with pytest.raises(db.DatabaseUnavailable, match="catalog primary unavailable"):
        read(reads)


def test_between_a_promotion_and_the_dns_the_promoted_member_serves(
    reads: AsyncReads, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replica list has dropped the promoted member; the primary's name is the lost one."""
    lost, promoted, *_ = list(pools(reads))
    monkeypatch.setattr(reads.router, "replica_names", lambda: [])
    reads.primary_pool.fault = "broken"  # type: ignore[attr-defined]
    pools(reads)[lost].fault = "broken"
    pools(reads)[promoted].primary = True
    for name in list(pools(reads))[2:]:
        pools(reads)[name].behind = True  # replicas short of the reader's last write
    result, source = asyncio.run(reads.read(fetch, min_lsn="0/5000000"))
    assert result == ("row",)
    assert (source.role, source.node) == ("primary", promoted)


def test_a_lagging_replica_does_not_serve_a_token_read_while_the_primary_is_away(
    reads: AsyncReads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reads.router, "replica_names", lambda: [])
    reads.primary_pool.fault = "broken"  # type: ignore[attr-defined]
    for pool in pools(reads).values():
        pool.behind = True
    with pytest.raises(db.DatabaseUnavailable, match="catalog primary unavailable"):
        asyncio.run(reads.read(fetch, min_lsn="0/5000000"))
