"""The CDN keeps one copy per object, whatever the encoding asked, and only its own headers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
from reviewlab_common import storage
from reviewlab_common.topology import Topology

# What MinIO sends that means nothing to a client of the CDN (or, for HSTS, is wrong there).
ORIGIN_ONLY = (
    "x-amz-id-2",
    "x-amz-request-id",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "strict-transport-security",
)


@pytest.fixture()
def new_cutout(topology: Topology) -> Iterator[str]:
    """A cutout-like object no edge has cached yet; removed from the origin afterwards."""
    s3 = storage.client(topology)
    key = f"cutouts/test-encodings-{uuid.uuid4().hex}.jpg"
    storage.put_object(s3, key, os.urandom(4096), content_type="image/jpeg")
    yield f"/media/{key}"
    s3.delete_object(Bucket=storage.MEDIA_BUCKET, Key=key)


def test_plain_gzip_and_br_requests_share_one_cached_copy(cdn: str, new_cutout: str) -> None:
    statuses = []
    with httpx.Client(base_url=cdn, timeout=10) as http:
        for encoding in ("identity", "gzip", "br"):
            reply = http.get(new_cutout, headers={"Accept-Encoding": encoding})
            assert reply.status_code == 200
            statuses.append(reply.headers["X-Cache-Status"])
            assert "vary" not in reply.headers, reply.headers
    assert statuses == ["origin MISS", "edge HIT", "edge HIT"]


def test_the_origins_own_headers_stay_at_the_origin(cdn: str, new_cutout: str) -> None:
    for _ in range(2):  # the MISS that fetched it and the HIT from the cache
        reply = httpx.get(f"{cdn}{new_cutout}", timeout=10)
        assert reply.status_code == 200
        leaked = [name for name in ORIGIN_ONLY if name in reply.headers]
        assert leaked == [], reply.headers
        assert reply.headers["X-Served-By"].startswith("edge")


def test_a_cross_origin_request_gets_one_allow_origin(cdn: str, new_cutout: str) -> None:
    # The shop page's CSS mask-image is fetched in CORS mode; MinIO answers an Origin with
    # its own CORS headers, and two Allow-Origin values make the browser drop the image.
    origin = {"Origin": "http://www.shop.internal:8080"}
    for _ in range(2):  # the MISS that fetched it and the HIT from the cache
        reply = httpx.get(f"{cdn}{new_cutout}", headers=origin, timeout=10)
        assert reply.status_code == 200
        assert reply.headers.get_list("access-control-allow-origin") == ["*"], reply.headers
        assert "access-control-allow-credentials" not in reply.headers, reply.headers
