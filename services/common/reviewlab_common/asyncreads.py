"""Reads from a Patroni cluster on the event loop: the async side of a ClusterRouter.

A sync route costs a web server a threadpool hop per request, and psycopg's thread pool a
lock handoff per connection: measured here, a one-query read on a sync route took 0.78 ms of
CPU (0.33 of it in the kernel, waking threads) against 0.40 ms on an async route with
psycopg's async pool. The hot reads run here instead; writes stay on the sync router.

The routing is the sync router's, shared rather than copied: the same replica list from the
DNS, the same ejector (a member one side ejects is out for both), the same one-round-trip
check of the reader's last write, and the primary when no replica can serve. One difference:
a reader with no write to catch up on (no LSN) is served without the check.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from reviewlab_common.db import (
    LIVE_MEMBER_ERRORS,
    READ_RETRIES,
    REPLICA_CHECK,
    SERVED_WITHIN_S,
    ClusterRouter,
    DatabaseUnavailable,
    MemberFailed,
    ReadSource,
    replay_check_passed,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
Conn = psycopg.AsyncConnection[Any]
Work = Callable[[Conn], Awaitable[T]]


async def _drop_broken(pool: AsyncConnectionPool[Any]) -> None:
    """Discard the pool's idle connections that no longer answer (after a node restart)."""
    try:
        await pool.check()
    except Exception as exc:  # a failed check must not hide the original error
        log.info("checking pool %s: %s", pool.name, exc)


def _async_twin(pool: ConnectionPool[Any]) -> AsyncConnectionPool[Any]:
    """An async pool with POOL's connection string, sizes and waits. Every read is one
    autocommit statement or pipeline (see ClusterRouter._read_on_replica): no BEGIN/ROLLBACK
    round trips, on the primary too, whose sync pool runs transactions for the writes."""
    return AsyncConnectionPool(
        pool.conninfo,
        min_size=pool.min_size,
        max_size=pool.max_size,
        kwargs={"autocommit": True},
        open=False,
        name=f"{pool.name}-async",
        timeout=pool.timeout,
        reconnect_timeout=pool.reconnect_timeout,
    )


class AsyncReads:
    """Read-only async connections to ROUTER's cluster, routed as ROUTER routes reads."""

    def __init__(self, router: ClusterRouter) -> None:
        self.router = router
        self.primary_pool = _async_twin(router.primary_pool)
        self.member_pools = {name: _async_twin(p) for name, p in router.member_pools.items()}

    async def open(self) -> None:
        """Open the pools (on the running event loop: they start tasks of their own)."""
        await self.primary_pool.open(wait=False)
        for pool in self.member_pools.values():
            await pool.open(wait=False)

    async def close(self) -> None:
        await self.primary_pool.close()
        for pool in self.member_pools.values():
            await pool.close()

    async def _candidates(self) -> list[str]:
        """Replicas in rotation now. The DNS lookup and a probe of an ejected member block,
        so they run in a thread; the usual case (a fresh list, nobody ejected) does not."""
        names = self.router.cached_replica_names()
        if names is None:
            names = await asyncio.to_thread(self.router.replica_names)
        ejector = self.router.ejector
        if ejector.ejected_since():
            return await asyncio.to_thread(ejector.admitted, names)
        return ejector.admitted(names)

    async def read(self, work: Work[T], *, min_lsn: str | None = None) -> tuple[T, ReadSource]:
        """WORK on a replica in rotation that has replayed MIN_LSN, else on the primary
        (ClusterRouter.read on the event loop)."""
        candidates = await self._candidates()
        random.shuffle(candidates)
        failures = 0
        for name in candidates:
            try:
                served = await self._read_on_replica(name, work, min_lsn)
            except MemberFailed as exc:
                backoff = self.router.ejector.eject(name)
                log.warning("replica %s ejected for %.1f s: %s", name, backoff, exc)
                failures += 1
                if failures > READ_RETRIES:
                    break
                continue
            if served is not None:
                self.router.ejector.served(name)
                return served
        try:
            return await self._read_on_primary(work)
        except DatabaseUnavailable:
            # In a failover, between the promotion and the DNS naming the new primary, the
            # replica list has dropped the promoted member and the primary's name still
            # points at the lost one: ask the members themselves.
            served = await self._read_on_any_member(work, min_lsn)
            if served is None:
                raise
            return served

    async def _read_on_any_member(
        self, work: Work[T], min_lsn: str | None
    ) -> tuple[T, ReadSource] | None:
        """WORK on a member that answers and may serve it: a primary (one just promoted has
        every acknowledged write), or a replica that has replayed MIN_LSN."""
        cluster = self.router.cluster.name
        for name, pool in self.member_pools.items():
            try:
                async with pool.connection() as conn, conn.pipeline():
                    check = await conn.execute(REPLICA_CHECK, (min_lsn, min_lsn))
                    result = await work(conn)
                    row = await check.fetchone()
            except (psycopg.Error, PoolTimeout) as exc:
                log.info("member %s cannot serve a read while the primary is away: %s", name, exc)
                continue
            if row is not None and not row[0]:
                return result, ReadSource(cluster, "primary", name)
            if replay_check_passed(row):
                return result, ReadSource(cluster, "replica", name)
        return None

    async def _read_on_primary(self, work: Work[T]) -> tuple[T, ReadSource]:
        cluster = self.router.cluster.name
        try:
            async with self.primary_pool.connection() as conn:
                result = await work(conn)
                address = conn.info.host
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if isinstance(exc, psycopg.OperationalError):
                await _drop_broken(self.primary_pool)  # the primary died or moved
            raise DatabaseUnavailable(f"{cluster} primary unavailable: {exc}") from exc
        return result, ReadSource(cluster, "primary", self.router.member_at(address))

    async def _read_on_replica(
        self, name: str, work: Work[T], min_lsn: str | None
    ) -> tuple[T, ReadSource] | None:
        """WORK's result on replica NAME; None if NAME is not a replica or is behind MIN_LSN."""
        pool = self.member_pools[name]
        try:
            async with pool.connection() as conn:
                if min_lsn is None:
                    # Nothing to catch up on: WORK alone, one statement, no pipeline (which
                    # costs 0.15 ms of CPU more a read). A member promoted since the replica
                    # list was read serves it too, fresher; the list drops it within seconds.
                    result = await work(conn)
                    return result, ReadSource(self.router.cluster.name, "replica", name)
                async with conn.pipeline():
                    check = await conn.execute(REPLICA_CHECK, (min_lsn, min_lsn))
                    result = await work(conn)
                    row = await check.fetchone()
                if not replay_check_passed(row):
                    return None  # not a replica any more, or behind the reader's last write
                return result, ReadSource(self.router.cluster.name, "replica", name)
        except PoolTimeout as exc:
            # Busy, or down? As on the sync side: only a member that does not answer is down.
            if self.router.ejector.serving(name, SERVED_WITHIN_S) or await asyncio.to_thread(
                self.router.member_answers, name
            ):
                log.info("replica %s busy for a read: %s", name, exc)
                return None
            raise MemberFailed(f"no connection in {pool.timeout:.3f} s: {exc}") from exc
        except psycopg.OperationalError as exc:
            if isinstance(exc, LIVE_MEMBER_ERRORS):
                log.info("replica %s timed out a read: %s", name, exc)
                return None
            await _drop_broken(pool)
            raise MemberFailed(str(exc)) from exc
