"""Every cluster's schema to its kind's head: the catalog and each review shard, in parallel.

A cluster is migrated on its primary as the superuser, acting as the app role so the app
owns what the migrations create. A cluster whose primary does not answer is reported and
left for the next run; the others do not wait for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from reviewlab_common import migrations
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.db import APP_USER, cluster_conninfo, database_of
from reviewlab_common.topology import Cluster, Topology
from sqlalchemy import Connection, create_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from reviewlab_lab.errors import LabFailed

CONNECT_TIMEOUT_S = 3
# A primary that does not answer, directly or through SQLAlchemy (which wraps the driver's).
UNREACHABLE = (psycopg.OperationalError, sa_exc.OperationalError)


@dataclass(frozen=True)
class ClusterSchema:
    """One cluster's schema revision, before and after a run, or why it was not reached."""

    cluster: str
    purpose: str
    head: str
    before: str | None = None
    revision: str | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def at_head(self) -> bool:
        return self.error is None and self.revision == self.head

    def line(self) -> str:
        name = f"{self.cluster} ({self.purpose})"
        if self.error is not None:
            return f"  {name:<22} not reached: {self.error}"
        state = "at head" if self.at_head else f"behind head {self.head}"
        moved = "" if self.before == self.revision else f" (was {self.before or 'unversioned'})"
        return f"  {name:<22} {self.revision or 'unversioned'}{moved}  {state}"


def superuser_connection(
    topology: Topology, cluster: Cluster, dbname: str, *, autocommit: bool = True
) -> psycopg.Connection[tuple[object, ...]]:
    """A superuser connection to CLUSTER's primary (autocommit unless told otherwise)."""
    info = cluster_conninfo(
        cluster,
        dbname=dbname,
        user="postgres",
        password=lab_secrets.load(topology).postgres_password,
        app="reviewlab-migrate",
        session="read-write",
        timeout=CONNECT_TIMEOUT_S,
    )
    return psycopg.connect(info, autocommit=autocommit)


def ensure_database(topology: Topology, cluster: Cluster, dbname: str | None = None) -> None:
    """The app role (with the lab's password) and the cluster's database, owned by it."""
    password = lab_secrets.load(topology).app_password
    dbname = dbname or database_of(cluster)
    with superuser_connection(topology, cluster, "postgres") as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_USER,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(APP_USER), sql.Literal(password)
            )
        )
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(dbname), sql.Identifier(APP_USER)
                )
            )


@contextmanager
def as_app(topology: Topology, cluster: Cluster, dbname: str | None = None) -> Iterator[Connection]:
    """A SQLAlchemy connection to the primary's DBNAME, in one transaction, as the app role."""
    dbname = dbname or database_of(cluster)
    engine = create_engine(
        "postgresql+psycopg://",
        creator=lambda: superuser_connection(topology, cluster, dbname, autocommit=False),
        poolclass=NullPool,
    )
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL ROLE {APP_USER}")
            yield conn
    finally:
        engine.dispose()


def migrate_cluster(topology: Topology, cluster: Cluster) -> ClusterSchema:
    """CLUSTER's database to its kind's head; its revision before and after."""
    started = time.monotonic()
    head = migrations.head(cluster.purpose)
    try:
        ensure_database(topology, cluster)
        with as_app(topology, cluster) as conn:
            before = migrations.current(conn, cluster.purpose)
            migrations.upgrade(conn, cluster.purpose)
            after = migrations.current(conn, cluster.purpose)
    except UNREACHABLE as exc:
        return ClusterSchema(cluster.name, cluster.purpose, head, error=_unreachable(exc))
    return ClusterSchema(
        cluster.name, cluster.purpose, head, before, after, seconds=time.monotonic() - started
    )


def cluster_status(topology: Topology, cluster: Cluster) -> ClusterSchema:
    """CLUSTER's revision, read on its primary."""
    head = migrations.head(cluster.purpose)
    try:
        with as_app(topology, cluster) as conn:
            revision = migrations.current(conn, cluster.purpose)
    except UNREACHABLE as exc:
        return ClusterSchema(cluster.name, cluster.purpose, head, error=_unreachable(exc))
    return ClusterSchema(cluster.name, cluster.purpose, head, revision, revision)


def _unreachable(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    # libpq lists one failure per host; the first line says enough.
    text = str(cause).strip()
    first = text.splitlines()[0] if text else type(cause).__name__
    return f"primary unreachable ({first})"


def each_cluster(
    topology: Topology,
    action: Callable[[Topology, Cluster], ClusterSchema],
    report: Callable[[ClusterSchema], None],
) -> list[ClusterSchema]:
    """ACTION on every cluster at once; REPORT each as it finishes, catalog first when tied."""
    clusters = list(topology.clusters.values())
    results: list[ClusterSchema] = []
    with ThreadPoolExecutor(max_workers=len(clusters)) as pool:
        futures = [pool.submit(action, topology, cluster) for cluster in clusters]
        for future in as_completed(futures):
            result = future.result()
            report(result)
            results.append(result)
    return sorted(results, key=lambda r: (r.purpose != "catalog", r.cluster))


def migrate_all(topology: Topology, report: Callable[[ClusterSchema], None]) -> list[ClusterSchema]:
    """Every cluster to head, REPORTing each; fail naming the clusters not reached."""
    results = each_cluster(topology, migrate_cluster, report)
    missed = [r.cluster for r in results if r.error is not None]
    if missed:
        raise LabFailed(
            f"{len(missed)} of {len(results)} clusters not migrated ({', '.join(missed)}); "
            "the others are at head. Run `reviewlab db migrate` again once "
            f"{'it is' if len(missed) == 1 else 'they are'} back (`reviewlab status`)."
        )
    return results
