"""The charts' series: the last minutes of throughput, p99, replica lag and hit ratio, read
from Prometheus with one range query each, as columns uPlot draws directly."""

from __future__ import annotations

import math
from typing import Any

from reviewlab_console.figures import WINDOW
from reviewlab_console.prom import Prometheus

_SHOP = 'route!~"/metrics|/readyz|/healthz"'
# Chart name -> (expression, the label that names each line, unit).
SERIES: dict[str, tuple[str, str, str]] = {
    "throughput": (
        f"sum by (node) (rate(web_requests_total{{{_SHOP}}}[{WINDOW}]))",
        "node",
        "req/s",
    ),
    "p99": (
        "1000 * histogram_quantile(0.99, sum by (node, le) "
        f"(rate(web_request_seconds_bucket{{{_SHOP}}}[{WINDOW}])))",
        "node",
        "ms",
    ),
    # The primary's WAL position minus what each replica has replayed, per cluster (scope).
    "lag": (
        "clamp_min(max by (scope) (patroni_xlog_location) - on (scope) group_right() "
        "(patroni_xlog_replayed_location and on (node) (patroni_replica == 1)), 0)",
        "node",
        "bytes",
    ),
    "hit_ratio": (
        'sum by (node) (rate(console_edge_requests_total{cache=~"HIT|STALE|UPDATING|REVALIDATED"}'
        "[1m])) / sum by (node) (rate(console_edge_requests_total[1m]))",
        "node",
        "share",
    ),
}


def columns(
    result: list[dict[str, Any]], label: str, start: float, end: float, step: float
) -> dict[str, Any]:
    """Prometheus's matrix as uPlot's data: one time column and one column per line."""
    times = [start + i * step for i in range(int((end - start) / step) + 1)]
    index = {round(t): i for i, t in enumerate(times)}
    lines: dict[str, list[float | None]] = {}
    for series in result:
        name = str(series.get("metric", {}).get(label, "?"))
        column: list[float | None] = [None] * len(times)
        for at, value in series.get("values", []):
            i = index.get(round(float(at)))
            number = float(value)
            if i is not None and not math.isnan(number) and not math.isinf(number):
                column[i] = round(number, 4)
        lines[name] = column
    names = sorted(lines)
    return {"times": times, "names": names, "values": [lines[n] for n in names]}


async def read(prometheus: Prometheus, now: float, minutes: int) -> dict[str, Any]:
    step = 5.0
    end = math.floor(now / step) * step
    start = end - minutes * 60
    charts: dict[str, Any] = {}
    for name, (expr, label, unit) in SERIES.items():
        result = await prometheus.query_range(expr, start, end, step)
        charts[name] = {"unit": unit, **columns(result, label, start, end, step)}
    return {"minutes": minutes, "step": step, "charts": charts}
