"""What the shop page reads: the catalog's products and users, each product's newest reviews."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from anyio import from_thread
from reviewlab_common import tokens
from reviewlab_common.db import ReadSource
from reviewlab_common.tables import compiled, products, users
from sqlalchemy import BigInteger, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from reviewlab_web.backends import Backends
from reviewlab_web.reviews import reads, schemas
from reviewlab_web.reviews import service as reviews

# Lab only: the page hands its visitors a short-lived token for this demo user, so the form can
# post to the API. A real shop signs its users in; this lab has no sign-in.
DEMO_USER = "kim"
DEMO_TOKEN_TTL_S = 15 * 60

# The page's statements, compiled once.
PRODUCTS = compiled(
    select(products.c.id, products.c.name, products.c.image_key).order_by(products.c.id)
)
# Only the names the page shows: its reviews' authors, never the whole users table.
USER_NAMES = compiled(
    select(users.c.id, users.c.display_name).where(
        users.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger)))
    )
)
DEMO_USER_ID = compiled(select(users.c.id).where(users.c.handle == bindparam("handle")))


@dataclass(frozen=True)
class ShopProduct:
    id: int
    name: str
    image_url: str | None
    shard: str
    reviews: list[schemas.Review] = field(default_factory=list)


@dataclass(frozen=True)
class Shelf:
    """The page's content and where each part of it was read."""

    products: list[ShopProduct]
    user_names: dict[int, str]
    sources: list[ReadSource]


def shelf(
    backends: Backends,
    *,
    per_product: int,
    min_lsns: dict[str, str],
    posted: int | None = None,
) -> Shelf:
    """Every product with its newest reviews, and the review POSTED among them."""

    def catalog(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
        return conn.execute(PRODUCTS).fetchall()

    rows, catalog_source = backends.catalog.read(catalog)
    ids = [int(row[0]) for row in rows]
    latest, review_sources = reviews.latest_for_products(
        backends, ids, per_product=per_product, min_lsns=min_lsns
    )
    if posted is not None:
        _include_posted(backends, latest, posted, min_lsns)
    authors = sorted({r.user_id for shown in latest.values() for r in shown})

    def names(conn: psycopg.Connection[Any]) -> dict[int, str]:
        found = conn.execute(USER_NAMES, {"ids": authors}).fetchall() if authors else []
        return {int(uid): str(name) for uid, name in found}

    user_names, _ = backends.catalog.read(names)
    shown = [
        ShopProduct(
            id=int(pid),
            name=str(name),
            image_url=reviews.cdn_url(backends, key) if key else None,
            shard=backends.shard_map.shard_for_product(int(pid)),
            reviews=latest[int(pid)],
        )
        for pid, name, key in rows
    ]
    return Shelf(shown, user_names, [catalog_source, *review_sources])


def _include_posted(
    backends: Backends,
    latest: dict[int, list[schemas.Review]],
    review_id: int,
    min_lsns: dict[str, str],
) -> None:
    """The caller's own new review is shown even when others posted after it."""
    if any(r.id == review_id for shown in latest.values() for r in shown):
        return
    try:
        # The shop page runs in the threadpool; the one-review read is async (reviews/reads.py).
        review, _ = from_thread.run(reads.get, backends, review_id, min_lsns)
    except reviews.NotFound:
        return
    if review.product_id in latest:
        latest[review.product_id].insert(0, review)


def demo_token(backends: Backends) -> str:
    """A short-lived bearer token for the demo user (lab only, see DEMO_USER)."""

    def find(conn: psycopg.Connection[Any]) -> tuple[Any, ...] | None:
        return conn.execute(DEMO_USER_ID, {"handle": DEMO_USER}).fetchone()

    row, _ = backends.catalog.read(find)
    if row is None:
        raise reviews.NotFound(f"the demo user {DEMO_USER} does not exist: run `reviewlab up`")
    return tokens.issue(backends.secrets.token_secret, int(row[0]), ttl_s=DEMO_TOKEN_TTL_S)
