"""Schema migrations on the real clusters: scratch upgrades and downgrades, every cluster at
head, and a shard that was down during `reviewlab db migrate` caught up afterwards."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from reviewlab_common import migrations, tables
from reviewlab_common.topology import Cluster, Topology
from reviewlab_lab import dbmigrate, install
from sqlalchemy import inspect

from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes

# The tables each kind's baseline makes: a downgrade to base removes them all.
BASELINE_TABLES = {
    "catalog": {"users", "products", "idempotency_keys"},
    "shard": {"reviews", "outbox"},
}


def reviewlab_db(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(install.current().bin / "reviewlab"), "db", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cluster_of(topology: Topology, purpose: str) -> Cluster:
    return next(c for c in topology.clusters.values() if c.purpose == purpose)


@pytest.fixture()
def scratch(topology: Topology, request: pytest.FixtureRequest) -> Iterator[tuple[Cluster, str]]:
    """A new database on a primary of the kind asked for, dropped after the test."""
    cluster = cluster_of(topology, request.param)
    name = f"scratch_{uuid.uuid4().hex[:12]}"
    dbmigrate.ensure_database(topology, cluster, name)
    try:
        yield cluster, name
    finally:
        with dbmigrate.superuser_connection(topology, cluster, "postgres") as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def table_names(topology: Topology, cluster: Cluster, dbname: str) -> set[str]:
    with dbmigrate.as_app(topology, cluster, dbname) as conn:
        return set(inspect(conn).get_table_names())


@pytest.mark.parametrize("scratch", ["catalog", "shard"], indirect=True)
def test_each_revision_upgrades_and_downgrades_on_a_scratch_database(
    topology: Topology, scratch: tuple[Cluster, str]
) -> None:
    cluster, dbname = scratch
    purpose = cluster.purpose
    chain = migrations.revisions(purpose)
    seen: list[set[str]] = []
    for revision in chain:
        with dbmigrate.as_app(topology, cluster, dbname) as conn:
            migrations.upgrade(conn, purpose, revision)
            assert migrations.current(conn, purpose) == revision
        seen.append(table_names(topology, cluster, dbname))
    assert BASELINE_TABLES[purpose] <= seen[0]
    # Down one revision at a time: each leaves exactly the tables its predecessor had.
    for index in range(len(chain) - 1, -1, -1):
        target = chain[index - 1] if index else "base"
        with dbmigrate.as_app(topology, cluster, dbname) as conn:
            migrations.downgrade(conn, purpose, target)
            assert migrations.current(conn, purpose) == (chain[index - 1] if index else None)
        assert table_names(topology, cluster, dbname) == (
            seen[index - 1] if index else {migrations.VERSION_TABLES[purpose]}
        )
    with dbmigrate.as_app(topology, cluster, dbname) as conn:
        migrations.upgrade(conn, purpose)
        assert migrations.current(conn, purpose) == migrations.head(purpose)
        # The Core tables the services query are exactly what the migrations made.
        inspector = inspect(conn)
        for table in tables.METADATA[purpose].tables.values():
            migrated = {c["name"] for c in inspector.get_columns(table.name)}
            assert migrated == set(table.columns.keys()), table.name


def test_every_cluster_is_at_its_kinds_head(topology: Topology) -> None:
    done = reviewlab_db("status")
    assert done.returncode == 0, done.stdout + done.stderr
    for cluster in topology.clusters.values():
        schema = dbmigrate.cluster_status(topology, cluster)
        assert schema.revision == migrations.head(cluster.purpose), schema.line()
        assert f"{cluster.name} ({cluster.purpose})" in done.stdout


def test_a_shard_down_during_migrate_is_reported_and_caught_up(
    topology: Topology, nodes: Nodes
) -> None:
    shard = topology.clusters["reviews-1"]
    chain = migrations.revisions("shard")
    # The shard missed the newest revision: the others are at head, it is one behind.
    behind = chain[-2] if len(chain) > 1 else "base"
    with dbmigrate.as_app(topology, shard) as conn:
        migrations.stamp(conn, "shard", behind)
    with dbmigrate.superuser_connection(topology, shard, "postgres") as conn:
        primary = conn.info.host
    members = sorted(shard.members, key=lambda m: m.address == primary)
    try:
        for member in members:  # replicas first: no failover while the shard goes down
            nodes.stop(member.name)
        done = reviewlab_db("migrate")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "reviews-1 (shard)      not reached: primary unreachable" in done.stdout
        assert "Run `reviewlab db migrate` again" in done.stderr
        for other in topology.clusters.values():
            if other is not shard:
                assert f"{other.name} ({other.purpose})" in done.stdout
                assert dbmigrate.cluster_status(topology, other).at_head
    finally:
        # All at once, the old primary first: a replica alone cannot become the primary.
        for member in reversed(members):
            nodes.start(member.name, wait_ready=False)
        for member in members:
            nodes.wait_ready(member.name, within=90)
    eventually(
        lambda: reviewlab_db("migrate").returncode == 0, within=60, what="reviews-1 migrated"
    )
    assert dbmigrate.cluster_status(topology, shard).at_head
