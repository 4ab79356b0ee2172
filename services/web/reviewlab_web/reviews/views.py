"""The review API's routes: HTTP mapping only; the work is in service.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import (
    APIRouter,
    File,
    Form,
    Header,
    Path,
    Query,
    Response,
    UploadFile,
    status,
)
from reviewlab_common import images
from reviewlab_common.db import ReadSource

from reviewlab_web import consistency
from reviewlab_web.auth import CurrentUserDep
from reviewlab_web.deps import BackendsDep, ConsistencyDep
from reviewlab_web.errors import ApiError
from reviewlab_web.responses import json_reply
from reviewlab_web.reviews import media_cache, reads, schemas, service

router = APIRouter(prefix="/api", tags=["reviews"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or bad bearer token"},
    503: {"description": "a dependency is down; nothing was written"},
}


def read_from(response: Response, sources: list[ReadSource]) -> None:
    """Where the reads behind RESPONSE were served: X-Read-From (cluster/role), X-Read-Node."""
    response.headers["X-Read-From"] = ", ".join(s.header for s in sources)
    response.headers["X-Read-Node"] = ", ".join(s.node for s in sources)


def _read_photo(photo: UploadFile | None) -> tuple[images.ValidatedPhoto | None, bytes | None]:
    if photo is None:
        return None, None
    # Read one byte past the limit: enough to know it is too large without holding more.
    data = photo.file.read(images.MAX_PHOTO_BYTES + 1)
    try:
        return images.validate_photo(data), data
    except images.PhotoRejected as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from exc


# A product id outside 1..MAX_PRODUCT_ID is a 422 before any query runs.
ProductId = Annotated[int, Path(ge=1, le=service.MAX_PRODUCT_ID, description="the product")]
PHOTO_MIB = images.MAX_PHOTO_BYTES // 2**20


@router.post(
    "/reviews",
    status_code=status.HTTP_201_CREATED,
    response_model=schemas.Review,
    responses={
        **ERRORS,
        400: {"description": "the multipart form could not be parsed"},
        409: {"description": "Idempotency-Key reused with another request"},
        413: {"description": f"photo larger than {PHOTO_MIB} MiB"},
        415: {"description": "photo not JPEG/PNG/WebP, or a body that is not a multipart form"},
        422: {"description": "invalid field or photo"},
    },
)
def post_review(
    backends: BackendsDep,
    user_id: CurrentUserDep,
    positions: ConsistencyDep,
    response: Response,
    product_id: Annotated[
        int, Form(ge=1, le=service.MAX_PRODUCT_ID, description="the product reviewed")
    ],
    rating: Annotated[int, Form(ge=1, le=5, description="1 to 5 stars")],
    body: Annotated[str, Form(min_length=1, max_length=5000, description="1 to 5,000 characters")],
    photo: Annotated[
        UploadFile | None, File(description=f"JPEG, PNG or WebP, at most {PHOTO_MIB} MiB")
    ] = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Post a review, optionally with a photo of yourself wearing the item."""
    if "\x00" in body:
        raise ApiError(422, "invalid_body", "body: must not contain NUL characters")
    if not body.strip():
        raise ApiError(422, "invalid_body", "body: must contain more than whitespace")
    validated, data = _read_photo(photo)
    if not service.product_exists(backends, product_id):
        raise ApiError(422, "unknown_product", f"product_id: product {product_id} does not exist")
    new = service.NewReview(product_id, rating, body, validated, data)
    try:
        written = service.create(
            backends, user_id=user_id, new=new, idempotency_key=idempotency_key
        )
    except service.IdempotencyConflict as exc:
        raise ApiError(409, "idempotency_conflict", str(exc)) from exc
    review = written.review
    consistency.attach(response, consistency.merge(positions, review.shard, written.lsn))
    response.headers["Location"] = f"/api/reviews/{review.id}"
    if written.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return json_reply(review, response, status.HTTP_201_CREATED)


@router.get("/reviews/{review_id}", response_model=schemas.Review, responses={404: {}})
async def get_review(
    backends: BackendsDep, positions: ConsistencyDep, response: Response, review_id: int
) -> Response:
    try:
        review, source = await reads.get(backends, review_id, positions)
    except service.NotFound as exc:
        raise ApiError(404, "review_not_found", str(exc)) from exc
    read_from(response, [source])
    return json_reply(review, response)


@router.get("/reviews", response_model=schemas.RecentReviews)
async def recent_reviews(
    backends: BackendsDep,
    positions: ConsistencyDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """The newest reviews across all shards (every shard asked at once)."""
    items, sources = await reads.list_recent(backends, limit=limit, min_lsns=positions)
    read_from(response, sources)
    return json_reply(schemas.RecentReviews(items=items), response)


@router.get("/products", response_model=schemas.ProductPage)
def list_products(
    backends: BackendsDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Response:
    """Every product in the catalog, in id order, one page at a time."""
    after = 0
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or int(cursor) > service.MAX_PRODUCT_ID:
            raise ApiError(
                422, "bad_cursor", "cursor: pass the next_cursor value of the previous page"
            )
        after = int(cursor)
    items, source = service.list_products(backends, limit=limit + 1, after=after)
    read_from(response, [source])
    more = len(items) > limit
    items = items[:limit]
    page = schemas.ProductPage(
        items=items, next_cursor=str(items[-1].id) if more and items else None
    )
    return json_reply(page, response)


@router.get("/products/{product_id}", response_model=schemas.Product, responses={404: {}})
async def get_product(
    backends: BackendsDep, positions: ConsistencyDep, response: Response, product_id: ProductId
) -> Response:
    try:
        found, sources = await reads.product(backends, product_id, positions)
    except service.NotFound as exc:
        raise ApiError(404, "product_not_found", str(exc)) from exc
    read_from(response, sources)
    return json_reply(found, response)


@router.get("/products/{product_id}/reviews", response_model=schemas.ReviewPage)
async def product_reviews(
    backends: BackendsDep,
    positions: ConsistencyDep,
    response: Response,
    product_id: ProductId,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Response:
    """A product's reviews, newest first, one page at a time."""
    before = None
    if cursor is not None:
        # ASCII digits only ("²".isdigit() is true) and within a review id's range.
        if not (cursor.isascii() and cursor.isdigit()) or int(cursor) > service.MAX_REVIEW_ID:
            raise ApiError(
                422, "bad_cursor", "cursor: pass the next_cursor value of the previous page"
            )
        before = int(cursor)
    items, source = await reads.list_for_product(
        backends, product_id, limit=limit + 1, before=before, min_lsns=positions
    )
    read_from(response, [source])
    more = len(items) > limit
    items = items[:limit]
    page = schemas.ReviewPage(
        items=items, next_cursor=str(items[-1].id) if more and items else None
    )
    return json_reply(page, response)


@router.post(
    "/reviews/{review_id}/helpful",
    response_model=schemas.Review,
    responses={
        **ERRORS,
        404: {"description": "no such review"},
        422: {"description": "the review id is not a number"},
    },
)
def mark_helpful(
    backends: BackendsDep,
    user_id: CurrentUserDep,
    positions: ConsistencyDep,
    response: Response,
    review_id: int,
) -> Response:
    """Mark a review helpful. Once per reader: repeating it changes nothing (200 either way;
    Idempotent-Replayed: true when this reader's vote was already counted)."""
    try:
        written = service.mark_helpful(backends, review_id=review_id, user_id=user_id)
    except service.NotFound as exc:
        raise ApiError(404, "review_not_found", str(exc)) from exc
    consistency.attach(response, consistency.merge(positions, written.review.shard, written.lsn))
    if written.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return json_reply(written.review, response)


@router.delete("/reviews/{review_id}", status_code=204, responses={403: {}, 404: {}, **ERRORS})
def delete_review(
    backends: BackendsDep, user_id: CurrentUserDep, positions: ConsistencyDep, review_id: int
) -> Response:
    """Delete your own review."""
    try:
        shard, lsn, media = service.delete(backends, review_id=review_id, user_id=user_id)
    except service.NotFound as exc:
        raise ApiError(404, "review_not_found", str(exc)) from exc
    except service.Forbidden as exc:
        raise ApiError(403, "not_author", str(exc)) from exc
    # Its photos leave every CDN cache before the delete returns (the objects stay in the
    # bucket: content-addressed, another review may show the same photo).
    media_cache.forget(backends, media)
    response = Response(status_code=204)
    consistency.attach(response, consistency.merge(positions, shard, lsn))
    return response
