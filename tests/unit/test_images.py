"""Photo validation: by content, with limits checked before any pixel is decoded."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageFile
from reviewlab_common.images import (
    MAX_PHOTO_BYTES,
    MAX_PIXELS,
    PhotoRejected,
    ValidatedPhoto,
    oriented_rgb,
    validate_photo,
)

PORTRAIT = Path(__file__).resolve().parents[1] / "fixtures" / "portrait.jpg"


def encoded(
    fmt: str, size: tuple[int, int] = (40, 20), mode: str = "RGB", **params: object
) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "orange" if mode == "RGB" else 0).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_declaring(width: int, height: int) -> bytes:
    """A valid-looking PNG header that promises a huge image but carries almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def rejected(data: bytes) -> PhotoRejected:
    with pytest.raises(PhotoRejected) as caught:
        validate_photo(data)
    return caught.value


def test_jpeg_is_accepted_with_its_facts() -> None:
    data = PORTRAIT.read_bytes()
    assert validate_photo(data) == ValidatedPhoto(
        format="jpeg",
        content_type="image/jpeg",
        extension="jpg",
        width=512,
        height=512,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def test_webp_is_accepted() -> None:
    photo = validate_photo(encoded("WEBP"))
    assert (photo.format, photo.content_type, photo.extension) == ("webp", "image/webp", "webp")
    assert (photo.width, photo.height) == (40, 20)


def test_png_uploaded_as_jpg_is_accepted_as_png() -> None:
    # The browser would send "selfie.jpg" with image/jpeg; only the bytes are consulted.
    photo = validate_photo(encoded("PNG"))
    assert (photo.format, photo.content_type, photo.extension) == ("png", "image/png", "png")


def test_jpeg_with_exif_orientation_6_reports_upright_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; displayed rotated a quarter turn
    photo = validate_photo(encoded("JPEG", size=(40, 20), exif=exif.tobytes()))
    assert (photo.width, photo.height) == (20, 40)


def test_oriented_rgb_applies_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    image = oriented_rgb(encoded("JPEG", size=(40, 20), exif=exif.tobytes()))
    assert (image.mode, image.size) == ("RGB", (20, 40))


def test_oriented_rgb_converts_palette_with_transparency() -> None:
    image = oriented_rgb(encoded("PNG", mode="P", transparency=0))
    assert (image.mode, image.size) == ("RGB", (40, 20))


def test_empty_file() -> None:
    error = rejected(b"")
    assert (error.code, error.status) == ("empty_file", 422)
    assert "empty" in str(error)


def test_too_large_is_refused_before_looking_at_content() -> None:
    error = rejected(b"just text " * (11 * 1_000_000 // 10))
    assert (error.code, error.status) == ("too_large", 413)
    assert "10 MiB" in error.message


def test_exactly_the_limit_passes_the_size_check() -> None:
    padded = PORTRAIT.read_bytes().ljust(MAX_PHOTO_BYTES, b"\x00")
    assert validate_photo(padded).format == "jpeg"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"hello, this is not a photo\n", None),
        (encoded("GIF"), "GIF"),
        (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>', "SVG"),
        (encoded("BMP"), "BMP"),
    ],
)
def test_other_formats_are_unsupported(data: bytes, named: str | None) -> None:
    error = rejected(data)
    assert (error.code, error.status) == ("unsupported_format", 415)
    assert "JPEG, PNG and WebP" in error.message
    if named:
        assert named in error.message


def test_gif_named_jpg_is_still_refused() -> None:
    assert rejected(encoded("GIF")).status == 415


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (30_000, 30_000),  # beyond Pillow's own DecompressionBombError
        (10_000, 10_000),  # where Pillow only warns
        (8_000, 6_000),  # under Pillow's limits, over ours
    ],
)
def test_pixel_bomb_is_refused_without_decoding(
    width: int, height: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def decode_forbidden(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded before the pixel count was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decode_forbidden)
    data = png_declaring(width, height)
    assert len(data) < 100
    error = rejected(data)
    assert (error.code, error.status) == ("too_many_pixels", 422)
    assert f"{MAX_PIXELS // 1_000_000} megapixels" in error.message
    with pytest.raises(PhotoRejected):
        oriented_rgb(data)


def test_largest_allowed_header_is_not_a_bomb() -> None:
    # 40 megapixels exactly passes the pixel check; the missing pixel data then fails decoding.
    assert rejected(png_declaring(8_000, 5_000)).code == "corrupt_image"


def test_truncated_jpeg_is_corrupt() -> None:
    data = PORTRAIT.read_bytes()
    error = rejected(data[: len(data) // 2])
    assert (error.code, error.status) == ("corrupt_image", 422)
    assert "JPEG" in error.message


def test_truncated_png_is_corrupt() -> None:
    data = encoded("PNG", size=(300, 300))
    assert rejected(data[: len(data) - 30]).code == "corrupt_image"


def test_garbage_after_magic_bytes_is_corrupt() -> None:
    assert rejected(b"\xff\xd8\xff" + b"\x00" * 64).code == "corrupt_image"
    assert rejected(b"RIFF\x10\x00\x00\x00WEBPVP8 garbage").code == "corrupt_image"


def test_truncated_images_are_never_loaded() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
