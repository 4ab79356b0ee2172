"""`reviewlab trace REVIEW_ID | --last | --id TRACE_ID`: one trace as a terminal waterfall,
and where the trace store's UI shows the same trace."""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx
from reviewlab_common import tracing
from reviewlab_common.topology import Topology

from reviewlab_lab import waterfall
from reviewlab_lab.errors import LabFailed

# The span a review's trace starts with on the web server (Zipkin keeps names lower-case).
POST_SPAN = "post /api/reviews"
# How far back the store is searched: it keeps traces in memory, bounded by span count.
LOOKBACK_MS = 7 * 24 * 3600 * 1000


def add_parser(sub: Any) -> None:
    p = sub.add_parser("trace", help="a review's trace as a waterfall, and its page in the UI")
    p.add_argument("review_id", nargs="?", help="the review whose POST the trace follows")
    p.add_argument("--last", action="store_true", help="the newest review posted")
    p.add_argument("--id", dest="trace_id", help="a trace id (an answer's X-Trace-Id)")
    p.add_argument("--width", type=int, default=40, help="the bar's width in characters")


def _get(topology: Topology, path: str, params: dict[str, Any] | None = None) -> Any:
    base = tracing.store_url(topology, from_machine=True)
    try:
        reply = httpx.get(base + path, params=params, timeout=5.0)
    except httpx.HTTPError as exc:
        raise LabFailed(
            f"the trace store at {base} did not answer ({type(exc).__name__}): "
            "is the lab up? (`reviewlab status`)"
        ) from exc
    if reply.status_code == 404:
        return None
    if reply.status_code != 200:
        raise LabFailed(f"the trace store answered {reply.status_code} to {path}: {reply.text}")
    return reply.json()


def _search(topology: Topology, **query: Any) -> list[list[dict[str, Any]]]:
    params = {"limit": 10, "lookback": LOOKBACK_MS, "endTs": int(time.time() * 1000), **query}
    return list(_get(topology, "/api/v2/traces", params) or [])


def _started(spans: list[dict[str, Any]]) -> int:
    return min(int(s.get("timestamp", 0)) for s in spans)


def _posted(spans: list[dict[str, Any]]) -> bool:
    return any(s.get("name") == POST_SPAN and s.get("kind") == "SERVER" for s in spans)


def find(topology: Topology, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The spans of the trace the arguments name; LabFailed says why there is none."""
    if args.trace_id:
        wanted = tracing.parse_traceparent(f"00-{args.trace_id.lower()}-{'1' * 16}-01")
        if wanted is None:
            raise LabFailed(f"{args.trace_id!r} is not a trace id: 32 hex digits, not all zero")
        spans = _get(topology, f"/api/v2/trace/{wanted.trace_id}")
        if not spans:
            raise LabFailed(f"the trace store holds no trace {wanted.trace_id}")
        return list(spans)
    if args.last:
        found = [t for t in _search(topology, spanName=POST_SPAN) if t]
        what = "no review was posted since the trace store started"
    else:
        if not str(args.review_id).isdigit():
            raise LabFailed(f"review id {args.review_id!r}: a review id is a number")
        found = [t for t in _search(topology, annotationQuery=f"review.id={args.review_id}") if t]
        what = f"no trace names review {args.review_id}"
    if not found:
        raise LabFailed(
            f"{what}: the store keeps traces in memory, so a restart of its node forgets them, "
            "and a review posted with tracing off has none"
        )
    posts = [t for t in found if _posted(t)] or found
    return max(posts, key=_started)


def run(topology: Topology, args: argparse.Namespace) -> None:
    if not tracing.enabled(topology):
        raise LabFailed("tracing is off: set [tracing] enabled = true in infra/topology.toml")
    if sum(bool(x) for x in (args.review_id, args.last, args.trace_id)) != 1:
        raise LabFailed("name one trace: a REVIEW_ID, --last, or --id TRACE_ID")
    if not 10 <= args.width <= 200:
        raise LabFailed(f"--width must be 10..200 characters, not {args.width}")
    spans = find(topology, args)
    trace_id = str(spans[0]["traceId"])
    count, took_ms, nodes = waterfall.summary(spans)
    print(f"trace {trace_id}: {count} spans over {took_ms:.1f} ms on {', '.join(nodes)}")
    for line in waterfall.render(spans, args.width):
        print(line)
    print(f"in the UI: {tracing.ui_url(topology, trace_id)}")
