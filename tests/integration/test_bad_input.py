"""Bad input: the right 4xx with a JSON error that says why, and nothing written anywhere."""

from __future__ import annotations

import hashlib
import io
import struct
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from PIL import Image, PngImagePlugin
from reviewlab_common import storage
from reviewlab_common.topology import Topology
from reviewlab_lab import ready
from reviewlab_lab.photos import PORTRAIT

from tests.integration.shop import (
    CONSISTENCY,
    NOOR,
    Authored,
    assert_error,
    auth,
    get_review,
    marker,
    post_review,
    rows_with_body,
    unique_photo,
    wait_photo_ready,
)

PRODUCT = 44
ELEVEN_MB = 11_000_000  # over the API's 10 MiB, under the vIP's body limit of 11 MiB
TWELVE_MIB = 12 * 2**20  # over the vIP's body limit as well


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes whose header claims WIDTH x HEIGHT pixels: a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def portrait_png() -> bytes:
    """The portrait as a PNG with a unique text chunk: a new original each time."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", uuid.uuid4().hex)
    buffer = io.BytesIO()
    with Image.open(PORTRAIT) as image:
        image.save(buffer, format="PNG", pnginfo=info, compress_level=1)
    return buffer.getvalue()


def original_keys(data: bytes) -> list[str]:
    digest = hashlib.sha256(data).hexdigest()
    return [f"originals/{digest}.{ext}" for ext in ("jpg", "png", "webp")]


@dataclass
class Case:
    status: int
    code: str
    fields: dict[str, str] = field(default_factory=dict)
    photo: bytes | None = None
    filename: str = "photo.jpg"
    content_type: str = "image/jpeg"


def bad_cases() -> dict[str, Case]:
    text = b"Loved the jacket, see attached measurements.\n" * 20
    truncated = PORTRAIT.read_bytes()
    return {
        "not an image": Case(415, "unsupported_format", photo=text, filename="notes.txt"),
        "text named .jpg": Case(415, "unsupported_format", photo=text),
        "gif named .jpg": Case(415, "unsupported_format", photo=b"GIF89a" + bytes(200)),
        "truncated jpeg": Case(422, "corrupt_image", photo=truncated[: len(truncated) // 2]),
        "empty file": Case(422, "empty_file", photo=b""),
        "30000x30000 png": Case(
            422, "too_many_pixels", photo=png_declaring(30_000, 30_000), filename="tiny.png"
        ),
        "11 MB upload": Case(413, "too_large", photo=b"\xff\xd8\xff" + bytes(ELEVEN_MB - 3)),
        "rating 0": Case(422, "invalid_request", {"rating": "0"}, unique_photo()),
        "rating 6": Case(422, "invalid_request", {"rating": "6"}, unique_photo()),
        "rating not a number": Case(422, "invalid_request", {"rating": "five"}),
        "unknown product": Case(422, "unknown_product", {"product_id": "999999"}, unique_photo()),
        "product 0": Case(422, "invalid_request", {"product_id": "0"}),
        "6000-char body": Case(422, "invalid_request", {"body": "x" * 6000}, unique_photo()),
        "blank body": Case(422, "invalid_body", {"body": "   \n\t "}),
        "missing product_id": Case(422, "invalid_request", {"product_id": ""}),
        "missing rating": Case(422, "invalid_request", {"rating": ""}),
        "missing body": Case(422, "invalid_request", {"body": ""}),
    }


CASES = bad_cases()

# Ids no shard could hold. 1444134424 carries bucket 315, outside the lab's 256-bucket map.
UNROUTABLE_IDS = {
    "bucket outside the shard map": 1444134424,
    "negative": -5,
    "zero": 0,
    "just past a bigint": 2**63,
    "far past a bigint": 10**23,
}
# Cursors that are not a review id: too large for one, a non-ASCII digit, a sign, a word.
BAD_CURSORS = ["99999999999999999999", "\u00b2", "-1", "next"]


def rating_count(client: httpx.Client, product_id: int) -> int:
    reply = client.get(f"/api/products/{product_id}")
    assert reply.status_code == 200, reply.text
    return int(reply.json()["rating_count"])


def assert_workers_and_webs_ready(topology: Topology) -> None:
    for node in [*topology.of_kind("worker"), *topology.of_kind("web")]:
        probe = ready.probe(topology, node)
        assert probe.ready, f"{node.name} is not ready after bad input: {probe.detail}"


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_and_nothing_is_written(
    topology: Topology, client: httpx.Client, token_for: Callable[[int], str], name: str
) -> None:
    case = CASES[name]
    body = marker(f"bad input: {name}")
    fields = {"product_id": str(PRODUCT), "rating": "4", "body": body, **case.fields}
    sent = {k: v for k, v in fields.items() if v != ""}  # "" means: leave the field out
    files = (
        {"photo": (case.filename, case.photo, case.content_type)}
        if case.photo is not None
        else None
    )
    count = rating_count(client, PRODUCT)

    reply = client.post(
        "/api/reviews",
        headers={"Authorization": f"Bearer {token_for(NOOR)}"},
        data=sent,
        files=files,
        timeout=60,
    )
    error = assert_error(reply, case.status)
    assert error["code"] == case.code, error

    assert sum(rows_with_body(topology, sent.get("body", body)).values()) == 0
    assert rating_count(client, PRODUCT) == count
    if case.photo:
        s3 = storage.client(topology)
        stored = [key for key in original_keys(case.photo) if storage.exists(s3, key)]
        assert stored == [], f"the refused photo was kept: {stored}"
    assert_workers_and_webs_ready(topology)


def test_upload_over_the_vip_limit_is_refused_with_a_json_error(
    topology: Topology, vip: str, token_for: Callable[[int], str]
) -> None:
    body = marker("far too large")
    reply = httpx.post(
        f"{vip}/api/reviews",
        headers={"Authorization": f"Bearer {token_for(NOOR)}"},
        data={"product_id": str(PRODUCT), "rating": "4", "body": body},
        files={"photo": ("huge.jpg", b"\xff\xd8\xff" + bytes(TWELVE_MIB), "image/jpeg")},
        timeout=60,
    )
    assert reply.status_code == 413, reply.text[:300]
    assert sum(rows_with_body(topology, body).values()) == 0
    # Either the vIP refuses the body itself (client_max_body_size) or the web server does;
    # both answer with the JSON error shape.
    assert_error(reply, 413)


def test_png_bytes_named_jpg_are_accepted_as_png(
    topology: Topology, client: httpx.Client, token_for: Callable[[int], str], authored: Authored
) -> None:
    photo = portrait_png()
    posted = post_review(
        client, token_for(NOOR), product_id=PRODUCT, body=marker("png in disguise"), photo=photo
    )
    review = authored.add(posted, NOOR)
    digest = hashlib.sha256(photo).hexdigest()
    assert review["photo"]["original_url"].endswith(f"/media/originals/{digest}.png")
    assert storage.exists(storage.client(topology), f"originals/{digest}.png")
    done = wait_photo_ready(client, review["id"], posted.headers[CONSISTENCY])
    assert done["photo"]["cutout_url"].endswith(".jpg")


def test_sql_looking_text_and_emoji_are_stored_verbatim(
    topology: Topology, client: httpx.Client, token_for: Callable[[int], str], authored: Authored
) -> None:
    body = marker(
        "Robert'); DROP TABLE reviews;-- \" OR 1=1; /* */ \\x00 %s {{7*7}}"
        " <script>alert(1)</script>"
        " 👗✨ 👩🏽‍🦱 Größe passt, très joli, 很好看 ﷽"
    )
    posted = post_review(client, token_for(NOOR), product_id=PRODUCT, rating=5, body=body)
    review = authored.add(posted, NOOR)
    assert review["body"] == body
    got = get_review(client, review["id"], posted.headers[CONSISTENCY])
    assert got.status_code == 200
    assert got.json()["body"] == body
    assert sum(rows_with_body(topology, body).values()) == 1


@pytest.mark.parametrize("name", list(UNROUTABLE_IDS))
def test_an_id_no_shard_holds_is_a_404_for_get_and_delete(
    client: httpx.Client, token_for: Callable[[int], str], name: str
) -> None:
    review_id = UNROUTABLE_IDS[name]
    got = client.get(f"/api/reviews/{review_id}")
    assert assert_error(got, 404)["code"] == "review_not_found"
    deleted = client.delete(f"/api/reviews/{review_id}", headers=auth(token_for(NOOR)))
    assert assert_error(deleted, 404)["code"] == "review_not_found"


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_cursor_that_is_no_review_id_is_a_422(client: httpx.Client, cursor: str) -> None:
    reply = client.get(f"/api/products/{PRODUCT}/reviews", params={"cursor": cursor})
    assert assert_error(reply, 422)["code"] == "bad_cursor"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"body": ""}, "body: Field required"),
        ({"body": "x" * 5001}, "body: String should have at most 5000 characters"),
        ({"rating": ""}, "rating: Field required"),
    ],
    ids=["missing body", "long body", "missing rating"],
)
def test_a_refused_field_is_named_in_the_message(
    client: httpx.Client, token_for: Callable[[int], str], fields: dict[str, str], message: str
) -> None:
    sent = {"product_id": str(PRODUCT), "rating": "4", "body": marker("named"), **fields}
    reply = client.post(
        "/api/reviews",
        headers={"Authorization": f"Bearer {token_for(NOOR)}"},
        data={k: v for k, v in sent.items() if v != ""},
    )
    error = assert_error(reply, 422)
    assert (error["code"], error["message"]) == ("invalid_request", message), error


def test_a_json_body_is_told_to_send_a_multipart_form(
    topology: Topology, client: httpx.Client, token_for: Callable[[int], str]
) -> None:
    body = marker("sent as json")
    reply = client.post(
        "/api/reviews",
        headers={"Authorization": f"Bearer {token_for(NOOR)}"},
        json={"product_id": PRODUCT, "rating": 4, "body": body},
    )
    error = assert_error(reply, 415)
    assert error["code"] == "use_multipart", error
    assert "multipart/form-data" in error["message"] and "curl -F" in error["message"], error
    assert sum(rows_with_body(topology, body).values()) == 0


def test_both_413s_state_the_limits_in_mib(
    vip: str, client: httpx.Client, token_for: Callable[[int], str]
) -> None:
    headers = {"Authorization": f"Bearer {token_for(NOOR)}"}
    fields = {"product_id": str(PRODUCT), "rating": "4", "body": marker("too large")}
    at_the_api = client.post(
        "/api/reviews",
        headers=headers,
        data=fields,
        files={"photo": ("big.jpg", b"\xff\xd8\xff" + bytes(ELEVEN_MB - 3), "image/jpeg")},
        timeout=60,
    )
    at_the_vip = httpx.post(
        f"{vip}/api/reviews",
        headers=headers,
        data=fields,
        files={"photo": ("huge.jpg", b"\xff\xd8\xff" + bytes(TWELVE_MIB), "image/jpeg")},
        timeout=60,
    )
    api_message = assert_error(at_the_api, 413)["message"]
    vip_message = assert_error(at_the_vip, 413)["message"]
    assert "10 MiB" in api_message, api_message
    assert "11 MiB" in vip_message and "10 MiB" in vip_message, vip_message
    assert " MB" not in api_message + vip_message
