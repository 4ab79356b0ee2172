"""Routing to a Patroni cluster: writes to the primary, reads to replicas (read-your-writes)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from reviewlab_common import dns as lab_dns
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.fence import BUCKET_CLOSED_SQLSTATE
from reviewlab_common.outliers import Ejector, accepts_connections
from reviewlab_common.topology import Cluster, Node, Topology

log = logging.getLogger(__name__)
T = TypeVar("T")
DNS_REFRESH_S = 2.0
# How long a request waits for a primary connection. While a primary is lost (until Patroni
# promotes a replica, about ttl seconds) no wait helps: answer 503 quickly instead.
PRIMARY_WAIT_S = 1.0
# The second try of a write waits less: it is for a pooled connection the failover broke.
PRIMARY_RETRY_WAIT_S = 0.25
# A read that a member failed is tried once more, on another replica in rotation or the primary.
READ_RETRIES = 1


class DatabaseUnavailable(RuntimeError):
    """No member of the cluster could serve the request in time."""


class MemberFailed(RuntimeError):
    """A member did not give a working connection in time: it leaves the read rotation."""


class CommitOutcomeUnknown(DatabaseUnavailable):
    """The primary was lost while committing: the write may or may not have been kept."""


class BucketClosed(DatabaseUnavailable):
    """The shard's fence refused the write: its bucket is moving or has moved. Nothing was
    written; the caller may follow the shard map and try again."""


# Is a member a replica, and has it replayed the reader's last write (a NULL LSN: no write)?
REPLICA_CHECK = (
    "SELECT pg_is_in_recovery(), %s::pg_lsn IS NULL OR pg_last_wal_replay_lsn() >= %s::pg_lsn"
)

# A member that served a read this recently is busy when its pool has no connection, not down.
SERVED_WITHIN_S = 1.0
# Errors of a live member (its statement timeout; a statement before this one in the pipeline
# failed): the read goes elsewhere and the member stays in rotation.
LIVE_MEMBER_ERRORS = (pg_errors.QueryCanceled, pg_errors.PipelineAborted)


def replay_check_passed(row: tuple[Any, ...] | None) -> bool:
    """REPLICA_CHECK's answer: a replica, and at or past the reader's last write."""
    return row is not None and bool(row[0]) and bool(row[1])


# A position no replica ever reaches: a token carrying it sends that shard's reads to the primary.
PRIMARY_ONLY_LSN = "FFFFFFFF/FFFFFFFF"


@dataclass(frozen=True)
class ReadSource:
    """Where a read was served: e.g. reviews-1/replica (reviews-1b)."""

    cluster: str
    role: str
    node: str

    @property
    def header(self) -> str:
        return f"{self.cluster}/{self.role}"


def conninfo(
    hosts: list[str],
    port: int,
    *,
    dbname: str,
    user: str,
    password: str,
    app: str,
    session: str,
    timeout: int = 2,
) -> str:
    return psycopg.conninfo.make_conninfo(
        host=",".join(hosts),
        port=",".join([str(port)] * len(hosts)),
        dbname=dbname,
        user=user,
        password=password,
        application_name=app,
        connect_timeout=str(timeout),
        target_session_attrs=session,
        options="-c statement_timeout=5000",
    )


# Each cluster purpose has one database; the services connect as one unprivileged role.
DATABASE_OF_PURPOSE = {"catalog": "shop", "shard": "reviews"}
APP_USER = "app"


def database_of(cluster: Cluster) -> str:
    return DATABASE_OF_PURPOSE[cluster.purpose]


def cluster_conninfo(
    cluster: Cluster,
    *,
    user: str,
    password: str,
    app: str,
    session: str,
    dbname: str | None = None,
    timeout: int = 2,
) -> str:
    """A connection string listing every member of CLUSTER; libpq picks by SESSION."""
    return conninfo(
        [m.address for m in cluster.members],
        cluster.members[0].port,
        dbname=dbname or database_of(cluster),
        user=user,
        password=password,
        app=app,
        session=session,
        timeout=timeout,
    )


def app_router(
    topology: Topology,
    cluster: Cluster,
    *,
    app: str,
    max_size: int = 8,
    secrets: lab_secrets.LabSecrets | None = None,
) -> ClusterRouter:
    """A router to CLUSTER's database as the services' role (SECRETS: loaded once, or read)."""
    return ClusterRouter(
        topology,
        cluster,
        dbname=database_of(cluster),
        user=APP_USER,
        password=(secrets or lab_secrets.load(topology)).app_password,
        app=app,
        max_size=max_size,
    )


def _drop_broken(pool: ConnectionPool[Any]) -> None:
    """Discard the pool's idle connections that no longer answer (after a node restart)."""
    try:
        pool.check()
    except Exception as exc:  # a failed check must not hide the original error
        log.info("checking pool %s: %s", pool.name, exc)


class ClusterRouter:
    """Connections to one cluster; the member list comes from the private DNS."""

    def __init__(
        self,
        topology: Topology,
        cluster: Cluster,
        *,
        dbname: str,
        user: str,
        password: str,
        app: str,
        max_size: int = 8,
    ) -> None:
        self.topology = topology
        self.cluster = cluster
        self._members = {m.name: m for m in cluster.members}
        self._by_address = {m.address: m for m in cluster.members}
        credentials: dict[str, Any] = {
            "dbname": dbname,
            "user": user,
            "password": password,
            "app": app,
        }
        port = cluster.members[0].port
        # Every member's name is looked up in the DNS; libpq then finds the writable one,
        # so a stale primary record right after a failover costs one extra connect, not an error.
        addresses = [self._resolve_member(m) for m in cluster.members]
        self.primary_pool = ConnectionPool(
            conninfo(addresses, port, session="read-write", **credentials),
            min_size=1,
            max_size=max_size,
            open=False,
            name=f"{cluster.name}-primary",
            timeout=PRIMARY_WAIT_S,
            reconnect_timeout=0,
        )
        # libpq's connect_timeout cannot go below 2 s, so a read does not wait for libpq: it
        # waits for the pool only as long as a member on this network takes to answer, then
        # asks the member itself (a probe bounded by the same time) whether it is down.
        self.member_wait_s = topology.lab.runtime.connect_timeout_s
        self.member_pools = {
            m.name: ConnectionPool(
                conninfo([m.address], m.port, session="any", **credentials),
                min_size=0,
                max_size=max_size,
                # Reads run without BEGIN/ROLLBACK: see _read_on_replica.
                kwargs={"autocommit": True},
                open=False,
                name=f"{cluster.name}-{m.name}",
                timeout=self.member_wait_s,
                reconnect_timeout=0,
            )
            for m in cluster.members
        }
        self.ejector = Ejector(self.member_answers)
        self._replicas: list[str] = []
        self._replicas_at = 0.0
        self._lock = threading.Lock()

    def member_answers(self, name: str) -> bool:
        """Whether member NAME answers a connect now (bounded by the runtime's connect time)."""
        member = self._members[name]
        return accepts_connections(member.address, member.port, self.member_wait_s)

    def _resolve_member(self, member: Node) -> str:
        try:
            found = lab_dns.lookup(self.topology, member.name)
        except lab_dns.DnsError:
            found = []
        return found[0] if found else member.address

    def open(self) -> None:
        self.primary_pool.open(wait=False)
        for pool in self.member_pools.values():
            pool.open(wait=False)

    def close(self) -> None:
        self.primary_pool.close()
        for pool in self.member_pools.values():
            pool.close()

    def member_at(self, address: str) -> str:
        """The name of the member at ADDRESS (the address itself if none is)."""
        member = self._by_address.get(address)
        return member.name if member else address

    def cached_replica_names(self) -> list[str] | None:
        """The replica list if it is fresh enough to use without asking the DNS, else None."""
        with self._lock:
            if time.monotonic() - self._replicas_at < DNS_REFRESH_S:
                return self._replicas
        return None

    def replica_names(self) -> list[str]:
        """Members the DNS lists under replicas.<cluster>, refreshed every few seconds."""
        now = time.monotonic()
        with self._lock:
            if now - self._replicas_at < DNS_REFRESH_S:
                return self._replicas
        try:
            addresses = lab_dns.lookup(self.topology, f"replicas.{self.cluster.name}", timeout=1.0)
            names = [self._by_address[a].name for a in addresses if a in self._by_address]
        except lab_dns.DnsError:
            names = self._replicas
        with self._lock:
            self._replicas, self._replicas_at = names, now
        return names

    @contextmanager
    def primary(self, wait: float = PRIMARY_WAIT_S) -> Iterator[psycopg.Connection[Any]]:
        """A connection to the primary, in a transaction committed on clean exit."""
        try:
            with self.primary_pool.connection(timeout=wait) as conn:
                try:
                    yield conn
                except pg_errors.ReadOnlySqlTransaction:
                    # This member was demoted after the pool connected: drop the connection.
                    conn.close()
                    raise
                except psycopg.DatabaseError as exc:
                    if exc.sqlstate == BUCKET_CLOSED_SQLSTATE:
                        raise BucketClosed(f"{self.cluster.name}: {exc}") from exc
                    raise
        except (psycopg.OperationalError, pg_errors.ReadOnlySqlTransaction, PoolTimeout) as exc:
            if isinstance(exc, psycopg.OperationalError):
                # The primary died or moved: every idle connection to it is broken too.
                _drop_broken(self.primary_pool)
            raise DatabaseUnavailable(f"{self.cluster.name} primary unavailable: {exc}") from exc

    def write(self, work: Callable[[psycopg.Connection[Any]], T]) -> tuple[T, str]:
        """Run WORK in one transaction on the primary; return its result and a commit LSN.

        A retry repeats only work that certainly did not commit. A failure while connecting
        or inside WORK rolls the transaction back, so WORK runs once more (a failover may
        have moved the primary). A connection lost during COMMIT leaves the outcome unknown:
        that raises CommitOutcomeUnknown and nothing runs again.

        The LSN is for read-your-writes, so it must be at or past the commit record.
        pg_current_wal_lsn() read after COMMIT is; one read inside the transaction would be
        before the commit record and could send a reader to a replica without the write.
        Once committed, nothing can undo the write, so a failure to read the LSN never
        reruns WORK or reports a failure: the LSN is read on a new primary connection (any
        primary holding the commit is past it), and failing that, PRIMARY_ONLY_LSN.
        """
        last: DatabaseUnavailable | None = None
        for wait in (PRIMARY_WAIT_S, PRIMARY_RETRY_WAIT_S):
            committing = committed = False
            try:
                with self.primary(wait) as conn:
                    with conn.transaction():
                        result = work(conn)
                        committing = True
                    committed = True
                    lsn = self._current_lsn(conn)
            except BucketClosed:
                raise  # refused before COMMIT: nothing to retry here, the map decides where
            except DatabaseUnavailable as exc:
                if committed:
                    lsn = None
                elif committing:
                    raise CommitOutcomeUnknown(
                        f"{self.cluster.name} primary was lost while committing; "
                        f"the write may have been kept: {exc}"
                    ) from exc
                else:
                    last = exc
                    continue
            return result, lsn or self._primary_lsn()
        raise DatabaseUnavailable(str(last))

    @staticmethod
    def _current_lsn(conn: psycopg.Connection[Any]) -> str | None:
        try:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        except psycopg.Error as exc:
            log.info("reading the LSN after a commit: %s", exc)
            return None
        return str(row[0]) if row else None

    def _primary_lsn(self) -> str:
        """The primary's current LSN on a new connection, else a token only the primary meets."""
        try:
            with self.primary() as conn:
                lsn = self._current_lsn(conn)
        except DatabaseUnavailable as exc:
            log.warning("no LSN after a commit on %s: %s", self.cluster.name, exc)
            lsn = None
        return lsn or PRIMARY_ONLY_LSN

    def read(
        self, work: Callable[[psycopg.Connection[Any]], T], *, min_lsn: str | None = None
    ) -> tuple[T, ReadSource]:
        """Run WORK on a replica in rotation that has replayed MIN_LSN, else on the primary.

        A member that fails the read is ejected and the read tried once more: on another
        replica in rotation, else on the primary.
        """
        candidates = self.ejector.admitted(self.replica_names())
        random.shuffle(candidates)
        failures = 0
        for name in candidates:
            try:
                served = self._read_on_replica(name, work, min_lsn)
            except MemberFailed as exc:
                backoff = self.ejector.eject(name)
                log.warning("replica %s ejected for %.1f s: %s", name, backoff, exc)
                failures += 1
                if failures > READ_RETRIES:
                    break
                continue
            if served is not None:
                self.ejector.served(name)
                return served
        with self.primary() as conn:
            result = work(conn)
            addr = conn.info.host
        return result, ReadSource(self.cluster.name, "primary", self.member_at(addr))

    def _read_on_replica(
        self, name: str, work: Callable[[psycopg.Connection[Any]], T], min_lsn: str | None
    ) -> tuple[T, ReadSource] | None:
        """WORK's result on replica NAME; None if NAME is not a replica or is behind MIN_LSN."""
        pool = self.member_pools[name]
        try:
            with pool.connection(timeout=self.member_wait_s) as conn:
                # One round trip instead of four (BEGIN, check, WORK, ROLLBACK): the check
                # and WORK's statements leave together in one pipeline on an autocommit
                # connection, and WORK's result is dropped when the check says no. Replay
                # only moves forward, so WORK sees at least what the check saw.
                with conn.pipeline():
                    check = conn.execute(REPLICA_CHECK, (min_lsn, min_lsn))
                    result = work(conn)
                    row = check.fetchone()
                if not replay_check_passed(row):
                    return None  # not a replica any more, or behind the reader's last write
                return result, ReadSource(self.cluster.name, "replica", name)
        except PoolTimeout as exc:
            # Every pooled connection busy, or no new one yet: only a member that does not
            # answer now is down; a busy one costs this read a retry elsewhere, no ejection.
            # A dead member breaks its pooled connections (OperationalError below), so one
            # that served a read this last second is busy, not down.
            if self.ejector.serving(name, SERVED_WITHIN_S) or self.member_answers(name):
                log.info("replica %s busy for a read: %s", name, exc)
                return None
            raise MemberFailed(f"no connection in {self.member_wait_s:.3f} s: {exc}") from exc
        except psycopg.OperationalError as exc:
            if isinstance(exc, LIVE_MEMBER_ERRORS):
                # PipelineAborted: a statement before it in the pipeline failed on a live member.
                log.info("replica %s timed out a read: %s", name, exc)
                return None  # a live member's statement timeout: try elsewhere, no ejection
            _drop_broken(pool)
            raise MemberFailed(str(exc)) from exc

    def ping(self, wait: float = PRIMARY_WAIT_S) -> str | None:
        """None if the primary answers (a connection within WAIT s), else what went wrong.

        A pooled connection that a restart of the primary broke fails at once and is dropped;
        that is no fault of the cluster, so the check asks once more on a fresh connection.
        """
        for attempt in (wait, PRIMARY_RETRY_WAIT_S):
            try:
                with self.primary(attempt) as conn:
                    conn.execute("SELECT 1")
            except DatabaseUnavailable as exc:
                broken = isinstance(exc.__cause__, psycopg.OperationalError)
                if not broken or isinstance(exc.__cause__, PoolTimeout):
                    return str(exc)  # no connection in time: asking again only waits longer
                last = str(exc)
                continue
            return None
        return last
