"""Where a segmentation job spends its time, per photo size, next to the model's raw speed.

Run: python tests/bench/bench_worker.py [--runs N] [--model PATH] [--threads N]
Not a test: it prints a table of median milliseconds per stage.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from PIL import Image
from reviewlab_lab import install, photos
from reviewlab_worker.segmentation import STAGES, PortraitSegmenter

SIDES = (512, 1024, 2048)
MAX_RUNS = 200


def default_model_path() -> Path:
    return install.current().model


def runs_count(text: str) -> int:
    runs = int(text)
    if not 1 <= runs <= MAX_RUNS:
        raise argparse.ArgumentTypeError(f"--runs must be between 1 and {MAX_RUNS}, got {runs}")
    return runs


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


Row = tuple[int, int, dict[str, float], float, int]  # side, JPEG in, medians, x raw, cutout bytes


def measure(segmenter: PortraitSegmenter, runs: int, max_side: int) -> tuple[float, list[Row]]:
    """Raw inference's median ms, and per photo size the median ms of every stage."""
    with Image.open(photos.PORTRAIT) as image:
        tensor = segmenter.input_tensor(image.convert("RGB"))
    segmenter.infer_only(tensor)  # the first invoke sets up XNNPACK; keep it out of the numbers
    raw: list[float] = []
    progress(f"raw inference (invoke only, 256x256 input): {runs} runs")
    for _ in range(runs):
        raw.append(segmenter.invoke_seconds(tensor))
    raw_ms = median_ms(raw)

    rows: list[Row] = []
    for side in SIDES:
        data = photos.portrait_as(photos.Variant(side, "JPEG"), tag=f"bench-worker {side}")
        segmenter.cutout(data, max_side=max_side)  # warm-up, not counted
        samples: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
        cutout_size = 0
        for run in range(1, runs + 1):
            progress(f"  {side} px input: run {run}/{runs}")
            started = time.perf_counter()
            cutout = segmenter.cutout(data, max_side=max_side)
            samples["total"].append(time.perf_counter() - started)
            for stage in STAGES:
                samples[stage].append(cutout.timings[stage])
            cutout_size = len(cutout.photo_jpeg) + len(cutout.mask_png)
        medians = {stage: median_ms(values) for stage, values in samples.items()}
        rows.append((side, len(data), medians, medians["total"] / raw_ms, cutout_size))
    return raw_ms, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=runs_count, default=10, help="runs per size (default 10)")
    parser.add_argument("--model", type=Path, help="model file (default: from the topology)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads (default 1)")
    parser.add_argument("--max-side", type=int, default=1024, help="worker's max_side (1024)")
    args = parser.parse_args(argv)

    model = args.model or default_model_path()
    progress(f"loading {model} with {args.threads} thread(s)")
    segmenter = PortraitSegmenter(model, num_threads=args.threads)
    raw_ms, rows = measure(segmenter, args.runs, args.max_side)

    columns = (*STAGES, "total")
    print(
        f"\nmedian ms over {args.runs} runs, max_side {args.max_side}, "
        f"{args.threads} interpreter thread(s)"
    )
    header = f"{'input':>10} {'jpeg KB':>8} " + " ".join(f"{c:>8}" for c in columns)
    print(header + f" {'x raw':>7} {'out KB':>8}")
    for side, jpeg_bytes, medians, ratio, cutout_size in rows:
        cells = " ".join(f"{medians[c]:8.1f}" for c in columns)
        print(
            f"{side:>7} px {jpeg_bytes // 1024:>8} {cells} {ratio:6.1f}x {cutout_size // 1024:>8}"
        )
    print(f"raw inference (invoke only, 256x256): {raw_ms:.2f} ms median")
    return 0


if __name__ == "__main__":
    sys.exit(main())
