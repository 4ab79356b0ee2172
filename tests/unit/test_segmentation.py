"""The portrait cutout: the real TFLite model on a real portrait, no network."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from reviewlab_common.images import PhotoRejected, oriented_rgb
from reviewlab_lab import install, photos
from reviewlab_worker.segmentation import (
    MASK_HIGH,
    MASK_LOW,
    STAGES,
    Cutout,
    PortraitSegmenter,
    _fit,
    alpha_at,
)

PORTRAIT = Path(__file__).resolve().parents[1] / "fixtures" / "portrait.jpg"


def model_path() -> Path:
    return install.current().model


@pytest.fixture(scope="module")
def segmenter() -> Iterator[PortraitSegmenter]:
    path = model_path()
    if not path.is_file():
        pytest.fail(f"segmentation model missing at {path}: run `make setup` to fetch it")
    yield PortraitSegmenter(path)


@pytest.fixture(scope="module")
def portrait_cutout(segmenter: PortraitSegmenter) -> Cutout:
    return segmenter.cutout(PORTRAIT.read_bytes())


def alpha_of(cutout: Cutout) -> np.ndarray:
    """The cutout's mask stretched over its photo, as the shop page draws it."""
    with Image.open(io.BytesIO(cutout.photo_jpeg)) as photo:
        assert photo.format == "JPEG"
        assert photo.mode == "RGB"
        assert photo.size == (cutout.width, cutout.height)
    return np.asarray(alpha_at(cutout.mask_png, (cutout.width, cutout.height)))


def webp_alpha_of_before(segmenter: PortraitSegmenter, data: bytes) -> np.ndarray:
    """The alpha of the cutout as the worker made it before the split: one WebP with alpha."""
    image = _fit(oriented_rgb(data, draft_side=1024), 1024)  # decoding has not changed
    small = image.resize(segmenter.input_size, Image.Resampling.BILINEAR)
    mask = segmenter.infer_only(np.asarray(small, dtype=np.float32)[np.newaxis] / 255.0)
    alpha = np.clip((mask - MASK_LOW) * (1.0 / (MASK_HIGH - MASK_LOW)), 0.0, 1.0)
    small = Image.fromarray(np.rint(alpha * 255.0).astype(np.uint8))
    cut = image.convert("RGBA")
    cut.putalpha(small.resize(image.size, Image.Resampling.BILINEAR))
    buffer = io.BytesIO()
    cut.save(buffer, format="WEBP", quality=80, method=0, alpha_quality=100)
    with Image.open(buffer) as webp:
        return np.asarray(webp.getchannel("A"))


def test_cutout_is_a_jpeg_and_a_png_mask(portrait_cutout: Cutout) -> None:
    assert portrait_cutout.photo_jpeg.startswith(b"\xff\xd8\xff")
    assert portrait_cutout.mask_png.startswith(b"\x89PNG\r\n\x1a\n")
    assert (portrait_cutout.width, portrait_cutout.height) == (512, 512)
    with Image.open(io.BytesIO(portrait_cutout.mask_png)) as mask:
        assert (mask.mode, mask.size) == ("LA", (256, 256))
        assert mask.getchannel("L").getextrema() == (0, 0)  # black: the alpha is the mask
    assert alpha_of(portrait_cutout).shape == (512, 512)


@pytest.mark.parametrize("variant", photos.VARIANTS, ids=lambda v: f"{v.side}-{v.format}")
def test_mask_matches_the_webp_cutouts_alpha(
    segmenter: PortraitSegmenter, variant: photos.Variant
) -> None:
    data = photos.portrait_as(variant, tag="mask iou")
    cutout = segmenter.cutout(data)
    before = webp_alpha_of_before(segmenter, data) >= 128
    after = alpha_of(cutout) >= 128
    iou = (before & after).sum() / (before | after).sum()
    assert iou >= 0.98, f"IoU {iou:.4f} of the new mask against the WebP's alpha"


def test_astronaut_is_kept_and_background_cut_away(portrait_cutout: Cutout) -> None:
    alpha = alpha_of(portrait_cutout)
    # The fixture: the astronaut's face and orange suit fill the middle; the top-right corner
    # is plain grey studio backdrop beyond the shuttle model.
    face = alpha[80:160, 190:260]
    chest = alpha[200:300, 160:300]
    corner = alpha[0:64, 448:512]
    assert (face > 200).mean() > 0.9
    assert (chest > 200).mean() > 0.9
    assert (corner < 30).mean() > 0.9


def test_timings_cover_every_stage(portrait_cutout: Cutout) -> None:
    assert tuple(portrait_cutout.timings) == STAGES == ("decode", "infer", "mask", "encode")
    assert all(seconds >= 0 for seconds in portrait_cutout.timings.values())


def test_large_photo_is_scaled_to_max_side(segmenter: PortraitSegmenter) -> None:
    with Image.open(PORTRAIT) as image:
        wide = image.resize((1200, 600))
    buffer = io.BytesIO()
    wide.save(buffer, format="JPEG", quality=90)
    cutout = segmenter.cutout(buffer.getvalue(), max_side=400)
    assert (cutout.width, cutout.height) == (400, 200)


def test_exif_orientation_is_applied(segmenter: PortraitSegmenter) -> None:
    with Image.open(PORTRAIT) as image:
        sideways = image.rotate(90, expand=True).crop((0, 0, 512, 300))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    sideways.save(buffer, format="JPEG", exif=exif.tobytes())
    cutout = segmenter.cutout(buffer.getvalue())
    assert (cutout.width, cutout.height) == (300, 512)


def test_infer_only_returns_the_mask(segmenter: PortraitSegmenter) -> None:
    with Image.open(PORTRAIT) as image:
        tensor = segmenter.input_tensor(image.convert("RGB"))
    assert tensor.shape == (1, 256, 256, 3)
    assert tensor.dtype == np.float32
    mask = segmenter.infer_only(tensor)
    assert mask.shape == (256, 256)
    assert float(mask.min()) >= 0.0
    assert float(mask.max()) <= 1.0


def test_not_a_photo_is_rejected(segmenter: PortraitSegmenter) -> None:
    with pytest.raises(PhotoRejected) as caught:
        segmenter.cutout(b"GIF89a not really")
    assert caught.value.status == 415


def test_an_upright_jpeg_that_fits_is_the_cutouts_photo_byte_for_byte(
    segmenter: PortraitSegmenter,
) -> None:
    data = PORTRAIT.read_bytes()
    assert segmenter.cutout(data).photo_jpeg == data
    # Too big for max_side: scaled and encoded again, so not the same bytes.
    smaller = segmenter.cutout(data, max_side=400)
    assert smaller.photo_jpeg != data and (smaller.width, smaller.height) == (400, 400)
