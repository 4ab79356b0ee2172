"""Review photos: validated by their content, never by their name or declared content type."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final, Literal

from PIL import Image, ImageFile, ImageOps

PhotoFormat = Literal["jpeg", "png", "webp"]

MAX_PHOTO_BYTES: Final = 10 * 1024 * 1024
MAX_PIXELS: Final = 40_000_000

_ORIENTATION_TAG: Final = 0x0112
# EXIF orientations 5-8 rotate by a quarter turn, so the displayed photo swaps width and height.
_QUARTER_TURNS: Final = frozenset({5, 6, 7, 8})
# Everything Pillow may raise on a damaged file once the format is known. EOFError and
# struct.error are not OSError, yet plugins let them through on short or garbled headers.
_DECODE_ERRORS: Final = (OSError, SyntaxError, ValueError, EOFError, struct.error)


@dataclass(frozen=True)
class _Format:
    name: PhotoFormat
    pillow_name: str
    content_type: str
    extension: str
    label: str


_FORMATS: Final[dict[PhotoFormat, _Format]] = {
    "jpeg": _Format("jpeg", "JPEG", "image/jpeg", "jpg", "JPEG"),
    "png": _Format("png", "PNG", "image/png", "png", "PNG"),
    "webp": _Format("webp", "WEBP", "image/webp", "webp", "WebP"),
}


class PhotoRejected(Exception):
    """The upload is not a photo the shop accepts; `code` and `status` map it to HTTP."""

    def __init__(self, code: str, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ValidatedPhoto:
    format: PhotoFormat
    content_type: str
    extension: str  # without the dot: "jpg", "png", "webp"
    width: int  # as displayed, after EXIF orientation
    height: int
    sha256: str  # hex digest of the uploaded bytes


def _sniff(data: bytes) -> PhotoFormat | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def _guess_other(data: bytes) -> str | None:
    """Name a common format we refuse, so the message can say what the file really is."""
    head = data[:512].lstrip().lower()
    if head.startswith((b"gif87a", b"gif89a")):
        return "a GIF"
    if b"<svg" in head:
        return "an SVG drawing"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        return "a HEIC photo"
    if data[4:12] == b"ftypavif":
        return "an AVIF image"
    if head.startswith(b"%pdf"):
        return "a PDF document"
    if data.startswith(b"BM"):
        return "a BMP image"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "a TIFF image"
    return None


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.0f} megapixels"


def _too_many_pixels(width: int | None = None, height: int | None = None) -> PhotoRejected:
    limit = _megapixels(MAX_PIXELS)
    if width is None or height is None:
        size = "far more than"
    else:
        size = f"{width}x{height} pixels ({_megapixels(width * height)}); that is more than"
    return PhotoRejected(
        "too_many_pixels",
        f"The photo is {size} the {limit} we accept. Nothing was saved. "
        "Resize it (a long side of 4000 pixels is plenty) and upload it again.",
    )


def _corrupt(fmt: _Format) -> PhotoRejected:
    return PhotoRejected(
        "corrupt_image",
        f"The file starts like a {fmt.label} image but could not be read to the end; it may be "
        "damaged or only partly uploaded. Nothing was saved. Upload the original photo again.",
    )


@contextmanager
def _bombs_refused() -> Iterator[None]:
    # Pillow only warns between MAX_IMAGE_PIXELS and twice that; as an error the warning is
    # refused like the DecompressionBombError above it. MAX_PIXELS sits below both, so every
    # image that trips them is one we refuse anyway. catch_warnings swaps the process-wide
    # filters; interleaved threads can at worst leave this one narrow filter in place.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _too_many_pixels() from exc


def _check_bytes(data: bytes) -> _Format:
    if not data:
        raise PhotoRejected(
            "empty_file", "The file is empty (0 bytes). Choose a photo and upload it again."
        )
    if len(data) > MAX_PHOTO_BYTES:
        raise PhotoRejected(
            "too_large",
            # The caller may stop reading one byte past the limit: say "more than", not a size.
            f"The file is larger than {MAX_PHOTO_BYTES // 2**20} MiB, the most a photo may be. "
            "Nothing was saved. Export a smaller copy "
            "(or crop it) and upload it again.",
            status=413,
        )
    name = _sniff(data)
    if name is None:
        what = _guess_other(data) or "not a JPEG, PNG or WebP photo"
        raise PhotoRejected(
            "unsupported_format",
            f"The file is {what}; we accept JPEG, PNG and WebP photos only, whatever the file "
            "name says. Nothing was saved. Save the photo as JPEG and upload it again.",
            status=415,
        )
    return _FORMATS[name]


def _open_decoded(data: bytes, *, draft_side: int | None = None) -> tuple[_Format, Image.Image]:
    """Check size, format and pixel count, then decode fully; every failure is PhotoRejected."""
    fmt = _check_bytes(data)
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Another import turned this on; a half-uploaded photo would then pass as grey pixels.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    with _bombs_refused():
        try:
            # Image.open reads the header only: the pixel count is known before any decoding.
            image = Image.open(io.BytesIO(data), formats=[fmt.pillow_name])
        except _DECODE_ERRORS as exc:
            raise _corrupt(fmt) from exc
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise _too_many_pixels(width, height)
        try:
            if draft_side is not None and fmt.name == "jpeg":
                # The JPEG decoder scales by 1/2, 1/4 or 1/8 on the way: big photos decode fast.
                image.draft("RGB", (draft_side, draft_side))
            image.load()
        except _DECODE_ERRORS as exc:
            raise _corrupt(fmt) from exc
    return fmt, image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) else 1


def validate_photo(data: bytes) -> ValidatedPhoto:
    """Accept a JPEG, PNG or WebP photo by its content, or raise PhotoRejected saying why."""
    fmt, image = _open_decoded(data)
    with image:
        width, height = image.size
        if _orientation(image) in _QUARTER_TURNS:
            width, height = height, width
    return ValidatedPhoto(
        format=fmt.name,
        content_type=fmt.content_type,
        extension=fmt.extension,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def oriented_rgb(data: bytes, *, draft_side: int | None = None) -> Image.Image:
    """Decode a photo upright (EXIF orientation applied) as RGB; raise PhotoRejected if unfit.

    With `draft_side`, a JPEG may come back smaller, but never below that side: callers that
    downscale anyway save most of the decoding.
    """
    fmt, image = _open_decoded(data, draft_side=draft_side)
    with image:
        try:
            upright = ImageOps.exif_transpose(image) if _orientation(image) != 1 else image
            if upright.mode == "P" and "transparency" in upright.info:
                # Pillow warns when palette transparency is dropped straight to RGB.
                upright = upright.convert("RGBA")
            return upright.convert("RGB")
        except _DECODE_ERRORS as exc:
            raise _corrupt(fmt) from exc
