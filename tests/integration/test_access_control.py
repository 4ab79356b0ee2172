"""Redis, etcd and Patroni's REST API refuse anonymous clients; each user may do only its job."""

from __future__ import annotations

import socket

import httpx
import pytest
import redis
from reviewlab_common import queue
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.etcd import PATRONI_ETCD_USER, PATRONI_NAMESPACE, Etcd, EtcdError, b64
from reviewlab_common.shards import SHARD_MAP_KEY
from reviewlab_common.topology import Topology


def raw_redis(topology: Topology, command: bytes) -> bytes:
    """Send one inline command on a fresh connection, as any process on the machine could."""
    node = topology.one("redis")
    with socket.create_connection((node.address, node.port), timeout=3) as conn:
        conn.sendall(command + b"\r\n")
        return conn.recv(200)


@pytest.mark.parametrize("command", [b"PING", b"XADD photo-jobs * review_id 1", b"KEYS *"])
def test_redis_refuses_an_anonymous_client(topology: Topology, command: bytes) -> None:
    assert raw_redis(topology, command).startswith(b"-NOAUTH")


def test_redis_refuses_a_wrong_password(topology: Topology) -> None:
    reply = raw_redis(topology, b"AUTH worker not-the-password")
    assert reply.startswith(b"-WRONGPASS")


@pytest.mark.parametrize(
    "command",
    [
        ("XADD", queue.JOBS_STREAM, "*", "review_id", "1"),
        ("XREADGROUP", "GROUP", queue.WORKERS_GROUP, "web", "STREAMS", queue.JOBS_STREAM, ">"),
        ("XRANGE", queue.JOBS_STREAM, "-", "+"),
        ("GET", "anything"),
        ("FLUSHALL",),
        ("CONFIG", "GET", "save"),
        ("ACL", "LIST"),
    ],
    ids=lambda command: command[0],
)
def test_the_web_tier_may_only_ping(topology: Topology, command: tuple[str, ...]) -> None:
    web = queue.connect(topology, "web")
    assert web.ping() is True
    with pytest.raises(redis.exceptions.NoPermissionError):
        web.execute_command(*command)


@pytest.mark.parametrize(
    "command",
    [
        ("SET", "scratch-acl", "1"),
        ("XADD", "another-stream", "*", "a", "1"),
        ("DEL", queue.JOBS_STREAM),
        ("FLUSHALL",),
        ("CONFIG", "SET", "appendonly", "no"),
        ("SHUTDOWN",),
    ],
    ids=lambda command: f"{command[0]} {command[1] if len(command) > 1 else ''}".strip(),
)
def test_a_worker_may_touch_only_the_job_streams(
    topology: Topology, command: tuple[str, ...]
) -> None:
    worker = queue.connect(topology, "worker")
    # What the relay and the runner do works ...
    assert worker.xlen(queue.JOBS_STREAM) >= 0
    assert worker.xpending(queue.JOBS_STREAM, queue.WORKERS_GROUP)["pending"] >= 0
    # ... nothing else does.
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.execute_command(*command)


def etcd_anonymous(topology: Topology, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(f"{topology.of_kind('etcd')[0].url}/v3/{path}", json=body, timeout=3)


def test_etcd_refuses_an_anonymous_client(topology: Topology) -> None:
    write = etcd_anonymous(topology, "kv/put", {"key": b64(SHARD_MAP_KEY), "value": b64("{}")})
    assert write.status_code in (400, 401), write.text
    assert "user name is empty" in write.text
    read = etcd_anonymous(topology, "kv/range", {"key": b64(SHARD_MAP_KEY)})
    assert "user name is empty" in read.text
    assert "kvs" not in read.json()
    # etcd's /health stays anonymous: readiness probes need no password.
    health = httpx.get(f"{topology.of_kind('etcd')[0].url}/health", timeout=3)
    assert health.json()["health"] == "true"


def test_the_web_tier_may_read_the_shard_map_but_not_change_it(topology: Topology) -> None:
    web = Etcd(topology, user="web")
    found = web.get(SHARD_MAP_KEY)
    assert found is not None
    with pytest.raises(EtcdError, match="permission denied"):
        web.put(SHARD_MAP_KEY, found[0])
    with pytest.raises(EtcdError, match="permission denied"):
        web.get(f"{PATRONI_NAMESPACE}{topology.catalog.name}/leader")


def test_patroni_may_use_its_clusters_keys_only(topology: Topology) -> None:
    patroni = Etcd(topology, user=PATRONI_ETCD_USER)
    leader = patroni.get(f"{PATRONI_NAMESPACE}{topology.catalog.name}/leader")
    assert leader is not None  # Patroni's own keys: readable
    with pytest.raises(EtcdError, match="permission denied"):
        patroni.get(SHARD_MAP_KEY)


def test_etcd_refuses_a_wrong_password(topology: Topology) -> None:
    reply = etcd_anonymous(topology, "auth/authenticate", {"name": "root", "password": "guess"})
    assert "authentication failed" in reply.text


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        # Bodies that would change nothing if they got through: a restart only when one is
        # pending, the loop_wait it already has, a switchover to a member that does not exist.
        ("POST", "/restart", {"restart_pending": True}),
        ("POST", "/reload", {}),
        ("PATCH", "/config", {"loop_wait": 3}),
        ("POST", "/switchover", {"leader": "nobody"}),
    ],
)
def test_patroni_rest_writes_need_credentials(
    topology: Topology, method: str, path: str, body: dict[str, object]
) -> None:
    member = topology.catalog.members[0]
    url = f"http://{member.address}:{member.rest_port}{path}"
    anonymous = httpx.request(method, url, json=body, timeout=5)
    assert anonymous.status_code == 401, anonymous.text
    user = lab_secrets.PATRONI_REST_USER
    wrong = httpx.request(method, url, json=body, auth=(user, "guess"), timeout=5)
    assert wrong.status_code == 401, wrong.text


def test_patroni_rest_reads_stay_anonymous_for_probes(topology: Topology) -> None:
    member = topology.catalog.members[0]
    for path in ("/readiness", "/cluster", "/health"):
        reply = httpx.get(f"http://{member.address}:{member.rest_port}{path}", timeout=5)
        assert reply.status_code in (200, 503), (path, reply.status_code)
        assert reply.status_code != 401
