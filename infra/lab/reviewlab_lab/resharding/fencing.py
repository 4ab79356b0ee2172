"""The SQL a move runs on the shards, as the superuser, on each cluster's primary.

Rows the mover writes bypass the fence trigger (`session_replication_role = replica`, which
skips ordinary triggers and foreign-key checks): copies are not app writes, and the target
keeps the bucket closed to app writes until the cutover opens it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql
from reviewlab_common import fence, tables
from reviewlab_common.fence import bucket_of_id_sql

Conn = psycopg.Connection[Any]
REVIEW_COLUMNS = [c.name for c in tables.reviews.c]
VOTE_COLUMNS = [c.name for c in tables.review_votes.c]
_REVIEW_COLS = ", ".join(REVIEW_COLUMNS)
_VOTE_COLS = ", ".join(VOTE_COLUMNS)
OF_REVIEW = bucket_of_id_sql("id")
OF_VOTE = bucket_of_id_sql("review_id")
# A batch of logged changes replayed at once.
REPLAY_BATCH = 500
# How long a fence change may wait for the writes in flight before it gives up.
FENCE_LOCK_TIMEOUT = "2s"


def _in(buckets: Sequence[int]) -> sql.Composable:
    return sql.Literal(sorted(int(b) for b in buckets))


def fence_states(conn: Conn, buckets: Sequence[int]) -> dict[int, str]:
    rows = conn.execute(
        "SELECT bucket, state FROM bucket_fence WHERE bucket = ANY(%s)", (list(buckets),)
    ).fetchall()
    return {int(b): str(s) for b, s in rows}


def set_fence(
    conn: Conn, buckets: Sequence[int], state: str, *, lease_s: float | None = None
) -> None:
    """BUCKETS to STATE on this shard, once every write in flight to them has committed."""
    if state not in fence.STATES:
        raise ValueError(f"unknown fence state {state!r}")
    with conn.transaction():
        conn.execute(f"SET LOCAL lock_timeout = '{FENCE_LOCK_TIMEOUT}'")
        for bucket in sorted(buckets):
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (fence.LOCK_CLASS, bucket))
        conn.execute(
            "UPDATE bucket_fence SET state = %s, lease_until = CASE WHEN %s::float8 IS NULL "
            "THEN NULL ELSE clock_timestamp() + make_interval(secs => %s::float8) END "
            "WHERE bucket = ANY(%s)",
            (state, lease_s, lease_s, sorted(buckets)),
        )


def _bypassing_fence(conn: Conn) -> None:
    conn.execute("SET LOCAL session_replication_role = replica")


def delete_copies(conn: Conn, buckets: Sequence[int]) -> int:
    """Every row of BUCKETS on this shard (and its logged changes); how many reviews."""
    with conn.transaction():
        _bypassing_fence(conn)
        conn.execute(
            sql.SQL("DELETE FROM review_votes WHERE " + OF_VOTE + " = ANY({})").format(_in(buckets))
        )
        gone = conn.execute(
            sql.SQL("DELETE FROM reviews WHERE " + OF_REVIEW + " = ANY({})").format(_in(buckets))
        ).rowcount
        conn.execute("DELETE FROM bucket_changes WHERE bucket = ANY(%s)", (sorted(buckets),))
    return gone


def forget_changes(conn: Conn, buckets: Sequence[int]) -> None:
    conn.execute("DELETE FROM bucket_changes WHERE bucket = ANY(%s)", (sorted(buckets),))


def _pipe(source: Conn, target: Conn, out: sql.Composed, into: str) -> None:
    with source.cursor().copy(out) as reading, target.cursor().copy(into) as writing:
        for chunk in reading:
            writing.write(chunk)


def copy_buckets(source: Conn, target: Conn, buckets: Sequence[int]) -> int:
    """Every row of BUCKETS from SOURCE to TARGET (whose copies are replaced); rows copied."""
    reviews_out = sql.SQL(
        "COPY (SELECT " + _REVIEW_COLS + " FROM reviews WHERE " + OF_REVIEW + " = ANY({})) "
        "TO STDOUT (FORMAT binary)"
    ).format(_in(buckets))
    votes_out = sql.SQL(
        "COPY (SELECT " + _VOTE_COLS + " FROM review_votes WHERE " + OF_VOTE + " = ANY({})) "
        "TO STDOUT (FORMAT binary)"
    ).format(_in(buckets))
    with target.transaction():
        _bypassing_fence(target)
        target.execute(
            sql.SQL("DELETE FROM review_votes WHERE " + OF_VOTE + " = ANY({})").format(_in(buckets))
        )
        target.execute(
            sql.SQL("DELETE FROM reviews WHERE " + OF_REVIEW + " = ANY({})").format(_in(buckets))
        )
        _pipe(
            source, target, reviews_out, f"COPY reviews ({_REVIEW_COLS}) FROM STDIN (FORMAT binary)"
        )
        _pipe(
            source,
            target,
            votes_out,
            f"COPY review_votes ({_VOTE_COLS}) FROM STDIN (FORMAT binary)",
        )
        row = target.execute(
            sql.SQL("SELECT count(*) FROM reviews WHERE " + OF_REVIEW + " = ANY({})").format(
                _in(buckets)
            )
        ).fetchone()
    return int(row[0]) if row else 0


def pending_changes(conn: Conn, buckets: Sequence[int]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM bucket_changes WHERE bucket = ANY(%s)", (sorted(buckets),)
    ).fetchone()
    return int(row[0]) if row else 0


def replay_changes(source: Conn, target: Conn, buckets: Sequence[int]) -> int:
    """The reviews SOURCE logged for BUCKETS, as SOURCE holds them now, onto TARGET; then
    their log entries go. Idempotent: a crash between the two replays them again."""
    replayed = 0
    while True:
        logged = source.execute(
            "SELECT seq, review_id FROM bucket_changes WHERE bucket = ANY(%s) ORDER BY seq "
            "LIMIT %s",
            (sorted(buckets), REPLAY_BATCH),
        ).fetchall()
        if not logged:
            return replayed
        ids = sorted({int(r[1]) for r in logged})
        resync(source, target, ids)
        source.execute("DELETE FROM bucket_changes WHERE seq = ANY(%s)", ([r[0] for r in logged],))
        replayed += len(logged)


def resync(source: Conn, target: Conn, ids: list[int]) -> None:
    """Reviews IDS (and their votes) on TARGET exactly as on SOURCE, absent if absent there."""
    reviews = source.execute(
        f"SELECT {_REVIEW_COLS} FROM reviews WHERE id = ANY(%s)", (ids,)
    ).fetchall()
    votes = source.execute(
        f"SELECT {_VOTE_COLS} FROM review_votes WHERE review_id = ANY(%s)", (ids,)
    ).fetchall()
    with target.transaction():
        _bypassing_fence(target)
        target.execute("DELETE FROM review_votes WHERE review_id = ANY(%s)", (ids,))
        target.execute("DELETE FROM reviews WHERE id = ANY(%s)", (ids,))
        with target.cursor().copy(f"COPY reviews ({_REVIEW_COLS}) FROM STDIN") as writing:
            for row in reviews:
                writing.write_row(row)
        with target.cursor().copy(f"COPY review_votes ({_VOTE_COLS}) FROM STDIN") as writing:
            for row in votes:
                writing.write_row(row)


def digests(conn: Conn, buckets: Sequence[int]) -> dict[int, tuple[int, int, str]]:
    """Per bucket: reviews, votes and one checksum over both (every column of every row)."""
    found: dict[int, tuple[int, int, str]] = {b: (0, 0, "") for b in buckets}
    review_rows = conn.execute(
        sql.SQL(
            "SELECT " + OF_REVIEW + ", count(*), md5(string_agg(md5(r::text), '' ORDER BY r.id)) "
            "FROM reviews r WHERE " + OF_REVIEW + " = ANY({}) GROUP BY 1"
        ).format(_in(buckets))
    ).fetchall()
    vote_rows = conn.execute(
        sql.SQL(
            "SELECT " + OF_VOTE + ", count(*), "
            "md5(string_agg(md5(v::text), '' ORDER BY v.review_id, v.user_id)) "
            "FROM review_votes v WHERE " + OF_VOTE + " = ANY({}) GROUP BY 1"
        ).format(_in(buckets))
    ).fetchall()
    votes = {int(b): (int(n), str(h)) for b, n, h in vote_rows}
    for bucket, count, digest in review_rows:
        vote_count, vote_digest = votes.pop(int(bucket), (0, ""))
        found[int(bucket)] = (int(count), vote_count, f"{digest}:{vote_digest}")
    for bucket, (vote_count, vote_digest) in votes.items():  # votes without reviews: a fault
        found[bucket] = (0, vote_count, f":{vote_digest}")
    return found


def current_lsn(conn: Conn) -> str:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    return str(row[0]) if row else "0/0"


def replicas_replayed(conn: Conn, lsn: str) -> bool:
    """Has every streaming replica of this primary replayed LSN?"""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE replay_lsn IS NULL OR replay_lsn < %s::pg_lsn) "
        "FROM pg_stat_replication",
        (lsn,),
    ).fetchone()
    return row is not None and int(row[0]) == 0
