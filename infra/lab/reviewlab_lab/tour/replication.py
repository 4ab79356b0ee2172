"""Step replication: one write on the catalog's primary, seen on every replica, lag measured."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from reviewlab_common import db
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Node, Topology

from reviewlab_lab import dnsrecords, users
from reviewlab_lab.chaos import cleanup
from reviewlab_lab.tour.step import ClaimFailed, Evidence, Step, TourLab, require

# How long a replica may take to show the write before the step says replication is broken.
VISIBLE_WITHIN_S = 5.0
# The demo user whose scratch rows the lab's own load and tours write (never a shopper's).
SCRATCH_USER = "loadtest"
FIND = "SELECT 1 FROM idempotency_keys WHERE user_id = %s AND key = %s"
# An Idempotency-Key row: the catalog's smallest write, invisible to shoppers.
INSERT = (
    "INSERT INTO idempotency_keys (user_id, key, request_hash, review_id, product_id) "
    "VALUES (%s, %s, 'tour', 0, 0)"
)
LAGS = (
    "SELECT application_name, sync_state, "
    "extract(epoch FROM write_lag) * 1000, extract(epoch FROM replay_lag) * 1000 "
    "FROM pg_stat_replication"
)


@dataclass(frozen=True)
class Replica:
    name: str
    role: str  # Patroni's: sync_standby or replica
    visible_ms: float | None  # after the primary acknowledged the commit; None: never seen
    polls: int
    replay_lag_ms: float | None  # pg_stat_replication, as the primary measured it


@dataclass
class ReplicationEvidence(Evidence):
    primary: str = ""
    replicas: list[Replica] = field(default_factory=list)
    refused_on: str = ""
    refused_sqlstate: str = ""


def connect(
    topology: Topology, node: Node, *, superuser: bool = False, dbname: str | None = None
) -> psycopg.Connection[Any]:
    """An autocommit connection to one Postgres node (each statement commits on its own): as
    the services' role to its cluster's database, or as the superuser (to DBNAME, else
    `postgres`) for what only it may see."""
    secrets = lab_secrets.load(topology)
    cluster = topology.clusters[node.cluster or ""]
    info = db.conninfo(
        [node.address],
        node.port,
        dbname=dbname or ("postgres" if superuser else db.database_of(cluster)),
        user="postgres" if superuser else db.APP_USER,
        password=secrets.postgres_password if superuser else secrets.app_password,
        app="reviewlab-tour",
        session="any",
    )
    return psycopg.connect(info, autocommit=True)


def watch(
    conn: psycopg.Connection[Any], row: tuple[int, str], committed: threading.Event
) -> tuple[float | None, int]:
    """Ask for ROW until it shows: ms from the commit to the first read that showed it (an upper
    bound: the read's own round trip is in it), and how many reads it took."""
    committed.wait(VISIBLE_WITHIN_S)
    start, polls = time.perf_counter(), 0
    while time.perf_counter() - start < VISIBLE_WITHIN_S:
        polls += 1
        if conn.execute(FIND, row).fetchone():
            return (time.perf_counter() - start) * 1000, polls
    return None, polls


def run(lab: TourLab) -> ReplicationEvidence:
    topology = lab.topology
    catalog = topology.catalog
    roles = dnsrecords.cluster_roles(catalog)
    leaders = [name for name, role in roles.items() if role == "leader"]
    if len(leaders) != 1:
        raise ClaimFailed(f"the catalog should have one leader; Patroni says {roles}")
    primary = topology.nodes[leaders[0]]
    others = [topology.nodes[n] for n in roles if n != primary.name]
    if not others:
        raise ClaimFailed(f"the catalog has no replica now; Patroni says {roles}")
    uid = users.user_id(topology, SCRATCH_USER)
    key = f"tour-{uuid.uuid4().hex}"
    lab.undo_later(
        "the tour's row out of the catalog",
        lambda: cleanup.remove_run(topology, body_prefix=key, key_prefix=key, user_id=uid),
    )
    seen = ReplicationEvidence(primary=primary.name)
    with ExitStack() as stack:
        readers = {n.name: stack.enter_context(connect(topology, n)) for n in others}
        writer = stack.enter_context(connect(topology, primary))
        writer.execute("SET synchronous_commit = on")
        committed = threading.Event()
        with ThreadPoolExecutor(max_workers=len(readers)) as pool:
            # Each replica is asked by its own reader, all of them from the moment of the commit.
            watching = {
                name: pool.submit(watch, conn, (uid, key), committed)
                for name, conn in readers.items()
            }
            try:
                writer.execute(INSERT, (uid, key))
            finally:
                committed.set()
            found = {name: job.result() for name, job in watching.items()}
        with connect(topology, primary, superuser=True) as admin:
            lags = {row[0]: row for row in admin.execute(LAGS).fetchall()}
        # A replica refuses writes: only the primary takes them (master-slave).
        target = others[0]
        try:
            readers[target.name].execute(INSERT, (uid, key + "-on-replica"))
        except pg_errors.ReadOnlySqlTransaction as exc:
            seen.refused_on, seen.refused_sqlstate = target.name, exc.sqlstate or ""
            seen.shown.append(f"INSERT on {target.name}: {str(exc).strip()}")
    for node in others:
        lag = lags.get(node.name)
        replay = float(lag[3]) if lag and lag[3] is not None else None
        seen.replicas.append(Replica(node.name, roles[node.name], *found[node.name], replay))
    write_at = f"committed on {primary.name} ({primary.address}), the primary"
    seen.shown.insert(0, f"one row written on {primary.name}; every replica asked until it shows")
    for replica in seen.replicas:
        where = f"{replica.name} ({replica.role}), polled from the machine"
        if replica.visible_ms is not None:
            seen.add(f"shown on {replica.name} within", replica.visible_ms, "ms", where)
        seen.add(f"reads of {replica.name} until then", replica.polls, "", write_at)
        if replica.replay_lag_ms is not None:
            seen.add(
                f"replay lag of {replica.name}",
                replica.replay_lag_ms,
                "ms",
                f"pg_stat_replication on {primary.name}",
            )
    return seen


def check(seen: ReplicationEvidence) -> str:
    require(bool(seen.replicas), "the catalog has no replica to replicate to")
    late = [r.name for r in seen.replicas if r.visible_ms is None]
    require(not late, f"the write never showed on {', '.join(late)} within {VISIBLE_WITHIN_S} s")
    require(
        seen.refused_sqlstate == "25006",
        "a replica should refuse a write (read-only transaction, SQLSTATE 25006); "
        f"{seen.refused_on or 'none'} did not",
    )
    times = ", ".join(f"{r.name} ({r.role}) {r.visible_ms:.1f} ms" for r in seen.replicas)
    return f"written on {seen.primary}, visible on {times}; {seen.refused_on} refused a write"


STEP = Step(
    name="replication",
    title="Master-slave replication",
    concept=(
        "The catalog is one primary (the master) that takes every write, and replicas (the "
        "slaves) that replay its log and serve reads. A replica is a little behind: the lag. "
        "You will write one row on the primary and time how soon each replica shows it."
    ),
    claim=(
        "The row written on the catalog's primary shows on every replica within "
        f"{VISIBLE_WITHIN_S:.0f} s, each one timed; a replica refuses a write of its own."
    ),
    saw=(
        "Replication copies every write to the replicas within milliseconds here, but never "
        "at the same instant: a read on a replica may miss a write just made (the consistency "
        "step shows it). One replica is synchronous: the primary waits for it to hold the write "
        "before it says 'committed', so a failover loses nothing; the other is asynchronous."
    ),
    run=run,
    check=check,
)
