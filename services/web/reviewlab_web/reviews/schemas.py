"""What the review API returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, Field, PlainSerializer, WithJsonSchema
from reviewlab_common import photos

PhotoStatus = photos.PhotoStatus

# A review id is a 63-bit number: above 2^53, where a double-based JSON parser (JavaScript's
# JSON.parse, jq 1.6) rounds it to another review's id. So the JSON carries it as a string
# of digits, as public APIs with 64-bit ids do; inside the lab it stays an int.
ReviewId = Annotated[
    int,
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[1-9][0-9]{0,18}$",
            "description": "a 64-bit review id as a string of digits (it carries the review's "
            "bucket, hence its shard); read it as a string, not as a number",
            "examples": ["121384641495047564"],
        }
    ),
]


class Photo(BaseModel):
    status: PhotoStatus
    original_url: str
    cutout_url: str | None = None
    # The cutout's mask: a PNG whose alpha, stretched over the cutout (a JPEG), keeps the
    # person. None for cutouts made before the split, a WebP that carries its own alpha.
    mask_url: str | None = None
    error: str | None = None


class Review(BaseModel):
    id: ReviewId
    product_id: int
    user_id: int
    rating: int
    body: str
    created_at: datetime
    shard: str
    photo: Photo | None = None
    helpful_votes: int = Field(0, description="readers who marked it helpful")


class RecentReviews(BaseModel):
    """The newest reviews across every shard: one page, no cursor (a product's listing pages)."""

    items: list[Review]


class ReviewPage(BaseModel):
    items: list[Review]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")


class Product(BaseModel):
    id: int
    name: str
    image_url: str | None
    rating_count: int
    rating_average: float | None
    shard: str


class CatalogProduct(BaseModel):
    """A product as the catalog lists it (its ratings are on GET /api/products/{id})."""

    id: int
    name: str
    image_url: str | None
    shard: str = Field(description="the review shard that holds its reviews")


class ProductPage(BaseModel):
    items: list[CatalogProduct]
    next_cursor: str | None = Field(None, description="pass as ?cursor= for the next page")
