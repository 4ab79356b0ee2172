"""What the console computes from Prometheus: each node's state and its live figures.

Pure functions over what prom.py read, so they are tested without a Prometheus. One refresh
asks Prometheus two things: its targets, and FIGURES as a single query (each expression
tagged with a `figure` label, joined with `or`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from reviewlab_common.topology import Topology

from reviewlab_console.prom import Sample, Target

# Requests the lab makes of itself (scrapes, readiness probes) are not the shop's traffic.
_SHOP = 'route!~"/metrics|/readyz|/healthz"'
# The window of every rate: five scrapes (every 2 s).
WINDOW = "10s"
FIGURES: dict[str, str] = {
    "req_s": f"sum by (node) (rate(web_requests_total{{{_SHOP}}}[{WINDOW}]))",
    "p99_s": (
        "histogram_quantile(0.99, sum by (node, le) "
        f"(rate(web_request_seconds_bucket{{{_SHOP}}}[{WINDOW}])))"
    ),
    "errors_s": f'sum by (node) (rate(web_requests_total{{{_SHOP},status=~"5.."}}[{WINDOW}]))',
    "shard_writes_s": f"sum by (shard) (rate(web_shard_writes_total[{WINDOW}]))",
    "stream_length": "redis_stream_length",
    "stream_pending": "sum by (stream) (redis_stream_group_messages_pending)",
    "cutouts_s": 'sum(rate(worker_jobs_total{outcome="ready"}[30s]))',
    "edge_requests_s": "sum by (node, cache) (rate(console_edge_requests_total[30s]))",
    "edge_origin_s": "sum by (node) (rate(console_edge_origin_fetches_total[30s]))",
    "exported_up": '{__name__=~"nginx_up|redis_up|bind_up"}',
    "replayed_at": "patroni_xlog_replayed_timestamp",
}
# What the edge's cache statuses mean: served from its cache, or fetched from the origin.
FROM_CACHE = frozenset({"HIT", "STALE", "UPDATING", "REVALIDATED"})


def union_query(figures: dict[str, str] = FIGURES) -> str:
    """Every figure in one query: each tagged with its name in the label `figure`."""
    tagged = [
        f'label_replace({expr}, "figure", "{name}", "", "")' for name, expr in figures.items()
    ]
    return " or ".join(tagged)


def by_figure(samples: list[Sample]) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        if not math.isnan(sample.value):
            found[sample.labels.get("figure", "")].append(sample)
    return found


# A node's state as the console shows it.
UP, DOWN, NO_ANSWER, UNKNOWN = "up", "down", "no answer", "unknown"


@dataclass
class NodeState:
    state: str
    detail: str = ""


def _from_target(target: Target) -> NodeState:
    if target.health == "up":
        return NodeState(UP)
    if target.health != "down":
        return NodeState(UNKNOWN, "not scraped yet")
    error = target.last_error
    if "deadline" in error or "timeout" in error.lower():
        # A frozen (paused) process accepts the connection and never answers.
        return NodeState(NO_ANSWER, error)
    return NodeState(DOWN, error)


def node_states(
    topology: Topology, targets: list[Target], exported: list[Sample]
) -> dict[str, NodeState]:
    """Each node's state from the scrapes: its own target, else its exporter's `*_up`.
    A node Prometheus reads nothing of is unknown, never healthy."""
    # A node's own target (it answers its scrape), or an exporter's (it answers for another).
    direct = {t.via: t for t in targets}
    through = {t.node: t for t in targets if t.via != t.node}
    up_values = {s.labels.get("node", ""): s.value for s in exported}
    states: dict[str, NodeState] = {}
    for name in topology.nodes:
        if name in direct:
            states[name] = _from_target(direct[name])
        elif name in through:
            exporter = through[name]
            if exporter.health != "up":
                states[name] = NodeState(UNKNOWN, f"its exporter {exporter.via} is not answering")
            elif name not in up_values:
                states[name] = NodeState(UNKNOWN, "no reading yet")
            elif up_values[name] >= 1:
                states[name] = NodeState(UP)
            else:
                states[name] = NodeState(DOWN, f"{exporter.via} cannot read it")
        else:
            states[name] = NodeState(UNKNOWN, "Prometheus does not scrape it")
    return states


@dataclass
class Figures:
    """The live figures the diagram shows, keyed by node, shard or stream."""

    web: dict[str, dict[str, float | None]] = field(default_factory=dict)
    shards: dict[str, float] = field(default_factory=dict)
    streams: dict[str, dict[str, float]] = field(default_factory=dict)
    cutouts_s: float | None = None
    edges: dict[str, dict[str, float | None]] = field(default_factory=dict)
    replayed_at: dict[str, float] = field(default_factory=dict)


def _per(samples: list[Sample], label: str) -> dict[str, float]:
    return {s.labels.get(label, ""): s.value for s in samples}


def compute(topology: Topology, found: dict[str, list[Sample]]) -> Figures:
    figures = Figures()
    rates = _per(found.get("req_s", []), "node")
    p99 = _per(found.get("p99_s", []), "node")
    errors = _per(found.get("errors_s", []), "node")
    total = sum(rates.values())
    for web in topology.of_kind("web"):
        rate = rates.get(web.name)
        figures.web[web.name] = {
            "req_s": rate,
            "p99_ms": None if web.name not in p99 else p99[web.name] * 1000,
            "errors_s": errors.get(web.name, 0.0) if rate is not None else None,
            # Its share of the shop's traffic, which the vIP spreads.
            "share": (rate / total) if rate is not None and total > 0 else None,
        }
    figures.shards = _per(found.get("shard_writes_s", []), "shard")
    lengths = _per(found.get("stream_length", []), "stream")
    pending = _per(found.get("stream_pending", []), "stream")
    for stream in sorted(set(lengths) | set(pending)):
        figures.streams[stream] = {
            "length": lengths.get(stream, 0.0),
            "pending": pending.get(stream, 0.0),
        }
    cutouts = found.get("cutouts_s", [])
    figures.cutouts_s = cutouts[0].value if cutouts else None
    figures.edges = edge_figures(topology, found)
    figures.replayed_at = _per(found.get("replayed_at", []), "node")
    return figures


def edge_figures(
    topology: Topology, found: dict[str, list[Sample]]
) -> dict[str, dict[str, float | None]]:
    """Per edge: media requests/s, the share served from its cache, origin fetches/s."""
    served: dict[str, float] = defaultdict(float)
    cached: dict[str, float] = defaultdict(float)
    for sample in found.get("edge_requests_s", []):
        node = sample.labels.get("node", "")
        served[node] += sample.value
        if sample.labels.get("cache") in FROM_CACHE:
            cached[node] += sample.value
    origin = _per(found.get("edge_origin_s", []), "node")
    result: dict[str, dict[str, float | None]] = {}
    for edge in topology.of_kind("edge"):
        total = served.get(edge.name, 0.0)
        result[edge.name] = {
            "req_s": total,
            "hit_ratio": cached[edge.name] / total if total > 0 else None,
            "origin_s": origin.get(edge.name, 0.0),
        }
    return result


def lag_seconds(lag_bytes: int | None, replayed_at: float | None, now: float) -> float | None:
    """A replica's lag in time: none while it has replayed everything it received, else the
    age of the last transaction it replayed (the usual reading of replay lag)."""
    if lag_bytes is None or replayed_at is None:
        return None
    if lag_bytes <= 0:
        return 0.0
    return max(0.0, now - replayed_at)
