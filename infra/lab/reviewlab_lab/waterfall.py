"""A trace as a terminal waterfall: one line per span, in call order, a bar on a shared clock.

Spans come as the trace store returns them (Zipkin's JSON v2: id, parentId, name, kind,
timestamp and duration in microseconds, localEndpoint.serviceName, tags). A span whose parent
is not in the trace (the vIP's, which nginx names but does not send) is drawn as a root.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BAR = "█"
GAP = "·"
# Tags worth a glance beside a span's name: the statement's table, the peer, the review.
SHOWN_TAGS = ("reviewlab.shard", "reviewlab.bucket", "server.address", "net.peer.name")


@dataclass(frozen=True)
class Span:
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str
    start_us: int
    duration_us: int
    tags: Mapping[str, str]

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Span:
        return cls(
            span_id=str(raw["id"]),
            parent_id=raw.get("parentId"),
            name=str(raw.get("name", "")),
            service=str((raw.get("localEndpoint") or {}).get("serviceName", "?")),
            kind=str(raw.get("kind", "")),
            start_us=int(raw.get("timestamp", 0)),
            duration_us=int(raw.get("duration", 0)),
            tags=dict(raw.get("tags") or {}),
        )


def in_call_order(spans: Iterable[Span]) -> list[tuple[int, Span]]:
    """(depth, span) depth first: each span after its parent, siblings by start time."""
    found = {s.span_id: s for s in spans}
    children: dict[str | None, list[Span]] = {}
    for span in found.values():
        parent = span.parent_id if span.parent_id in found else None
        children.setdefault(parent, []).append(span)
    ordered: list[tuple[int, Span]] = []
    stack = [(0, s) for s in sorted(children.get(None, []), key=_start, reverse=True)]
    while stack:
        depth, span = stack.pop()
        ordered.append((depth, span))
        below = sorted(children.get(span.span_id, []), key=_start, reverse=True)
        stack.extend((depth + 1, child) for child in below)
    return ordered


def _start(span: Span) -> tuple[int, str]:
    return span.start_us, span.span_id


def _label(span: Span) -> str:
    shown = [span.tags[t] for t in SHOWN_TAGS if t in span.tags]
    return f"{span.name} ({', '.join(shown)})" if shown else span.name


def render(raw_spans: Iterable[Mapping[str, Any]], width: int = 40) -> list[str]:
    """The waterfall's lines: start (ms), bar, node, span, duration (ms)."""
    spans = [Span.of(raw) for raw in raw_spans]
    if not spans:
        return []
    begin = min(s.start_us for s in spans)
    end = max(s.start_us + s.duration_us for s in spans)
    total = max(end - begin, 1)
    rows = in_call_order(spans)
    service_width = max(len(s.service) for _, s in rows)
    lines = []
    for depth, span in rows:
        first = (span.start_us - begin) * width // total
        cells = max(1, round(span.duration_us * width / total))
        cells = min(cells, width - first) if first < width else 1
        bar = (GAP * first + BAR * cells).ljust(width, GAP)[:width]
        lines.append(
            f"{(span.start_us - begin) / 1000:8.1f} ms {bar} {span.service:<{service_width}} "
            f"{'  ' * depth}{_label(span)}  {span.duration_us / 1000:.1f} ms"
        )
    return lines


def summary(raw_spans: Sequence[Mapping[str, Any]]) -> tuple[int, float, list[str]]:
    """How many spans, how long from the first start to the last end (ms), which nodes."""
    spans = [Span.of(raw) for raw in raw_spans]
    if not spans:
        return 0, 0.0, []
    begin = min(s.start_us for s in spans)
    end = max(s.start_us + s.duration_us for s in spans)
    nodes = sorted({s.service for s in spans})
    return len(spans), (end - begin) / 1000, nodes
