"""What the review API returns."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from reviewlab_common import photos

PhotoStatus = photos.PhotoStatus


class Photo(BaseModel):
    status: PhotoStatus
    original_url: str
    cutout_url: str | None = None
    error: str | None = None


class Review(BaseModel):
    id: int = Field(description="64-bit id; it carries the review's bucket, hence its shard")
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
