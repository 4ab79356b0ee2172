"""Reviews: plain functions over the catalog and the review shards (no HTTP here)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import psycopg
from prometheus_client import Counter
from reviewlab_common import fence, photos, shards, storage, tables, tracing
from reviewlab_common.db import BucketClosed, ReadSource
from reviewlab_common.images import ValidatedPhoto
from reviewlab_common.tables import compiled
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Float,
    Integer,
    any_,
    bindparam,
    cast,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy import delete as delete_from
from sqlalchemy.dialects.postgresql import insert as pg_insert

from reviewlab_web.backends import Backends
from reviewlab_web.reviews import schemas

# Writes committed per review shard, which the console shows as writes/s per shard.
SHARD_WRITES = Counter("web_shard_writes", "Writes committed on a review shard", ["shard"])

# Review ids are positive 63-bit integers (a Postgres bigint); nothing else names a review.
MAX_REVIEW_ID = (1 << 63) - 1
# Product ids are the catalog's own small numbers. Their bound is the largest integer a JSON
# number keeps exactly in a double-based client (JavaScript's Number.MAX_SAFE_INTEGER), so the
# docs page shows it as it is, not rounded to 9223372036854776000.
MAX_PRODUCT_ID = (1 << 53) - 1
# What a review reads as: to_review unpacks these columns in this order.
REVIEW = (
    tables.reviews.c.id,
    tables.reviews.c.product_id,
    tables.reviews.c.user_id,
    tables.reviews.c.rating,
    tables.reviews.c.body,
    tables.reviews.c.created_at,
    tables.reviews.c.photo_status,
    tables.reviews.c.photo_original_key,
    tables.reviews.c.photo_cutout_key,
    tables.reviews.c.photo_error,
    tables.reviews.c.helpful_votes,
)

# Every statement is built and compiled once, here; a request only binds its parameters.
PRODUCT_EXISTS = compiled(
    select(literal_column("1")).where(tables.products.c.id == bindparam("id"))
)
PRODUCT = compiled(
    select(tables.products.c.id, tables.products.c.name, tables.products.c.image_key).where(
        tables.products.c.id == bindparam("id")
    )
)
PRODUCT_LIST = compiled(
    select(tables.products.c.id, tables.products.c.name, tables.products.c.image_key)
    .where(tables.products.c.id > bindparam("after", type_=BigInteger))
    .order_by(tables.products.c.id)
    .limit(bindparam("limit"))
)
RESERVE_KEY = compiled(
    pg_insert(tables.idempotency_keys)
    .values(
        user_id=bindparam("user_id"),
        key=bindparam("key"),
        request_hash=bindparam("request_hash"),
        review_id=bindparam("review_id"),
        product_id=bindparam("product_id"),
    )
    .on_conflict_do_nothing(index_elements=["user_id", "key"])
)
RESERVED = compiled(
    select(tables.idempotency_keys.c.review_id, tables.idempotency_keys.c.request_hash).where(
        tables.idempotency_keys.c.user_id == bindparam("user_id"),
        tables.idempotency_keys.c.key == bindparam("key"),
    )
)
INSERT_REVIEW = compiled(
    pg_insert(tables.reviews)
    .values(
        id=bindparam("id"),
        bucket=bindparam("bucket"),
        product_id=bindparam("product_id"),
        user_id=bindparam("user_id"),
        rating=bindparam("rating"),
        body=bindparam("body"),
        photo_status=bindparam("photo_status"),
        photo_original_key=bindparam("photo_original_key"),
    )
    .on_conflict_do_nothing(index_elements=["id"])
    .returning(tables.reviews.c.id)
)
INSERT_JOB = compiled(
    insert(tables.outbox)
    .inline()
    .values(
        review_id=bindparam("review_id"),
        payload=bindparam("payload"),
        traceparent=bindparam("traceparent"),
    )
)
NOTIFY_JOB = f"NOTIFY {photos.JOBS_CHANNEL}"
REVIEW_BY_ID = compiled(select(*REVIEW).where(tables.reviews.c.id == bindparam("id")))
PRODUCT_PAGE = compiled(
    select(*REVIEW)
    .where(
        tables.reviews.c.product_id == bindparam("product_id"),
        or_(
            bindparam("before", type_=BigInteger).is_(None),
            tables.reviews.c.id < bindparam("before", type_=BigInteger),
        ),
    )
    .order_by(tables.reviews.c.id.desc())
    .limit(bindparam("limit"))
)
# Only the buckets the map gives the shard: during a move the target holds copies too.
NEWEST = compiled(
    select(*REVIEW)
    .where(tables.reviews.c.bucket == any_(bindparam("buckets", type_=ARRAY(Integer))))
    .order_by(tables.reviews.c.id.desc())
    .limit(bindparam("limit"))
)
RATINGS = compiled(
    select(func.count(), cast(func.avg(tables.reviews.c.rating), Float)).where(
        tables.reviews.c.product_id == bindparam("product_id")
    )
)
AUTHOR_FOR_UPDATE = compiled(
    select(tables.reviews.c.user_id).where(tables.reviews.c.id == bindparam("id")).with_for_update()
)
REVIEW_FOR_UPDATE = compiled(
    select(*REVIEW).where(tables.reviews.c.id == bindparam("id")).with_for_update()
)
VOTE = compiled(
    pg_insert(tables.review_votes)
    .values(review_id=bindparam("review_id"), user_id=bindparam("user_id"))
    .on_conflict_do_nothing(index_elements=["review_id", "user_id"])
    .returning(tables.review_votes.c.review_id)
)
COUNT_VOTE = compiled(
    update(tables.reviews)
    .where(tables.reviews.c.id == bindparam("id"))
    .values(helpful_votes=tables.reviews.c.helpful_votes + literal_column("1"))
    .returning(*REVIEW)
)
DELETE_REVIEW = compiled(
    delete_from(tables.reviews)
    .where(tables.reviews.c.id == bindparam("id"))
    .returning(tables.reviews.c.photo_original_key)
)
_RANKED = (
    select(
        *REVIEW,
        func.row_number()
        .over(partition_by=tables.reviews.c.product_id, order_by=tables.reviews.c.id.desc())
        .label("newest"),
    )
    .where(tables.reviews.c.product_id == any_(bindparam("product_ids", type_=ARRAY(BigInteger))))
    .subquery("ranked")
)
NEWEST_PER_PRODUCT = compiled(
    select(*(_RANKED.c[column.name] for column in REVIEW))
    .where(_RANKED.c.newest <= bindparam("per_product"))
    .order_by(_RANKED.c.product_id, _RANKED.c.id.desc())
)


T = TypeVar("T")
# How often a write refused for a moving bucket asks again when no new map came meanwhile
# (the cutover may end by reopening the bucket where it was).
MOVING_RETRY_S = 0.05


class NotFound(LookupError):
    """The review or product does not exist."""


class Forbidden(PermissionError):
    """The caller may not do this to someone else's review."""


class IdempotencyConflict(ValueError):
    """The Idempotency-Key was used before with a different request."""


@dataclass(frozen=True)
class NewReview:
    product_id: int
    rating: int
    body: str
    photo: ValidatedPhoto | None
    photo_data: bytes | None = None


@dataclass(frozen=True)
class Written:
    review: schemas.Review
    lsn: str
    replayed: bool


def cdn_url(backends: Backends, key: str) -> str:
    topology = backends.topology
    edge = topology.nodes[topology.services["cdn"]]
    return photos.media_url(f"http://{topology.fqdn('cdn')}:{edge.port}", key)


def _mask_key(cutout: str | None) -> str | None:
    return photos.cutout_mask_key(cutout) if cutout else None


def to_review(backends: Backends, row: tuple[Any, ...], shard: str) -> schemas.Review:
    (rid, product_id, user_id, rating, body, created_at, status, original, cutout, error, votes) = (
        row
    )
    photo = None
    if status is not None:
        photo = schemas.Photo(
            status=status,
            original_url=cdn_url(backends, original),
            cutout_url=cdn_url(backends, cutout) if cutout else None,
            mask_url=cdn_url(backends, mask) if (mask := _mask_key(cutout)) else None,
            error=error,
        )
    return schemas.Review(
        id=rid,
        product_id=product_id,
        user_id=user_id,
        rating=rating,
        body=body,
        created_at=created_at,
        shard=shard,
        photo=photo,
        helpful_votes=votes,
    )


def original_key(photo: ValidatedPhoto) -> str:
    """Content-addressed: the same bytes always land under the same key."""
    return photos.original_key(photo.sha256, photo.extension)


def request_hash(user_id: int, new: NewReview) -> str:
    parts = [
        str(user_id),
        str(new.product_id),
        str(new.rating),
        new.body,
        new.photo.sha256 if new.photo else "-",
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def product_exists(backends: Backends, product_id: int) -> bool:
    def find(conn: psycopg.Connection[Any]) -> bool:
        return conn.execute(PRODUCT_EXISTS, {"id": product_id}).fetchone() is not None

    found, _ = backends.catalog.read(find)
    return found


def reserve_id(backends: Backends, *, user_id: int, key: str, new: NewReview, bucket: int) -> int:
    """The review id for this Idempotency-Key: a fresh one, or the one reserved before."""
    digest = request_hash(user_id, new)

    def reserve(conn: psycopg.Connection[Any]) -> tuple[int, str]:
        reservation = {
            "user_id": user_id,
            "key": key,
            "request_hash": digest,
            "review_id": shards.new_review_id(bucket),
            "product_id": new.product_id,
        }
        conn.execute(RESERVE_KEY, reservation)
        row = conn.execute(RESERVED, {"user_id": user_id, "key": key}).fetchone()
        assert row is not None
        return int(row[0]), str(row[1])

    (review_id, stored_hash), _ = backends.catalog.write(reserve)
    if stored_hash != digest:
        raise IdempotencyConflict(
            "this Idempotency-Key was already used with a different review; "
            "use a new key for a new review"
        )
    return review_id


def create(
    backends: Backends, *, user_id: int, new: NewReview, idempotency_key: str | None
) -> Written:
    """Store the photo, then the review and its photo job in one shard transaction."""
    bucket = shards.bucket_of(new.product_id, backends.topology.lab.buckets)
    backends.shard_map.shard_for_bucket(bucket)  # an unmapped bucket fails before the upload
    key = original_key(new.photo) if new.photo else None
    if new.photo and key:
        # Before the database: a review never points at a photo that is not stored.
        storage.put_object(
            backends.s3, key, new.photo_data or b"", content_type=new.photo.content_type
        )
    if idempotency_key:
        review_id = reserve_id(
            backends, user_id=user_id, key=idempotency_key, new=new, bucket=bucket
        )
    else:
        review_id = shards.new_review_id(bucket)
    tracing.set_attributes(**{"review.id": str(review_id)})  # find the trace by the review

    def insert(shard_name: str, conn: psycopg.Connection[Any]) -> tuple[tuple[Any, ...], bool]:
        review = {
            "id": review_id,
            "bucket": bucket,
            "product_id": new.product_id,
            "user_id": user_id,
            "rating": new.rating,
            "body": new.body,
            "photo_status": photos.PhotoStatus.PROCESSING if key else None,
            "photo_original_key": key,
        }
        inserted = conn.execute(INSERT_REVIEW, review).fetchone()
        if inserted and key:
            job = photos.PhotoJob(review_id, shard_name, key)
            with tracing.span("outbox insert", attributes={"review.id": str(review_id)}):
                # The job carries the trace: the relay and the worker continue it.
                outbox_row = {"review_id": review_id, "payload": job.to_payload()}
                trace_context = {"traceparent": tracing.current_traceparent()}
                conn.execute(INSERT_JOB, outbox_row | trace_context)
            conn.execute(NOTIFY_JOB)  # delivered on commit: wakes the relays
        row = conn.execute(REVIEW_BY_ID, {"id": review_id}).fetchone()
        assert row is not None
        return row, inserted is None

    (row, replayed), lsn, shard_name = on_owner(backends, bucket, insert)
    return Written(to_review(backends, row, shard_name), lsn, replayed)


def on_owner(
    backends: Backends, bucket: int, work: Callable[[str, psycopg.Connection[Any]], T]
) -> tuple[T, str, str]:
    """WORK(shard, conn) in one transaction on the shard that owns BUCKET: its result, the
    commit LSN and the shard. A write the shard's fence refuses (the bucket is moving) ran
    nothing: it waits for the new map, at most fence.WRITE_WAIT_S, and runs again there."""
    deadline = time.monotonic() + fence.WRITE_WAIT_S
    while True:
        revision = backends.shard_map.revision
        with tracing.span("shard routing", attributes={"reviewlab.bucket": bucket}) as routed:
            shard_name = backends.shard_map.shard_for_bucket(bucket)
            routed.set_attribute("reviewlab.shard", shard_name)
        try:
            result, lsn = backends.shards[shard_name].write(partial(work, shard_name))
        except BucketClosed as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BucketClosed(
                    f"bucket {bucket} is moving to another shard and its cutover took longer "
                    f"than {fence.WRITE_WAIT_S:.1f} s ({exc})"
                ) from exc
            backends.shard_map.wait_for_change(revision, min(left, MOVING_RETRY_S))
            continue
        SHARD_WRITES.labels(shard_name).inc()  # the console's writes/s per shard
        return result, lsn, shard_name


def shard_of_review(backends: Backends, review_id: int) -> str:
    """The shard that holds REVIEW_ID; NotFound for an id that no shard could hold."""
    if not 0 < review_id <= MAX_REVIEW_ID:
        raise NotFound(f"review {review_id} does not exist: review ids are positive 63-bit numbers")
    bucket = shards.bucket_of_review(review_id)
    try:
        return backends.shard_map.shard_for_bucket(bucket)
    except KeyError:
        # The id's bucket is outside the shard map: no review was ever given this id.
        raise NotFound(f"review {review_id} does not exist") from None


def list_products(
    backends: Backends, *, limit: int, after: int
) -> tuple[list[schemas.CatalogProduct], ReadSource]:
    """Up to LIMIT products with ids above AFTER, in id order, from the catalog."""

    def fetch(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
        return conn.execute(PRODUCT_LIST, {"after": after, "limit": limit}).fetchall()

    rows, source = backends.catalog.read(fetch)
    return [
        schemas.CatalogProduct(
            id=int(pid),
            name=str(name),
            image_url=cdn_url(backends, key) if key else None,
            shard=backends.shard_map.shard_for_product(int(pid)),
        )
        for pid, name, key in rows
    ], source


def delete(backends: Backends, *, review_id: int, user_id: int) -> tuple[str, str, list[str]]:
    """Delete the caller's own review; returns (shard, commit LSN, its photo's media keys).

    The keys are the original and both cutout objects, ready or not (a cutout's keys follow
    from its original's): what the CDN must forget.
    """
    shard_of_review(backends, review_id)

    def remove(_: str, conn: psycopg.Connection[Any]) -> str | None:
        row = conn.execute(AUTHOR_FOR_UPDATE, {"id": review_id}).fetchone()
        if row is None:
            raise NotFound(f"review {review_id} does not exist")
        if int(row[0]) != user_id:
            raise Forbidden(
                f"review {review_id} belongs to another user; only its author may delete it"
            )
        deleted = conn.execute(DELETE_REVIEW, {"id": review_id}).fetchone()
        return None if deleted is None or deleted[0] is None else str(deleted[0])

    original, lsn, shard_name = on_owner(backends, shards.bucket_of_review(review_id), remove)
    media = [original, *photos.cutout_keys(original)] if original else []
    return shard_name, lsn, media


def latest_for_products(
    backends: Backends, product_ids: list[int], *, per_product: int, min_lsns: dict[str, str]
) -> tuple[dict[int, list[schemas.Review]], list[ReadSource]]:
    """Each product's newest reviews: one query per shard that holds any of them, in parallel."""
    by_shard: dict[str, list[int]] = {}
    for product_id in product_ids:
        by_shard.setdefault(backends.shard_map.shard_for_product(product_id), []).append(product_id)

    def one(shard_name: str) -> tuple[list[schemas.Review], ReadSource]:
        def fetch(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
            wanted = {"product_ids": by_shard[shard_name], "per_product": per_product}
            return conn.execute(NEWEST_PER_PRODUCT, wanted).fetchall()

        rows, source = backends.shards[shard_name].read(fetch, min_lsn=min_lsns.get(shard_name))
        return [to_review(backends, r, shard_name) for r in rows], source

    found: dict[int, list[schemas.Review]] = {product_id: [] for product_id in product_ids}
    if not by_shard:
        return found, []
    with ThreadPoolExecutor(max_workers=len(by_shard)) as pool:
        results = list(pool.map(one, sorted(by_shard)))
    for reviews, _ in results:
        for review in reviews:
            found[review.product_id].append(review)
    return found, [source for _, source in results]


def mark_helpful(backends: Backends, *, review_id: int, user_id: int) -> Written:
    """The caller finds the review helpful: counted once per reader, however often sent."""
    shard_of_review(backends, review_id)

    def vote(_: str, conn: psycopg.Connection[Any]) -> tuple[tuple[Any, ...], bool]:
        # Locked: a delete waits, so the vote never points at a review that is gone.
        row = conn.execute(REVIEW_FOR_UPDATE, {"id": review_id}).fetchone()
        if row is None:
            raise NotFound(f"review {review_id} does not exist")
        if conn.execute(VOTE, {"review_id": review_id, "user_id": user_id}).fetchone() is None:
            return row, True  # this reader's vote was counted before
        counted = conn.execute(COUNT_VOTE, {"id": review_id}).fetchone()
        assert counted is not None
        return counted, False

    (row, replayed), lsn, shard_name = on_owner(backends, shards.bucket_of_review(review_id), vote)
    return Written(to_review(backends, row, shard_name), lsn, replayed)
