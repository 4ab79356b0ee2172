"""Tracing's pure parts: W3C traceparent parsing, which spans may start a trace, the stream
entry's time, the terminal waterfall."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind
from reviewlab_common import tracing
from reviewlab_lab import waterfall

VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_valid_traceparent_is_read() -> None:
    parsed = tracing.parse_traceparent(VALID)
    assert parsed == tracing.TraceParent(
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", sampled=True
    )
    unsampled = tracing.parse_traceparent(VALID[:-2] + "00")
    assert unsampled is not None and not unsampled.sampled


def test_a_later_version_may_carry_more_fields() -> None:
    parsed = tracing.parse_traceparent("01-" + VALID[3:] + "-what-comes-next")
    assert parsed is not None and parsed.trace_id == "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        VALID.upper(),  # hex is lower-case
        VALID + "-extra",  # version 00 has exactly four fields
        "ff" + VALID[2:],  # version ff is forbidden
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # all-zero parent id
        "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",  # short trace id
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",  # short parent id
    ],
)
def test_a_malformed_traceparent_is_ignored(value: str | None) -> None:
    assert tracing.parse_traceparent(value) is None
    assert tracing.context_of(value) is None


def test_only_requests_and_jobs_start_a_trace() -> None:
    sampler = tracing.sampler(1.0)
    decisions = {
        kind: sampler.should_sample(None, 0x0AF7651916CD43DD8448EB211C80319C, "x", kind).decision
        for kind in SpanKind
    }
    kept = {kind for kind, decision in decisions.items() if decision == Decision.RECORD_AND_SAMPLE}
    assert kept == {SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.PRODUCER}


def test_a_ratio_of_zero_keeps_no_new_trace() -> None:
    sampler = tracing.sampler(0.0)
    result = sampler.should_sample(None, 0x0AF7651916CD43DD8448EB211C80319C, "x", SpanKind.SERVER)
    assert result.decision == Decision.DROP


def test_a_stream_entry_id_leads_with_its_milliseconds() -> None:
    assert tracing.stream_entry_ns("1764670000123-4") == 1_764_670_000_123_000_000
    assert tracing.stream_entry_ns("not-an-id") is None


def span(
    span_id: str, parent: str | None, name: str, start: int, duration: int, service: str = "web-1"
) -> dict[str, object]:
    raw: dict[str, object] = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "id": span_id,
        "name": name,
        "timestamp": start,
        "duration": duration,
        "localEndpoint": {"serviceName": service},
    }
    if parent:
        raw["parentId"] = parent
    return raw


TRACE = [
    span("c", "a", "insert", 1_050_000, 2_000, "web-1"),
    span("a", "f00d", "post /api/reviews", 1_000_000, 100_000),  # its parent is the vIP's
    span("d", "a", "relay publish", 1_090_000, 10_000, "worker-1"),
    span("b", "a", "select", 1_010_000, 1_000),
    span("e", "d", "photo job", 1_120_000, 80_000, "worker-1"),
]


def test_the_waterfall_lists_spans_in_call_order_each_below_its_parent() -> None:
    order = [(depth, s.name) for depth, s in waterfall.in_call_order(map(waterfall.Span.of, TRACE))]
    assert order == [
        (0, "post /api/reviews"),
        (1, "select"),
        (1, "insert"),
        (1, "relay publish"),
        (2, "photo job"),
    ]


def test_the_waterfall_draws_each_span_on_one_clock() -> None:
    lines = waterfall.render(TRACE, width=20)
    assert len(lines) == 5
    root, *_, job = lines
    assert root.startswith("     0.0 ms " + "█" * 10 + "·" * 10)
    assert "web-1    post /api/reviews  100.0 ms" in root
    # The job starts 120 ms into a 200 ms trace and runs to its end: the last 8 cells.
    assert job.startswith("   120.0 ms " + "·" * 12 + "█" * 8)
    assert job.endswith("worker-1     photo job  80.0 ms")


def test_the_summary_counts_spans_time_and_nodes() -> None:
    assert waterfall.summary(TRACE) == (5, 200.0, ["web-1", "worker-1"])
    assert waterfall.render([]) == []
