"""Readiness answers fast whatever a dependency does: bounded clients, checks under one deadline.

The silent dependency here is a socket on 127.0.0.1 that accepts and never replies, as a
Redis or a MinIO behind a dropped link would; no lab is involved.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reviewlab_common import health
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology, current
from reviewlab_lab import secretfile


@pytest.fixture()
def topology(tmp_path: Path) -> Topology:
    real = current()
    return dataclasses.replace(real, lab=dataclasses.replace(real.lab, data_dir=tmp_path))


@pytest.fixture()
def secrets() -> lab_secrets.LabSecrets:
    return secretfile.generate()


class SilentPeer:
    """A listener that accepts connections and never sends a byte; counts the connects."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port: int = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture()
def silent() -> Iterator[SilentPeer]:
    peer = SilentPeer()
    yield peer
    peer.close()


def at(topology: Topology, kind: str, port: int) -> Topology:
    """TOPOLOGY with its single node of KIND at 127.0.0.1:PORT."""
    node = topology.one(kind)
    moved = dataclasses.replace(node, address="127.0.0.1", host_address="127.0.0.1", port=port)
    return dataclasses.replace(topology, nodes={**topology.nodes, node.name: moved})


def test_the_bounds_come_from_the_runtimes_connect_timeout(topology: Topology) -> None:
    bounds = health.ProbeBounds.of(topology)
    assert bounds.connect_s == topology.lab.runtime.connect_timeout_s == 0.05
    # Each check's own bound ends before the answer is due, so it names its own fault.
    assert bounds.reply_s < bounds.answer_within_s
    assert bounds.pool_wait_s < bounds.answer_within_s
    assert bounds.answer_within_s <= 1.0


def test_the_probe_clients_connect_and_reply_within_the_bounds_without_retries(
    topology: Topology, secrets: lab_secrets.LabSecrets
) -> None:
    bounds = health.ProbeBounds.of(topology)
    queue_client, s3 = health.probe_clients(topology, "web", bounds, secrets=secrets)
    kwargs = queue_client.connection_pool.connection_kwargs
    assert kwargs["socket_connect_timeout"] == bounds.connect_s
    assert kwargs["socket_timeout"] == bounds.reply_s
    assert kwargs["retry"].get_retries() == 0
    config = s3.meta.config
    assert config.connect_timeout == bounds.connect_s
    assert config.read_timeout == bounds.reply_s
    assert config.retries["total_max_attempts"] == 1


def test_a_silent_redis_is_named_after_one_bounded_try(
    topology: Topology, secrets: lab_secrets.LabSecrets, silent: SilentPeer
) -> None:
    lab = at(topology, "redis", silent.port)
    bounds = health.ProbeBounds.of(lab)
    queue_client, _ = health.probe_clients(lab, "web", bounds, secrets=secrets)
    started = time.monotonic()
    problem = health.redis_check(queue_client)()
    took = time.monotonic() - started
    assert problem is not None and "Timeout" in problem, problem
    # One connect, one unanswered command: the client library's default sent it 11 times,
    # each reconnect retried 11 times as well.
    assert len(silent.accepted) == 1
    assert took < bounds.answer_within_s + 1.0, took


def test_a_silent_minio_is_named_after_one_bounded_try(
    topology: Topology, secrets: lab_secrets.LabSecrets, silent: SilentPeer
) -> None:
    lab = at(topology, "minio", silent.port)
    bounds = health.ProbeBounds.of(lab)
    _, s3 = health.probe_clients(lab, "web", bounds, secrets=secrets)
    started = time.monotonic()
    problem = health.minio_check(s3)()
    took = time.monotonic() - started
    assert problem is not None and "timeout" in problem.lower(), problem
    assert len(silent.accepted) == 1
    assert took < bounds.answer_within_s + 1.0, took


BOUNDS = health.ProbeBounds(connect_s=0.05, reply_s=0.05, pool_wait_s=0.05, answer_within_s=0.3)


def test_a_check_that_hangs_is_named_when_the_answer_is_due_and_the_others_answer() -> None:
    release = threading.Event()
    calls: list[str] = []

    def hangs() -> str | None:
        calls.append("hangs")
        release.wait(10)
        return None

    checks = health.DependencyChecks(
        {
            "catalog": lambda: None,
            "redis": hangs,
            "minio": lambda: "refused",
            "shard map": lambda: str(1 / 0),
        },
        BOUNDS,
    )
    try:
        first = checks.unreachable()
        assert set(first) == {"redis", "minio", "shard map"}
        assert first["redis"].startswith("no answer in ")
        assert first["minio"] == "refused"
        assert "ZeroDivisionError" in first["shard map"]
        # Asked again while it still hangs: the same run is waited on, no second one starts,
        # and the wait it reports grows.
        second = checks.unreachable()
        assert calls == ["hangs"]
        waited = [float(found["redis"].split()[3]) for found in (first, second)]
        assert waited[1] > waited[0]
        release.set()
        time.sleep(0.05)
        assert "redis" not in checks.unreachable()
        assert calls == ["hangs", "hangs"]
    finally:
        release.set()
        checks.close()


def test_every_dependency_answering_is_ready() -> None:
    checks = health.DependencyChecks({"catalog": lambda: None, "redis": lambda: None}, BOUNDS)
    try:
        assert checks.unreachable() == {}
    finally:
        checks.close()
