"""The native lab's platform: every node ready, the Patroni clusters in the expected shape."""

from __future__ import annotations

import json
import subprocess

import httpx
import psycopg
import pytest
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Cluster, Node, Topology

STATUS_FIELDS = {"name", "kind", "role", "address", "port", "state", "ready", "lag_bytes", "pid"}


def status_json(topology: Topology) -> list[dict[str, object]]:
    binary = topology.lab.venv / "bin" / "reviewlab"
    out = subprocess.run(
        [str(binary), "status", "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    return list(json.loads(out.stdout))


def test_every_node_is_ready_in_status_json(topology: Topology) -> None:
    entries = status_json(topology)
    assert {e["name"] for e in entries} == set(topology.nodes)
    for entry in entries:
        assert set(entry) >= STATUS_FIELDS, entry
        node = topology.nodes[str(entry["name"])]
        assert (entry["address"], entry["port"], entry["kind"]) == (
            node.address,
            node.port,
            node.kind,
        )
        assert entry["ready"] is True, entry
        assert entry["state"] == "running", entry
        assert isinstance(entry["pid"], int) and entry["pid"] > 0, entry


def members(cluster: Cluster) -> list[dict[str, object]]:
    for member in cluster.members:
        try:
            reply = httpx.get(f"http://{member.address}:{member.rest_port}/cluster", timeout=3)
        except httpx.HTTPError:
            continue
        return list(reply.json()["members"])
    raise AssertionError(f"no Patroni member of {cluster.name} answered")


def superuser(topology: Topology, node: Node) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=node.address,
        port=node.port,
        dbname="postgres",
        user="postgres",
        password=lab_secrets.load(topology).postgres_password,
        connect_timeout=3,
        autocommit=True,
    )


@pytest.mark.parametrize("cluster_name", ["catalog", "reviews-0", "reviews-1"])
def test_each_cluster_has_one_primary_and_streaming_replicas(
    topology: Topology, cluster_name: str
) -> None:
    cluster = topology.clusters[cluster_name]
    expected_replicas = len(cluster.members) - 1
    assert expected_replicas == (2 if cluster.purpose == "catalog" else 1)
    seen = members(cluster)
    leaders = [m for m in seen if m["role"] == "leader"]
    replicas = [m for m in seen if m["role"] in ("replica", "sync_standby")]
    assert len(leaders) == 1, seen
    assert len(replicas) == expected_replicas, seen
    assert all(m["state"] == "streaming" for m in replicas), seen
    # synchronous_mode: Patroni keeps one replica synchronous.
    assert any(m["role"] == "sync_standby" for m in replicas), seen

    by_name = {m.name: m for m in cluster.members}
    primary = by_name[str(leaders[0]["name"])]
    with superuser(topology, primary) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        streaming = conn.execute(
            "SELECT application_name, state FROM pg_stat_replication"
        ).fetchall()
    # Patroni names each replication connection after the replica's member name.
    assert {str(name) for name, _ in streaming} == {str(m["name"]) for m in replicas}
    assert {state for _, state in streaming} == {"streaming"}
    for m in replicas:
        with superuser(topology, by_name[str(m["name"])]) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


def test_web_servers_and_workers_answer_health_and_metrics(topology: Topology) -> None:
    for node in topology.of_kind("web") + topology.of_kind("worker"):
        assert httpx.get(f"{node.url}/healthz", timeout=3).json()["status"] == "alive"
        assert httpx.get(f"{node.url}/readyz", timeout=5).status_code == 200
        metrics = httpx.get(f"{node.url}/metrics", timeout=3)
        assert metrics.status_code == 200
        assert "# TYPE" in metrics.text
