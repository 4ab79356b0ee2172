"""The segmentation worker's settings."""

from __future__ import annotations

from pathlib import Path

from reviewlab_common.settings import NodeSettings


class WorkerSettings(NodeSettings):
    # REVIEWLAB_MODEL: the portrait model file; the lab names it in the worker's environment.
    model: Path
    # Attempts before a job goes to the dead-letter stream and the photo is marked failed.
    max_attempts: int = 3
    # Backoff before attempt n+1: base * 4**(n-1) seconds (1 s, 4 s, ...).
    backoff_base_s: float = 1.0
    # A job pending this long on a consumer that stopped answering is claimed by another.
    reclaim_idle_ms: int = 15_000
    relay_interval_s: float = 0.25
    # Longest side the photo is scaled to before segmentation.
    max_side: int = 1024

    def model_path(self) -> Path:
        return self.model
