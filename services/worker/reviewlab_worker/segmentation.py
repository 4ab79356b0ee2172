"""Portrait cutouts: a TFLite selfie-segmentation model turns a review photo into a cutout.

A cutout is two objects: the upright photo as a JPEG and the person's mask as a greyscale
PNG at the model's resolution. The shop page lays the mask over the photo (CSS mask-image,
stretched to the photo's box), so the browser does the upsampling and compositing that made
a WebP with alpha cost 60 ms or more per job.

An interpreter is not thread-safe. Each PortraitSegmenter owns one and serialises its calls
with a lock; the worker builds one segmenter per process and runs one job at a time in it,
so the lock is never contended there. For parallelism, run more worker processes.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from reviewlab_common.images import oriented_rgb

Mask = npt.NDArray[np.float32]

STAGES: Final = ("decode", "infer", "mask", "encode")

# Encoders, measured on a 1024 px cutout of the test portrait on a 2-core machine (median ms):
#   WebP RGBA (quality 80, method 0, lossless alpha): 54-62 ms, 106 KB: most of the job.
#   WebP of the RGB alone, method 0: 24 ms, 80 KB.   JPEG quality 85: 3.2 ms, 142 KB.
#   the 256 px mask as a PNG (the alpha of a black image): 1.4 ms, 6 KB.
# The JPEG + PNG pair costs 4.6 ms for ~40% more bytes than the WebP, which the CDN serves
# once and caches. The mask keeps every one of its 256 levels (PNG is lossless), so the soft
# edge is the one the WebP's lossless alpha carried.
JPEG_QUALITY: Final = 85

# The sigmoid's long tails leave a faint haze of background around the person. Stretching
# [LOW, HIGH] to [0, 1] clears the haze yet keeps a soft edge of a few pixels.
ORIENTATION_TAG: Final = 0x0112  # EXIF; 1 is upright
MASK_LOW: Final = 0.2
MASK_HIGH: Final = 0.8


class ModelMissing(FileNotFoundError):
    """The model file is not in the cache; the message says how to fetch it."""


@dataclass(frozen=True)
class Cutout:
    photo_jpeg: bytes  # the upright photo, width x height
    mask_png: bytes  # greyscale, the model's resolution: stretch it over the photo
    width: int
    height: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage in STAGES


class PortraitSegmenter:
    """One TFLite interpreter for the selfie-segmentation model and the pipeline around it."""

    def __init__(self, model_path: Path, num_threads: int = 1) -> None:
        if not model_path.is_file():
            raise ModelMissing(
                f"segmentation model not found at {model_path}; run `make setup` to fetch it"
            )
        self._lock = threading.Lock()
        self._interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self._interpreter.allocate_tensors()
        source = self._interpreter.get_input_details()[0]
        self._input_index: int = source["index"]
        _, height, width, _ = (int(n) for n in source["shape"])
        self.input_size: tuple[int, int] = (width, height)
        self._output_index: int = self._interpreter.get_output_details()[0]["index"]

    def input_tensor(self, image: Image.Image) -> npt.NDArray[np.float32]:
        """Resize an RGB image to the model's input and scale it to [0, 1], shape (1, H, W, 3)."""
        # The model is trained on whole frames squeezed to its input, so no letterboxing.
        # reducing_gap: a box reduce by whole factors first, then bilinear; 3.3 instead of
        # 4.9 ms from 1024 px, and the mask agrees with the plain resize's (IoU >= 0.98).
        small = image.resize(self.input_size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        pixels = np.asarray(small, dtype=np.float32)
        pixels *= 1.0 / 255.0
        return pixels[np.newaxis]

    def infer_only(self, tensor: npt.NDArray[np.float32]) -> Mask:
        """Run the model alone on a prepared input tensor; return the (H, W) mask in [0, 1]."""
        with self._lock:
            self._interpreter.set_tensor(self._input_index, tensor)
            self._interpreter.invoke()
            output = self._interpreter.get_tensor(self._output_index)
        return np.asarray(output, dtype=np.float32)[0, :, :, 0]

    def invoke_seconds(self, tensor: npt.NDArray[np.float32]) -> float:
        """Time the model's invoke alone (input already in place): the floor for one job."""
        with self._lock:
            self._interpreter.set_tensor(self._input_index, tensor)
            started = time.perf_counter()
            self._interpreter.invoke()
            return time.perf_counter() - started

    def cutout(self, data: bytes, *, max_side: int = 1024) -> Cutout:
        """Cut the person out of a photo: an upright JPEG at most max_side wide/high and its mask.

        Raises reviewlab_common.images.PhotoRejected if the bytes are not a usable photo.
        """
        if max_side < 1:
            raise ValueError(f"max_side must be at least 1, got {max_side}")
        timings: dict[str, float] = {}
        started = time.perf_counter()

        as_is = _jpeg_size_if_servable(data, max_side)
        if as_is:
            # The photo is already what the cutout shows: only the model's input is decoded,
            # at a quarter or half of the size by the JPEG decoder's own scaling.
            image = oriented_rgb(data, draft_side=max(self.input_size))
        else:
            image = _fit(oriented_rgb(data, draft_side=max_side), max_side)
        timings["decode"], started = _lap(started)

        mask = self.infer_only(self.input_tensor(image))
        timings["infer"], started = _lap(started)

        levels = mask_levels(mask)
        timings["mask"], started = _lap(started)

        mask_png = io.BytesIO()
        levels.save(mask_png, format="PNG")
        if as_is:
            photo_jpeg, (width, height) = data, as_is
        else:
            photo = io.BytesIO()
            image.save(photo, format="JPEG", quality=JPEG_QUALITY)
            photo_jpeg, (width, height) = photo.getvalue(), image.size
        timings["encode"], _ = _lap(started)
        return Cutout(
            photo_jpeg=photo_jpeg,
            mask_png=mask_png.getvalue(),
            width=width,
            height=height,
            timings=timings,
        )


def _lap(started: float) -> tuple[float, float]:
    now = time.perf_counter()
    return now - started, now


def _jpeg_size_if_servable(data: bytes, max_side: int) -> tuple[int, int] | None:
    """The size of an RGB JPEG that is upright and fits MAX_SIDE, read from its header.

    Such an original is the cutout's photo byte for byte (its key, hence its bytes, are fixed
    by the original's). Anything else, or anything odd, goes through the full decode, which
    also says why a photo is unusable.
    """
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG"]) as header:
            servable = (
                header.mode == "RGB"
                and max(header.size) <= max_side
                and header.getexif().get(ORIENTATION_TAG, 1) == 1
            )
            return header.size if servable else None
    except (OSError, ValueError, SyntaxError):
        return None


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink so the longer side is at most max_side; never enlarge."""
    longest = max(image.size)
    if longest <= max_side:
        return image
    scale = max_side / longest
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # reducing_gap first halves by whole factors (cheap box reduce), then filters the rest.
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def mask_levels(mask: Mask) -> Image.Image:
    """The model's mask as the alpha of a black image, its haze cleared: 255 keeps a pixel.

    Alpha, not grey levels: CSS masks read an image's alpha by default (-webkit-mask-image
    only ever does), and the constant black channel costs a few hundred bytes.
    """
    alpha = np.clip((mask - MASK_LOW) * (1.0 / (MASK_HIGH - MASK_LOW)), 0.0, 1.0)
    levels = np.zeros((*alpha.shape, 2), dtype=np.uint8)
    levels[..., 1] = np.rint(alpha * 255.0)
    return Image.fromarray(levels)


def alpha_at(mask_png: bytes, size: tuple[int, int]) -> Image.Image:
    """A stored mask's alpha stretched over a photo of SIZE, bilinear, as a browser draws it."""
    with Image.open(io.BytesIO(mask_png)) as levels:
        return levels.getchannel("A").resize(size, Image.Resampling.BILINEAR)
