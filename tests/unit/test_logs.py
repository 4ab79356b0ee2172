"""The Python nodes' log lines (web servers, workers) start with their time in ISO 8601 UTC."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from reviewlab_common.logs import IsoFormatter

ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_a_record_starts_with_its_utc_time_in_milliseconds() -> None:
    record = logging.LogRecord("relay", logging.WARNING, __file__, 1, "moved %d jobs", (3,), None)
    record.created = datetime(2026, 12, 2, 6, 10, 29, 123456, tzinfo=UTC).timestamp()
    assert IsoFormatter().format(record) == "2026-12-02T06:10:29.123Z WARNING relay: moved 3 jobs"


def test_any_record_formats_as_iso_first() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    assert re.match(ISO_UTC + " INFO x: m$", IsoFormatter().format(record))
