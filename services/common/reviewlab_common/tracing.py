"""Distributed tracing: one OpenTelemetry setup for the services on the shop's path (the web
servers, the relay and the workers; the console only watches and is not traced).

Spans go to the topology's `tracing` node (Zipkin) as Zipkin's JSON v2, from a background
thread with a bounded queue: a store that is down or slow costs a request nothing, its spans
are dropped. (Zipkin takes OTLP only through a module that is not published as a release;
its own JSON API is what every Zipkin serves.) The maintained instrumentations make the
spans of Postgres, Redis, S3 and HTTP calls; the lab adds spans only for its own steps.

A new trace starts only at a request or a job: a client call outside any trace (a readiness
probe, the relay's poll, the shard map's watch) is not kept. A trace that came from upstream
is kept as the share [tracing] sample_ratio says, decided on its trace id, so every hop of a
trace decides the same way.
"""

from __future__ import annotations

import logging
import platform
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from reviewlab_common.topology import Node, Topology

log = logging.getLogger(__name__)
TRACEPARENT = "traceparent"
# Every API response names its trace here (and an error body carries it too).
TRACE_ID_HEADER = "x-trace-id"
# Zipkin's span intake and the UI's page of one trace.
SPANS_PATH = "/api/v2/spans"
# Bounds of the export: spans waiting for the store, how often they leave, how long one
# batch may take before it is given up (the store down: dropped, never retried).
QUEUE_SPANS = 2048
EXPORT_EVERY_MS = 1000
EXPORT_TIMEOUT_S = 2
# The kinds of span that may start a trace (a request, a job on the stream, a relayed job).
ROOT_KINDS = frozenset({SpanKind.SERVER, SpanKind.CONSUMER, SpanKind.PRODUCER})
# A W3C traceparent: version-traceid-parentid-flags, lower-case hex.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_PROPAGATOR = TraceContextTextMapPropagator()
tracer = trace.get_tracer("reviewlab")


@dataclass(frozen=True)
class TraceParent:
    trace_id: str
    parent_id: str
    sampled: bool


def parse_traceparent(value: str | None) -> TraceParent | None:
    """VALUE as W3C trace context, or None when it is malformed (it is then ignored)."""
    match = _TRACEPARENT.match((value or "").strip())
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if set(trace_id) == {"0"} or set(parent_id) == {"0"}:
        return None
    return TraceParent(trace_id, parent_id, bool(int(flags, 16) & 1))


class _NewTraces(Sampler):
    """A root span is kept (at RATIO) only if it is a request or a job; others are dropped."""

    def __init__(self, ratio: float) -> None:
        self._ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if kind not in ROOT_KINDS:
            return SamplingResult(Decision.DROP)
        return self._ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NewTraces({self._ratio.get_description()})"


def sampler(ratio: float) -> Sampler:
    """Requests and jobs start traces at RATIO; a hop continues its caller's trace at the same
    RATIO (by trace id: the same answer on every hop); an unsampled caller stays unsampled."""
    return ParentBased(
        root=_NewTraces(ratio),
        remote_parent_sampled=TraceIdRatioBased(ratio),
        remote_parent_not_sampled=ALWAYS_OFF,
    )


class _StoreExporter(SpanExporter):
    """Zipkin's JSON exporter that says once, not per batch, that the store is unreachable."""

    def __init__(self, endpoint: str) -> None:
        self._zipkin = ZipkinExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S)
        self._failing = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._zipkin.export(spans)  # type: ignore[arg-type]  # it reads, never ends them
        except requests.RequestException as exc:
            if not self._failing:
                log.warning("trace store unreachable (%s): spans are dropped until it is back", exc)
            self._failing = True
            return SpanExportResult.FAILURE
        if self._failing and result == SpanExportResult.SUCCESS:
            log.info("trace store reachable again")
            self._failing = False
        return result

    def shutdown(self) -> None:
        self._zipkin.shutdown()


_configured = threading.Lock()
_provider: TracerProvider | None = None


def enabled(topology: Topology) -> bool:
    return topology.tracing.enabled and bool(topology.of_kind("tracing"))


def store_url(topology: Topology, *, from_machine: bool = False) -> str:
    """The trace store's base URL: in the lab's network, or where the machine reaches it."""
    store = topology.of_kind("tracing")[0]
    return store.host_url if from_machine else store.url


def ui_url(topology: Topology, trace_id: str | None = None) -> str:
    """The trace store's UI at its public name (traces.<domain>), at one trace if given."""
    store = topology.of_kind("tracing")[0]
    name = next((s for s, target in topology.services.items() if target == store.name), None)
    host = topology.fqdn(name) if name else store.host_address
    base = f"http://{host}:{store.port}/zipkin/"
    return f"{base}traces/{trace_id}" if trace_id else base


def review_search_url(topology: Topology, review_id: int | str) -> str:
    """The UI's search for the traces that name REVIEW_ID (the span attribute review.id),
    over the week before now: with an end time in the link the UI runs the search at once."""
    now_ms = int(time.time() * 1000)
    return (
        f"{ui_url(topology)}?annotationQuery=review.id%3D{review_id}"
        f"&lookback=7d&endTs={now_ms}&limit=10"
    )


def configure(topology: Topology, node: Node) -> bool:
    """Trace this process as NODE, if the topology turns tracing on; True if it does."""
    global _provider
    if not enabled(topology):
        return False
    with _configured:
        if _provider is not None:
            return True
        resource = Resource.create(
            {
                "service.name": node.name,
                "service.namespace": "reviewlab",
                "reviewlab.node": node.name,
                "reviewlab.kind": node.kind,
                "reviewlab.runtime": topology.lab.runtime.name,
                "process.runtime.name": platform.python_implementation(),
                "process.runtime.version": platform.python_version(),
            }
        )
        provider = TracerProvider(resource=resource, sampler=sampler(topology.tracing.sample_ratio))
        processor = BatchSpanProcessor(
            _StoreExporter(store_url(topology) + SPANS_PATH),
            max_queue_size=QUEUE_SPANS,
            schedule_delay_millis=EXPORT_EVERY_MS,
            export_timeout_millis=EXPORT_TIMEOUT_S * 1000,
        )
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _instrument_clients()
        _provider = provider
    return True


def _instrument_clients() -> None:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    # Threads (the shard reads side by side, the cutout's uploads) carry the caller's trace.
    ThreadingInstrumentor().instrument()
    PsycopgInstrumentor().instrument()
    RedisInstrumentor().instrument()
    BotocoreInstrumentor().instrument()  # type: ignore[no-untyped-call]
    HTTPXClientInstrumentor().instrument()


def shutdown() -> None:
    """Send what is queued (bounded by the export timeout), then stop."""
    if _provider is not None:
        _provider.shutdown()


def current_trace_id() -> str | None:
    """The current span's trace id in hex, or None outside a kept trace."""
    found = trace.get_current_span().get_span_context()
    return (
        trace.format_trace_id(found.trace_id)
        if found.is_valid and found.trace_flags.sampled
        else None
    )


def current_traceparent() -> str | None:
    """The current span as a traceparent, for a hop the trace crosses (the outbox, the stream)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The trace a stored traceparent continues; None when it is absent or malformed."""
    if parse_traceparent(traceparent) is None:
        return None
    return _PROPAGATOR.extract({TRACEPARENT: traceparent or ""})


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[trace.Span]:
    """A span for one of the lab's own steps, current inside the block; PARENT, a stored
    traceparent, makes it a child of that trace (a hop across the outbox or the stream)."""
    ctx = context_of(parent) if parent is not None else None
    with tracer.start_as_current_span(
        name, context=ctx, kind=kind, attributes=attributes
    ) as current:
        yield current


def record_span(
    name: str,
    *,
    parent: str | None,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any] | None = None,
) -> None:
    """A span for a stretch that is already over (a job's wait on the stream), in PARENT's
    trace; nothing when PARENT is absent or malformed."""
    ctx = context_of(parent)
    if ctx is None:
        return
    started = tracer.start_span(name, context=ctx, attributes=attributes, start_time=start_ns)
    started.end(end_time=max(end_ns, start_ns))


def stream_entry_ns(message_id: str) -> int | None:
    """When Redis appended a stream entry: its id leads with the milliseconds (ms-seq)."""
    millis, _, _ = message_id.partition("-")
    return int(millis) * 1_000_000 if millis.isdigit() else None


@contextmanager
def job(message_id: str, fields: Mapping[str, str], deliveries: int) -> Iterator[trace.Span]:
    """A job taken from the stream, in the trace its entry carries: first the time it waited
    there (from the entry's id to now), then the job itself, current inside the block."""
    parent = fields.get(TRACEPARENT)
    named = {"review.id": fields.get("review_id", ""), "messaging.message.id": message_id}
    queued_ns = stream_entry_ns(message_id)
    if queued_ns is not None:
        record_span(
            "queue wait", parent=parent, start_ns=queued_ns, end_ns=time.time_ns(), attributes=named
        )
    named_job = {**named, "reviewlab.deliveries": deliveries}
    with span("photo job", kind=SpanKind.CONSUMER, parent=parent, attributes=named_job) as current:
        yield current


def record_stages(started_ns: int, seconds: Mapping[str, float]) -> None:
    """One child span per pipeline stage that has already run, back to back from STARTED_NS,
    with the durations the stage itself measured (the worker's decode, infer, mask, encode)."""
    at = started_ns
    for stage, took in seconds.items():
        end = at + int(took * 1e9)
        tracer.start_span(stage, start_time=at).end(end_time=end)
        at = end


def set_attributes(**attributes: Any) -> None:
    """Name things on the current span (a review's id, its shard)."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(attributes)
