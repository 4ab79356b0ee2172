"""The hot review reads, on the event loop: one review, a product with its rating, a
product's page of reviews, and the newest reviews across every shard.

They run on each cluster's AsyncReads (reviewlab_common.asyncreads), so an async route
serves them with no threadpool hop. The statements and the row-to-review mapping are
service.py's; only the awaiting is here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from reviewlab_common.asyncreads import Conn
from reviewlab_common.db import ReadSource

from reviewlab_web.backends import Backends
from reviewlab_web.reviews import schemas, service

Row = tuple[Any, ...]


async def get(
    backends: Backends, review_id: int, min_lsns: dict[str, str]
) -> tuple[schemas.Review, ReadSource]:
    """Review REVIEW_ID from the shard its id routes to; service.NotFound if there is none."""
    shard_name = service.shard_of_review(backends, review_id)

    async def fetch(conn: Conn) -> Row | None:
        cursor = await conn.execute(service.REVIEW_BY_ID, {"id": review_id})
        return await cursor.fetchone()

    reads = backends.reads[shard_name]
    row, source = await reads.read(fetch, min_lsn=min_lsns.get(shard_name))
    if row is None:
        raise service.NotFound(f"review {review_id} does not exist")
    return service.to_review(backends, row, shard_name), source


async def list_for_product(
    backends: Backends, product_id: int, *, limit: int, before: int | None, min_lsns: dict[str, str]
) -> tuple[list[schemas.Review], ReadSource]:
    """Up to LIMIT of PRODUCT_ID's reviews older than BEFORE, newest first."""
    shard_name = backends.shard_map.shard_for_product(product_id)
    page = {"product_id": product_id, "before": before, "limit": limit}

    async def fetch(conn: Conn) -> list[Row]:
        cursor = await conn.execute(service.PRODUCT_PAGE, page)
        return await cursor.fetchall()

    reads = backends.reads[shard_name]
    rows, source = await reads.read(fetch, min_lsn=min_lsns.get(shard_name))
    return [service.to_review(backends, r, shard_name) for r in rows], source


async def product(
    backends: Backends, product_id: int, min_lsns: dict[str, str]
) -> tuple[schemas.Product, list[ReadSource]]:
    """PRODUCT_ID from the catalog with its rating from its shard, both asked at once."""
    shard_name = backends.shard_map.shard_for_product(product_id)

    async def fetch(conn: Conn) -> Row | None:
        cursor = await conn.execute(service.PRODUCT, {"id": product_id})
        return await cursor.fetchone()

    async def stats(conn: Conn) -> Row | None:
        cursor = await conn.execute(service.RATINGS, {"product_id": product_id})
        return await cursor.fetchone()

    (row, catalog_source), (counts, shard_source) = await asyncio.gather(
        backends.reads["catalog"].read(fetch),
        backends.reads[shard_name].read(stats, min_lsn=min_lsns.get(shard_name)),
    )
    if row is None:
        raise service.NotFound(f"product {product_id} does not exist")
    count, average = counts if counts else (0, None)
    found = schemas.Product(
        id=row[0],
        name=row[1],
        image_url=service.cdn_url(backends, row[2]) if row[2] else None,
        rating_count=count,
        rating_average=round(average, 2) if average is not None else None,
        shard=shard_name,
    )
    return found, [catalog_source, shard_source]


async def list_recent(
    backends: Backends, *, limit: int, min_lsns: dict[str, str]
) -> tuple[list[schemas.Review], list[ReadSource]]:
    """Newest reviews across every shard: each shard asked at once, then merged by id.

    Each shard is asked only for the buckets the map gives it: during a move the target
    holds copies too."""
    placement = backends.shard_map.snapshot()
    if not placement:
        # No map held yet: read it (a blocking etcd call), or fail saying why.
        await asyncio.to_thread(backends.shard_map.refresh)
        placement = backends.shard_map.snapshot()
    owned: dict[str, list[int]] = {}
    for bucket, shard_name in placement.items():
        owned.setdefault(shard_name, []).append(bucket)

    async def one(shard_name: str) -> tuple[list[schemas.Review], ReadSource]:
        async def fetch(conn: Conn) -> list[Row]:
            page = {"limit": limit, "buckets": owned[shard_name]}
            cursor = await conn.execute(service.NEWEST, page)
            return await cursor.fetchall()

        reads = backends.reads[shard_name]
        rows, source = await reads.read(fetch, min_lsn=min_lsns.get(shard_name))
        return [service.to_review(backends, r, shard_name) for r in rows], source

    results = await asyncio.gather(*(one(name) for name in sorted(owned)))
    merged = sorted((r for rows, _ in results for r in rows), key=lambda r: r.id, reverse=True)
    return merged[:limit], [source for _, source in results]
