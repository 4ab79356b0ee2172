"""Reading wrk's report: its latency column pads a one-letter unit with a space."""

from __future__ import annotations

import pytest
from reviewlab_lab import wrk

REPORT = """Running 3s test @ http://127.0.0.10:8080/healthz
  2 threads and 32 connections
  Latency Distribution
     50%  194.80ms
     75%  273.22ms
     90%  376.30ms
     99%    1.38s{PAD}
  299 requests in 3.03s, 104.53KB read
  Socket errors: connect 0, read 0, write 0, timeout 5
Requests/sec:     98.70
""".format(PAD=" ")


def test_a_report_with_seconds_and_socket_errors_is_read() -> None:
    result = wrk.parse("one", REPORT)
    assert (result.per_second, result.p50_ms, result.p99_ms) == (98.70, 194.80, 1380.0)
    assert result.errors == 5


def test_a_report_without_its_percentiles_is_refused_with_the_output() -> None:
    with pytest.raises(RuntimeError, match="could not read wrk's output for one"):
        wrk.parse("one", REPORT.replace("     99%    1.38s \n", ""))
