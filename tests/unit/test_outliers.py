"""Outlier ejection: bounded backoff, a probe before a member is back, and the router's retry.

The clock and the probe are the test's; no socket is opened.
"""

from __future__ import annotations

import socket
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout
from reviewlab_common import db
from reviewlab_common.outliers import EjectionPolicy, Ejector, accepts_connections
from reviewlab_common.topology import parse
from reviewlab_lab.paths import TOPOLOGY_PATH


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Probe:
    """Answers as told and counts the probes per member."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.calls: list[str] = []

    def __call__(self, name: str) -> bool:
        self.calls.append(name)
        return name not in self.down


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def probe() -> Probe:
    return Probe()


@pytest.fixture()
def ejector(clock: Clock, probe: Probe) -> Ejector:
    return Ejector(probe, EjectionPolicy(base_s=0.5, max_s=4.0), clock)


def test_a_healthy_member_is_admitted_without_a_probe(ejector: Ejector, probe: Probe) -> None:
    assert ejector.admitted(["a", "b"]) == ["a", "b"]
    assert probe.calls == []


def test_an_ejected_member_is_out_until_its_backoff_ends(ejector: Ejector, clock: Clock) -> None:
    assert ejector.eject("a") == 0.5
    assert ejector.admitted(["a", "b"]) == ["b"]
    clock.now += 0.49
    assert ejector.admitted(["a", "b"]) == ["b"]
    clock.now += 0.02
    assert ejector.admitted(["a", "b"]) == ["a", "b"]


def test_reads_failing_at_once_on_one_member_eject_it_once(ejector: Ejector) -> None:
    assert [ejector.eject("a") for _ in range(3)] == [0.5, 0.5, 0.5]
    assert list(ejector.ejected()) == ["a"]


def test_the_backoff_doubles_while_the_probe_fails_and_is_bounded(
    ejector: Ejector, clock: Clock, probe: Probe
) -> None:
    probe.down.add("a")
    backoffs = [ejector.eject("a")]
    for _ in range(5):
        clock.now += backoffs[-1]
        assert ejector.admitted(["a"]) == []  # probed, did not answer: ejected again
        backoffs.append(round(ejector.ejected()["a"], 3))
    assert backoffs == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert probe.calls == ["a"] * 5


def test_a_member_that_answers_the_probe_is_back_on_trial(
    ejector: Ejector, clock: Clock, probe: Probe
) -> None:
    ejector.eject("a")
    clock.now += 0.5
    assert ejector.admitted(["a"]) == ["a"]
    assert ejector.admitted(["a"]) == ["a"]
    assert probe.calls == ["a"]  # one probe, not one per read
    # Still on trial: failing again ejects it for twice as long.
    assert ejector.eject("a") == 1.0


def test_a_served_read_clears_the_record(ejector: Ejector, clock: Clock) -> None:
    ejector.eject("a")
    clock.now += 0.5
    ejector.admitted(["a"])
    ejector.served("a")
    assert ejector.ejected_since() == {}
    assert ejector.eject("a") == 0.5


def test_a_member_that_just_served_a_read_is_serving(ejector: Ejector, clock: Clock) -> None:
    assert not ejector.serving("a", within=1.0)
    ejector.served("a")
    clock.now += 0.9
    assert ejector.serving("a", within=1.0)
    clock.now += 0.2
    assert not ejector.serving("a", within=1.0)


def test_only_one_caller_probes_a_member(clock: Clock) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_probe(name: str) -> bool:
        entered.set()
        release.wait(5)
        return True

    ejector = Ejector(slow_probe, EjectionPolicy(base_s=0.5), clock)
    ejector.eject("a")
    clock.now += 1
    results: list[list[str]] = []
    prober = threading.Thread(target=lambda: results.append(ejector.admitted(["a"])))
    prober.start()
    assert entered.wait(5)
    assert ejector.admitted(["a", "b"]) == ["b"]  # a is being probed: skipped, not waited for
    release.set()
    prober.join(5)
    assert results == [["a"]]


def test_the_probe_says_no_for_a_port_nobody_listens_on() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        assert accepts_connections("127.0.0.1", port, 0.05) is False


# The router: a replica that fails is ejected, and the read is served elsewhere.


class FakeCursor:
    def __init__(self, row: tuple[Any, ...]) -> None:
        self.row = row

    def fetchone(self) -> tuple[Any, ...]:
        return self.row


class FakeConnection:
    class info:
        host = "127.0.0.21"

    def execute(self, sql: str, params: Any = None) -> FakeCursor:
        return FakeCursor((True, True) if "pg_is_in_recovery" in sql else ("row",))

    def rollback(self) -> None:
        return None

    @contextmanager
    def pipeline(self) -> Iterator[None]:
        yield


class FakeMemberPool:
    """A member's pool: serves, times out (no connection) or breaks mid-read, as told."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fault: str | None = None
        self.checkouts = 0

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[FakeConnection]:
        self.checkouts += 1
        if self.fault == "timeout":
            raise PoolTimeout(f"couldn't get a connection after {timeout} sec")
        if self.fault == "broken":
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        yield FakeConnection()

    def check(self) -> None:
        return None


@pytest.fixture()
def router(monkeypatch: pytest.MonkeyPatch, probe: Probe) -> db.ClusterRouter:
    monkeypatch.setattr(db.lab_dns, "lookup", lambda *a, **k: [])  # no DNS in the unit tier
    with TOPOLOGY_PATH.open("rb") as handle:
        topology = parse(tomllib.load(handle))
    router = db.ClusterRouter(
        topology, topology.catalog, dbname="shop", user="app", password="x", app="t"
    )
    router.member_pools = {n: FakeMemberPool(n) for n in router.member_pools}  # type: ignore[misc]
    router.primary_pool = FakeMemberPool("primary")  # type: ignore[assignment]
    router.ejector = Ejector(probe)
    router.member_answers = probe  # type: ignore[method-assign]
    replicas = [m.name for m in topology.catalog.members[1:]]
    router.replica_names = lambda: list(replicas)  # type: ignore[method-assign]
    return router


def pools(router: db.ClusterRouter) -> dict[str, FakeMemberPool]:
    return router.member_pools  # type: ignore[return-value]


def read(router: db.ClusterRouter) -> db.ReadSource:
    return router.read(lambda conn: conn.execute("SELECT 1").fetchone())[1]


def test_the_router_waits_for_a_member_only_its_connect_timeout(router: db.ClusterRouter) -> None:
    assert router.member_wait_s == router.topology.lab.runtime.connect_timeout_s
    assert router.member_wait_s < 0.1  # tens of ms on one machine, not libpq's 2 s floor


@pytest.mark.parametrize("fault", ["timeout", "broken"])
def test_a_failed_replica_is_ejected_and_the_read_served_by_another(
    router: db.ClusterRouter, probe: Probe, fault: str
) -> None:
    dead, alive = list(pools(router))[1:]
    pools(router)[dead].fault = fault
    probe.down.add(dead)
    sources = {read(router).node for _ in range(20)}
    assert sources == {alive}
    assert pools(router)[dead].checkouts == 1  # tried once, then out of rotation
    assert list(router.ejector.ejected()) == [dead]


def test_a_busy_replica_that_answers_is_not_ejected(router: db.ClusterRouter, probe: Probe) -> None:
    busy = list(pools(router))[1]
    pools(router)[busy].fault = "timeout"  # no free connection, but the member answers
    for _ in range(10):
        assert read(router).node != busy
    assert router.ejector.ejected() == {}


def test_with_every_replica_down_the_read_retries_once_then_goes_to_the_primary(
    router: db.ClusterRouter, probe: Probe
) -> None:
    for name in list(pools(router))[1:]:
        pools(router)[name].fault = "broken"
        probe.down.add(name)
    source = read(router)
    assert source.role == "primary"
    assert sum(p.checkouts for p in pools(router).values()) == 2  # one try and one retry
    assert read(router).role == "primary"
    assert sum(p.checkouts for p in pools(router).values()) == 2  # both ejected: no wait at all
