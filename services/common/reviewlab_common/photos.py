"""The photo contract every service shares: the job, the photo's status, the media keys.

The web service writes a PhotoJob into its shard's outbox, the relay publishes it on the jobs
stream, a worker reads it back; the media bucket's keys and the CDN's URLs for them are built
here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# The CDN serves the media bucket under this path (infra/cdn/edge.conf.j2).
MEDIA_PATH = "/media/"
ORIGINALS, CUTOUTS, PRODUCTS = "originals/", "cutouts/", "products/"
# Changing the model changes every cutout's key: a new cutout is a new object, never an
# overwrite the CDN could keep serving stale.
MODEL_TAG = "selfie-v1"
# A shard's primary is sent NOTIFY on this channel by the transaction that adds a photo job to
# its outbox; the workers' relays LISTEN to publish the job at once instead of at their next poll.
JOBS_CHANNEL = "photo_jobs"


class PhotoStatus(StrEnum):
    """Where a review's photo is: being cut out, cut out, or given up on."""

    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class InvalidPhotoJob(ValueError):
    """A stream entry or outbox payload that is not a photo job this lab can process."""


@dataclass(frozen=True)
class PhotoJob:
    """Cut out the photo of review REVIEW_ID, stored at ORIGINAL_KEY, on shard SHARD."""

    review_id: int
    shard: str
    original_key: str
    outbox_id: int | None = None  # the shard's outbox row, once the relay published it

    def to_payload(self) -> str:
        """The outbox row's JSON (before the relay numbers it)."""
        return json.dumps(
            {"review_id": self.review_id, "shard": self.shard, "original_key": self.original_key}
        )

    def to_fields(self) -> dict[str, str]:
        """The stream entry's fields (Redis streams carry strings)."""
        fields = {
            "review_id": str(self.review_id),
            "shard": self.shard,
            "original_key": self.original_key,
        }
        if self.outbox_id is not None:
            fields["outbox_id"] = str(self.outbox_id)
        return fields

    @classmethod
    def from_payload(cls, payload: str | dict[str, Any], outbox_id: int | None = None) -> PhotoJob:
        """The job of an outbox row (psycopg gives JSON columns back as dicts)."""
        raw = payload if isinstance(payload, dict) else json.loads(payload)
        return cls.from_fields({**raw, **({"outbox_id": outbox_id} if outbox_id else {})})

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> PhotoJob:
        """The job of a stream entry; InvalidPhotoJob says what is missing or malformed."""
        try:
            review_id = int(fields["review_id"])
            shard, original_key = str(fields["shard"]), str(fields["original_key"])
            outbox = fields.get("outbox_id")
            outbox_id = int(outbox) if outbox not in (None, "") else None
        except (KeyError, ValueError, TypeError) as exc:
            raise InvalidPhotoJob(f"not a photo job ({type(exc).__name__}: {exc})") from exc
        if review_id <= 0 or not shard or not original_key.startswith(ORIGINALS):
            raise InvalidPhotoJob(f"not a photo job: {fields!r}")
        return cls(review_id, shard, original_key, outbox_id)


def original_key(sha256: str, extension: str) -> str:
    """Content-addressed: the same bytes always land under the same key."""
    return f"{ORIGINALS}{sha256}.{extension}"


# A cutout is the upright photo (CUTOUT_PHOTO) and the person's mask beside it (CUTOUT_MASK,
# the alpha of a black PNG at the model's resolution), laid over each other by the page.
# Cutouts made before the split are one WebP with alpha and have no mask object.
CUTOUT_PHOTO, CUTOUT_MASK = ".jpg", ".mask.png"


def cutout_key(original: str) -> str:
    """Content-versioned: the same original and model always give the same key."""
    digest = hashlib.sha256(f"{original}:{MODEL_TAG}".encode()).hexdigest()[:32]
    return f"{CUTOUTS}{digest}{CUTOUT_PHOTO}"


def cutout_keys(original: str) -> tuple[str, str]:
    """The cutout's photo key and its mask's key for ORIGINAL."""
    photo = cutout_key(original)
    return photo, photo.removesuffix(CUTOUT_PHOTO) + CUTOUT_MASK


def cutout_mask_key(cutout: str) -> str | None:
    """The mask object of cutout key CUTOUT; None for a WebP that carries its own alpha."""
    if not cutout.endswith(CUTOUT_PHOTO):
        return None
    return cutout.removesuffix(CUTOUT_PHOTO) + CUTOUT_MASK


def product_key(product_id: int) -> str:
    """A product's picture (the catalog's demo data)."""
    return f"{PRODUCTS}{product_id}.jpg"


def media_url(cdn_base: str, key: str) -> str:
    """Where the CDN serves object KEY; CDN_BASE is its scheme, host and port."""
    return f"{cdn_base.rstrip('/')}{MEDIA_PATH}{key}"


def key_of(url: str) -> str:
    """The object key a CDN media URL names."""
    _, found, key = url.partition(MEDIA_PATH)
    if not found:
        raise ValueError(f"{url!r} is not a media URL (no {MEDIA_PATH})")
    return key
