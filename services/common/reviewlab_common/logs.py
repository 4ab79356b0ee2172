"""How every lab process written in Python formats its log lines: ISO 8601 time in UTC first."""

from __future__ import annotations

import logging
from datetime import UTC, datetime


class IsoFormatter(logging.Formatter):
    """Log records as `2026-12-02T05:20:01.123Z LEVEL logger: message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure(level: int = logging.INFO) -> None:
    """Every line of the root logger (and what propagates to it) starts with its ISO time."""
    handler = logging.StreamHandler()
    handler.setFormatter(IsoFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
