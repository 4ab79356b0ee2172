"""Photos for the demo, the tests, the benchmarks and the load test: the bundled portrait.

A public-domain NASA portrait (scikit-image's astronaut) ships in tests/fixtures. Each call
gives the same picture with new bytes, so the lab stores it as a new content-addressed
original and the worker cuts it out again.
"""

from __future__ import annotations

import io
import struct
import uuid
from dataclasses import dataclass
from functools import cache

from PIL import Image

from reviewlab_lab.paths import REPO

PORTRAIT = REPO / "tests" / "fixtures" / "portrait.jpg"
EXIF_IMAGE_DESCRIPTION = 0x010E


def portrait(tag: str | None = None) -> bytes:
    """The portrait with a JPEG comment (TAG, else a random one) after its start marker."""
    data = PORTRAIT.read_bytes()
    text = (tag or uuid.uuid4().hex).encode()
    comment = b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text
    return data[:2] + comment + data[2:]


@dataclass(frozen=True)
class Variant:
    """A shopper's photo: the portrait at another size, in another format."""

    side: int  # the longer side, in pixels
    format: str  # Pillow's name: JPEG, PNG or WEBP

    @property
    def content_type(self) -> str:
        return f"image/{self.format.lower()}"

    @property
    def filename(self) -> str:
        return f"portrait-{self.side}.{'jpg' if self.format == 'JPEG' else self.format.lower()}"


# What phones send: mostly JPEG at a few sizes, some PNG screenshots and WebP.
VARIANTS = (
    Variant(512, "JPEG"),
    Variant(1024, "JPEG"),
    Variant(2048, "JPEG"),
    Variant(640, "PNG"),
    Variant(768, "WEBP"),
)


@cache
def _scaled(side: int) -> Image.Image:
    with Image.open(PORTRAIT) as image:
        scale = side / max(image.size)
        size = (round(image.width * scale), round(image.height * scale))
        return image.convert("RGB").resize(size, Image.Resampling.LANCZOS)


def portrait_as(variant: Variant, tag: str | None = None) -> bytes:
    """The portrait as VARIANT, TAG (else a random one) in its EXIF: new bytes each call."""
    exif = Image.Exif()
    exif[EXIF_IMAGE_DESCRIPTION] = tag or uuid.uuid4().hex
    out = io.BytesIO()
    options: dict[str, int] = {"quality": 90} if variant.format != "PNG" else {"compress_level": 1}
    _scaled(variant.side).save(out, variant.format, exif=exif.tobytes(), **options)
    return out.getvalue()
