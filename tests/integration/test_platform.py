"""The native lab's platform: every node ready, the Patroni clusters in the expected shape."""

from __future__ import annotations

import json
import subprocess
from functools import partial
from typing import Any

import httpx
import psycopg
import pytest
from reviewlab_common import db
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Cluster, Node, Topology, current
from reviewlab_lab import install
from reviewlab_lab.procs import pid_alive

from tests.integration.conftest import eventually
from tests.integration.shop import patroni_members, superuser

STATUS_FIELDS = {"name", "kind", "role", "address", "port", "state", "ready", "lag_bytes", "pid"}
POSTGRES_ROLES = {"primary", "replica", "replica (sync)"}
CLUSTER_NAMES = sorted(current().clusters)


def status_json(topology: Topology) -> list[dict[str, Any]]:
    """What `reviewlab status --json` prints, parsed."""
    binary = install.current().bin / "reviewlab"
    out = subprocess.run(
        [str(binary), "status", "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(out.stdout))


def all_ready(topology: Topology) -> list[dict[str, Any]]:
    """The status entries once every node is ready; [] (keep polling) before that."""
    entries = status_json(topology)
    return entries if entries and all(e["ready"] is True for e in entries) else []


def test_every_node_is_ready_in_status_json(topology: Topology) -> None:
    entries = eventually(
        lambda: all_ready(topology), within=60, every=1.0, what="every node ready in status"
    )
    assert sorted(e["name"] for e in entries) == sorted(topology.nodes)
    # The vIP is an address, not a process: held by one of its members, with no pid.
    (vip,) = [e for e in entries if e["name"] == topology.vip.name]
    assert (vip["state"], vip["pid"], vip["address"]) == ("held", None, topology.vip.address)
    assert vip["role"] in {f"held by {m}" for m in topology.vip.members}, vip
    for entry in (e for e in entries if e["name"] != topology.vip.name):
        assert set(entry) >= STATUS_FIELDS, entry
        node = topology.nodes[entry["name"]]
        assert (entry["kind"], entry["address"], entry["port"]) == (
            node.kind,
            node.address,
            node.port,
        )
        assert entry["state"] == "running", entry
        assert isinstance(entry["pid"], int) and pid_alive(entry["pid"]), entry
        if node.kind == "postgres":
            assert entry["role"] in POSTGRES_ROLES, entry
            if topology.lab.runtime.name == "native":
                # Patroni and its postmaster are separate processes; both must be alive.
                assert isinstance(entry["postmaster_pid"], int), entry
                assert entry["postmaster_pid"] != entry["pid"], entry
                assert pid_alive(entry["postmaster_pid"]), entry
            if entry["role"] == "primary":
                assert entry["lag_bytes"] is None, entry
            else:
                assert isinstance(entry["lag_bytes"], int) and entry["lag_bytes"] >= 0, entry
        else:
            assert entry["lag_bytes"] is None, entry
            assert entry["role"], entry
    for cluster in topology.clusters.values():
        roles = sorted(e["role"] for e in entries if e["name"] in member_names(cluster))
        assert roles.count("primary") == 1, (cluster.name, roles)
        assert len(roles) == len(cluster.members), (cluster.name, roles)


def member_names(cluster: Cluster) -> set[str]:
    return {m.name for m in cluster.members}


def healthy_shape(cluster: Cluster) -> list[dict[str, Any]]:
    """Patroni's members once there is one leader and every other member streams, else []."""
    seen = patroni_members(cluster)
    leaders = [m for m in seen if m["role"] == "leader"]
    replicas = [m for m in seen if m["role"] != "leader"]
    if len(leaders) != 1 or len(replicas) != len(cluster.members) - 1:
        return []
    if any(m["state"] != "streaming" for m in replicas):
        return []
    return seen


def test_the_topology_declares_a_three_node_catalog_and_two_node_shards(
    topology: Topology,
) -> None:
    assert len(topology.catalog.members) == 3
    assert topology.shards, "the topology declares no shard"
    assert all(len(shard.members) == 2 for shard in topology.shards)


@pytest.mark.parametrize("cluster_name", CLUSTER_NAMES)
def test_patroni_reports_one_leader_and_streaming_replicas(
    topology: Topology, cluster_name: str
) -> None:
    cluster = topology.clusters[cluster_name]
    seen = eventually(
        lambda: healthy_shape(cluster), within=60, what=f"{cluster_name} in its healthy shape"
    )
    assert {m["name"] for m in seen} == member_names(cluster)
    leaders = [m for m in seen if m["role"] == "leader"]
    replicas = [m for m in seen if m["role"] != "leader"]
    assert len(leaders) == 1, seen
    assert {m["role"] for m in replicas} <= {"replica", "sync_standby"}, seen
    if cluster.synchronous_mode:
        # synchronous_mode: Patroni keeps exactly one replica synchronous.
        assert [m["role"] for m in replicas].count("sync_standby") == 1, seen
    for replica in replicas:
        assert isinstance(replica["lag"], int) and replica["lag"] >= 0, replica


@pytest.mark.parametrize("cluster_name", CLUSTER_NAMES)
def test_sql_shows_the_primary_streaming_to_its_replicas(
    topology: Topology, cluster_name: str
) -> None:
    cluster = topology.clusters[cluster_name]
    seen = eventually(
        lambda: healthy_shape(cluster), within=60, what=f"{cluster_name} in its healthy shape"
    )
    by_name = {m.name: m for m in cluster.members}
    leader = next(m for m in seen if m["role"] == "leader")
    replicas = {m["name"]: m["role"] for m in seen if m["role"] != "leader"}
    primary = by_name[leader["name"]]

    with superuser(topology, primary) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        streaming = conn.execute(
            "SELECT application_name, state, sync_state FROM pg_stat_replication"
        ).fetchall()
        # A WAL record written now must reach every replica: replication moves, not just exists.
        conn.execute("SELECT pg_logical_emit_message(true, 'reviewlab-platform-test', 'ping')")
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        target = row[0]

    # Patroni names each replication connection after the replica's member name.
    assert sorted(name for name, _, _ in streaming) == sorted(replicas)
    assert {state for _, state, _ in streaming} == {"streaming"}
    if cluster.synchronous_mode:
        sync_members = {name for name, _, sync in streaming if sync == "sync"}
        assert sync_members == {n for n, role in replicas.items() if role == "sync_standby"}

    for name in replicas:
        with superuser(topology, by_name[name]) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)

            def replayed(conn: psycopg.Connection[tuple[Any, ...]] = conn) -> bool:
                found = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s::pg_lsn) >= 0",
                    (target,),
                ).fetchone()
                return found == (True,)

            eventually(replayed, within=15, what=f"{name} replays the primary's WAL to {target}")


@pytest.mark.parametrize("cluster_name", CLUSTER_NAMES)
def test_the_app_user_reaches_the_primary_with_read_write(
    topology: Topology, cluster_name: str
) -> None:
    cluster = topology.clusters[cluster_name]
    seen = eventually(
        lambda: healthy_shape(cluster), within=60, what=f"{cluster_name} in its healthy shape"
    )
    leader = next(m for m in seen if m["role"] == "leader")
    with psycopg.connect(
        host=",".join(m.address for m in cluster.members),
        port=",".join(str(m.port) for m in cluster.members),
        dbname=db.database_of(cluster),
        user=db.APP_USER,
        password=lab_secrets.load(topology).app_password,
        connect_timeout=3,
        target_session_attrs="read-write",
        autocommit=True,
    ) as conn:
        assert conn.info.host == topology.nodes[leader["name"]].address
        assert conn.execute("SELECT current_database(), current_user").fetchone() == (
            db.database_of(cluster),
            db.APP_USER,
        )
        assert conn.execute("SHOW transaction_read_only").fetchone() == ("off",)


def answers_health_and_metrics(node: Node) -> bool:
    alive = httpx.get(f"{node.url}/healthz", timeout=3).json()["status"] == "alive"
    ready = httpx.get(f"{node.url}/readyz", timeout=5).status_code == 200
    metrics = httpx.get(f"{node.url}/metrics", timeout=3)
    return alive and ready and metrics.status_code == 200 and "# TYPE" in metrics.text


def test_web_servers_and_workers_answer_health_and_metrics(topology: Topology) -> None:
    nodes = topology.of_kind("web") + topology.of_kind("worker")
    assert nodes, "the topology declares no web server or worker"
    for node in nodes:
        # Other suites restart these nodes; a restart in flight is not a failure.
        eventually(
            partial(answers_health_and_metrics, node),
            within=60,
            what=f"{node.name} answers /healthz, /readyz and /metrics",
        )
