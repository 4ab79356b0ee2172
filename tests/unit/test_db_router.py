"""ClusterRouter.write: committed work never runs twice, and its LSN is read after the commit.

The router is real; only its edge is faked: the primary's connection pool, whose connections
can be lost at a chosen moment (inside the work, during COMMIT, reading the LSN), and the DNS.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout
from reviewlab_common import db
from reviewlab_common.topology import parse
from reviewlab_lab.paths import TOPOLOGY_PATH


class FakePrimary:
    """The server side: what ran and committed, and when the connection is lost."""

    def __init__(self, *, lose_at: list[str] | None = None) -> None:
        # Losses in order, each at its moment: "connect", "work", "commit" or "lsn".
        self.lose_at = list(lose_at or [])
        self.log: list[str] = []
        self.commits = 0
        self.wal = 0x3000000

    def lost(self, moment: str) -> bool:
        if self.lose_at[:1] == [moment]:
            self.lose_at.pop(0)
            self.log.append(f"lost at {moment}")
            return True
        return False

    @property
    def lsn(self) -> str:
        return f"{self.wal >> 32:X}/{self.wal & 0xFFFFFFFF:X}"


class FakeCursor:
    def __init__(self, row: tuple[Any, ...] | None) -> None:
        self.row = row

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.row


class FakeConnection:
    """One connection to the primary; once lost, every call fails as psycopg's would."""

    def __init__(self, server: FakePrimary) -> None:
        self.server = server
        self.broken = False
        self.pending: list[str] = []

    def _check(self, moment: str) -> None:
        if self.broken or self.server.lost(moment):
            self.broken = True
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    def execute(self, sql: str, params: Any = None) -> FakeCursor:
        if "pg_current_wal_lsn" in sql:
            self._check("lsn")
            self.server.log.append("read lsn")
            return FakeCursor((self.server.lsn,))
        self._check("work")
        self.pending.append(sql)
        return FakeCursor(None)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.pending = []
        yield
        self._check("commit")
        self.server.commits += 1
        self.server.wal += 0x100 * len(self.pending)
        self.server.log.append(f"commit {self.pending}")


class FakePool:
    """Stands in for psycopg_pool.ConnectionPool: a new connection per checkout."""

    name = "fake-primary"

    def __init__(self, server: FakePrimary) -> None:
        self.server = server

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[FakeConnection]:
        if self.server.lost("connect"):
            raise PoolTimeout("couldn't get a connection after 5.00 sec")
        conn = FakeConnection(self.server)
        yield conn
        if conn.broken:  # the pool's closing COMMIT on a lost connection fails too
            raise psycopg.OperationalError("the connection is lost")

    def check(self) -> None:
        return None


@pytest.fixture()
def router(monkeypatch: pytest.MonkeyPatch) -> db.ClusterRouter:
    monkeypatch.setattr(db.lab_dns, "lookup", lambda *a, **k: [])  # no DNS in the unit tier
    with TOPOLOGY_PATH.open("rb") as handle:
        topology = parse(tomllib.load(handle))
    cluster = topology.shards[0]
    return db.ClusterRouter(topology, cluster, dbname="reviews", user="app", password="x", app="t")


def use(router: db.ClusterRouter, server: FakePrimary) -> None:
    router.primary_pool = FakePool(server)  # type: ignore[assignment]


class Insert:
    """The work: one INSERT; counts how often it ran."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, conn: Any) -> str:
        self.runs += 1
        conn.execute("INSERT INTO reviews VALUES (1)")
        return "inserted"


def test_a_write_commits_once_and_reads_its_lsn_after_the_commit(
    router: db.ClusterRouter,
) -> None:
    server = FakePrimary()
    use(router, server)
    work = Insert()
    result, lsn = router.write(work)
    assert (result, work.runs, server.commits) == ("inserted", 1, 1)
    assert server.log == ["commit ['INSERT INTO reviews VALUES (1)']", "read lsn"]
    assert lsn == server.lsn == "0/3000100"  # past the commit record, not before it


def test_a_connection_lost_after_the_commit_does_not_run_the_work_again(
    router: db.ClusterRouter,
) -> None:
    server = FakePrimary(lose_at=["lsn"])
    use(router, server)
    work = Insert()
    result, lsn = router.write(work)
    assert (result, work.runs, server.commits) == ("inserted", 1, 1)
    # The LSN comes from a new connection to the primary: still at or past the commit.
    assert server.log[-2:] == ["lost at lsn", "read lsn"]
    assert lsn == "0/3000100"


def test_without_any_lsn_after_the_commit_the_token_sends_reads_to_the_primary(
    router: db.ClusterRouter,
) -> None:
    server = FakePrimary(lose_at=["lsn", "connect"])
    use(router, server)
    work = Insert()
    result, lsn = router.write(work)
    assert (result, work.runs, server.commits) == ("inserted", 1, 1)
    assert lsn == db.PRIMARY_ONLY_LSN


def test_a_connection_lost_inside_the_work_runs_it_again_on_a_new_connection(
    router: db.ClusterRouter,
) -> None:
    server = FakePrimary(lose_at=["work"])
    use(router, server)
    work = Insert()
    result, lsn = router.write(work)
    assert (result, work.runs, server.commits) == ("inserted", 2, 1)
    assert lsn == "0/3000100"


def test_no_connection_at_first_is_retried(router: db.ClusterRouter) -> None:
    server = FakePrimary(lose_at=["connect"])
    use(router, server)
    work = Insert()
    assert router.write(work)[0] == "inserted"
    assert (work.runs, server.commits) == (1, 1)


def test_a_connection_lost_during_commit_is_reported_and_not_run_again(
    router: db.ClusterRouter,
) -> None:
    server = FakePrimary(lose_at=["commit"])
    use(router, server)
    work = Insert()
    with pytest.raises(db.CommitOutcomeUnknown, match="may have been kept"):
        router.write(work)
    assert work.runs == 1


def test_two_lost_connections_before_the_commit_are_unavailable(
    router: db.ClusterRouter,
) -> None:
    server = FakePrimary(lose_at=["work", "work"])
    use(router, server)
    work = Insert()
    with pytest.raises(db.DatabaseUnavailable) as raised:
        router.write(work)
    assert not isinstance(raised.value, db.CommitOutcomeUnknown)
    assert (work.runs, server.commits) == (2, 0)


def test_an_error_of_the_work_itself_is_not_retried(router: db.ClusterRouter) -> None:
    server = FakePrimary()
    use(router, server)
    runs = []

    def refuse(conn: Any) -> None:
        runs.append(1)
        raise LookupError("review 7 does not exist")

    with pytest.raises(LookupError):
        router.write(refuse)
    assert (len(runs), server.commits) == (1, 0)


def test_a_ping_over_a_connection_a_restart_broke_asks_again(router: db.ClusterRouter) -> None:
    server = FakePrimary(lose_at=["work"])
    use(router, server)
    assert router.ping() is None
    assert server.log == ["lost at work"]


def test_a_ping_broken_twice_names_the_failure(router: db.ClusterRouter) -> None:
    use(router, FakePrimary(lose_at=["work", "work"]))
    assert "primary unavailable" in (router.ping() or "")


def test_a_ping_without_a_connection_in_time_does_not_wait_again(
    router: db.ClusterRouter,
) -> None:
    server = FakePrimary(lose_at=["connect"])
    use(router, server)
    assert "primary unavailable" in (router.ping() or "")
    assert server.log == ["lost at connect"]
