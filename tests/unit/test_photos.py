"""The photo contract: a job survives the outbox and the stream unchanged; keys and URLs."""

from __future__ import annotations

import json

import pytest
from reviewlab_common import photos
from reviewlab_common.photos import InvalidPhotoJob, PhotoJob, PhotoStatus


def test_a_job_survives_the_outbox_and_the_stream() -> None:
    job = PhotoJob(4242, "reviews-1", "originals/abc.jpg")
    relayed = PhotoJob.from_payload(job.to_payload(), outbox_id=9)
    assert relayed == PhotoJob(4242, "reviews-1", "originals/abc.jpg", 9)
    fields = relayed.to_fields()
    assert fields == {
        "review_id": "4242",
        "shard": "reviews-1",
        "original_key": "originals/abc.jpg",
        "outbox_id": "9",
    }
    assert all(isinstance(v, str) for v in fields.values())
    assert PhotoJob.from_fields(fields) == relayed
    # psycopg hands a JSON column back as a dict
    assert PhotoJob.from_payload(json.loads(job.to_payload())) == job


@pytest.mark.parametrize(
    "fields",
    [
        {"review_id": "not-a-number", "shard": "reviews-9", "original_key": "originals/a.jpg"},
        {"shard": "reviews-0", "original_key": "originals/a.jpg"},
        {"review_id": "1", "shard": "reviews-0", "original_key": "cutouts/a.webp"},
        {"review_id": "0", "shard": "reviews-0", "original_key": "originals/a.jpg"},
        {"review_id": "1", "shard": "", "original_key": "originals/a.jpg"},
    ],
)
def test_what_is_not_a_photo_job_says_so(fields: dict[str, str]) -> None:
    with pytest.raises(InvalidPhotoJob, match="not a photo job"):
        PhotoJob.from_fields(fields)


def test_keys_and_urls() -> None:
    original = photos.original_key("ab12", "png")
    assert original == "originals/ab12.png"
    cutout = photos.cutout_key(original)
    assert cutout.startswith(photos.CUTOUTS) and cutout.endswith(".jpg")
    assert photos.cutout_keys(original) == (cutout, cutout.removesuffix(".jpg") + ".mask.png")
    assert photos.cutout_mask_key(cutout) == photos.cutout_keys(original)[1]
    assert photos.cutout_mask_key("cutouts/ab.webp") is None  # made before the split: alpha inside
    assert cutout == photos.cutout_key(original)  # content-versioned: stable
    assert photos.product_key(7) == "products/7.jpg"
    url = photos.media_url("http://cdn.shop.internal:8080/", cutout)
    assert url == f"http://cdn.shop.internal:8080/media/{cutout}"
    assert photos.key_of(url) == cutout
    with pytest.raises(ValueError, match="not a media URL"):
        photos.key_of("http://cdn.shop.internal:8080/other/x")


def test_status_words_are_the_strings_the_database_and_the_api_carry() -> None:
    assert [s.value for s in PhotoStatus] == ["processing", "ready", "failed"]
    assert PhotoStatus.READY == "ready" and f"{PhotoStatus.FAILED}" == "failed"
