"""The lab's tables in SQLAlchemy Core: one MetaData per database kind.

The migrations make these tables; tests check that a migrated database has exactly these
columns. Queries are built from them and compiled once (see `compiled`); the caller still
picks the node (ClusterRouter.read / write), so SQLAlchemy never decides where a query runs.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

# The catalog cluster: users, products and idempotency keys.
catalog = MetaData()

users = Table(
    "users",
    catalog,
    Column("id", BigInteger, primary_key=True),
    Column("handle", Text, nullable=False, unique=True),
    Column("display_name", Text, nullable=False),
)

products = Table(
    "products",
    catalog,
    Column("id", BigInteger, primary_key=True),
    Column("name", Text, nullable=False),
    Column("image_key", Text),
)

# An Idempotency-Key reserves a review id before the shard write, whatever shard it lands on.
idempotency_keys = Table(
    "idempotency_keys",
    catalog,
    Column("user_id", BigInteger, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("request_hash", Text, nullable=False),
    Column("review_id", BigInteger, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column(
        "created_at", postgresql.TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    ),
)

# A review shard: the reviews of the buckets the shard map assigns to it, and its outbox.
shard = MetaData()

reviews = Table(
    "reviews",
    shard,
    Column("id", BigInteger, primary_key=True),
    Column("bucket", Integer, nullable=False),
    Column("product_id", BigInteger, nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("rating", SmallInteger, CheckConstraint("rating BETWEEN 1 AND 5"), nullable=False),
    Column("body", Text, nullable=False),
    Column(
        "created_at", postgresql.TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    ),
    Column("photo_status", Text),
    Column("photo_original_key", Text),
    Column("photo_cutout_key", Text),
    Column("photo_error", Text),
    Column("photo_attempts", Integer, nullable=False, server_default="0"),
    # Shard revision 0002: how many readers marked the review helpful (see review_votes).
    Column("helpful_votes", Integer, nullable=False, server_default="0"),
)

# One row per reader who marked a review helpful: a second vote changes nothing.
review_votes = Table(
    "review_votes",
    shard,
    Column("review_id", BigInteger, ForeignKey("reviews.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", BigInteger, primary_key=True),
    Column(
        "created_at", postgresql.TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    ),
)

# Written in the same transaction as its review; a relay moves it to the Redis stream.
outbox = Table(
    "outbox",
    shard,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("review_id", BigInteger, nullable=False),
    Column("payload", postgresql.JSONB, nullable=False),
    Column(
        "created_at", postgresql.TIMESTAMP(timezone=True), nullable=False, server_default=func.now()
    ),
    Column("published_at", postgresql.TIMESTAMP(timezone=True)),
    # Shard revision 0004: the W3C traceparent of the request that wrote it, so the relay and
    # the worker continue that request's trace (NULL: written untraced).
    Column("traceparent", Text),
)

# Shard revision 0003: each bucket's state on this shard (reviewlab_common.fence), one row per
# possible bucket, and the ids of reviews written in a bucket under capture, for the mover.
bucket_fence = Table(
    "bucket_fence",
    shard,
    Column("bucket", Integer, primary_key=True),
    Column("state", Text, nullable=False, server_default="open"),
    Column("lease_until", postgresql.TIMESTAMP(timezone=True)),
)

bucket_changes = Table(
    "bucket_changes",
    shard,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("bucket", Integer, nullable=False),
    Column("review_id", BigInteger, nullable=False),
)

METADATA = {"catalog": catalog, "shard": shard}
_DIALECT = postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]


def compiled(statement: ClauseElement) -> str:
    """STATEMENT as SQL text for a psycopg connection, with %(name)s parameters.

    Done once, at import: the hot path runs `conn.execute(TEXT, params)` and pays nothing
    for SQLAlchemy per request (psycopg prepares a statement it sees often).
    """
    done = statement.compile(dialect=_DIALECT)
    assert isinstance(done, SQLCompiler)
    # A Python value in the statement becomes a parameter with a generated name that no
    # caller passes: refuse it here, at import, rather than fail a request later.
    generated = sorted({done.bind_names[bind] for bind in done.binds.values() if bind.unique})
    if generated:
        raise ValueError(
            f"parameters {generated} were generated from values in the statement; "
            "use bindparam(NAME) for inputs and literal_column() for constants"
        )
    return str(done)
