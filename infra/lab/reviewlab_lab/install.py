"""Where the lab's software lives (venv, binaries, model cache), read from infra/install.toml."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from reviewlab_lab.paths import REPO

INSTALL_PATH = REPO / "infra" / "install.toml"
MODEL_NAME = "selfie_segmentation.tflite"


@dataclass(frozen=True)
class Install:
    venv: Path
    run_user: str
    cache_dir: Path
    minio_version: str
    postgres_bin: Path
    zipkin_version: str
    charts_version: str

    @property
    def bin(self) -> Path:
        """The venv's scripts: reviewlab, patroni, uvicorn, supervisord."""
        return self.venv / "bin"

    @property
    def minio(self) -> Path:
        return self.cache_dir / f"minio-{self.minio_version}" / "minio"

    @property
    def zipkin_jar(self) -> Path:
        return self.cache_dir / f"zipkin-{self.zipkin_version}" / "zipkin-server-exec.jar"

    @property
    def model(self) -> Path:
        return self.cache_dir / "models" / MODEL_NAME

    @property
    def charts(self) -> Path:
        """The folder holding the console's vendored chart library (uPlot's dist files)."""
        return self.cache_dir / f"uplot-{self.charts_version}"


@cache
def current() -> Install:
    with INSTALL_PATH.open("rb") as handle:
        table = tomllib.load(handle)
    return Install(
        venv=Path(table["venv"]),
        run_user=str(table["run_user"]),
        cache_dir=Path(table["cache_dir"]),
        minio_version=str(table["minio_version"]),
        postgres_bin=Path(table["postgres_bin"]),
        zipkin_version=str(table["zipkin_version"]),
        charts_version=str(table["charts_version"]),
    )
