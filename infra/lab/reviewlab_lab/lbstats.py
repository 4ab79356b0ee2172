"""`reviewlab lb stats`: who served what, read from the vIP's own access log."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reviewlab_common.topology import Topology

# Older lines than this far back from the end are not read: --since is about recent traffic.
TAIL_BYTES = 64 * 1024 * 1024
ANSWERED_BY_LB = "lb"


@dataclass(frozen=True)
class Entry:
    """One line of the vIP's log: a request (l7) or a TCP connection (l4)."""

    at: float
    layer: str
    client: str
    upstream: str  # the address that answered last, or "lb" when nginx answered by itself
    attempts: int  # servers tried: more than one when nginx moved on after a failure
    status: int
    seconds: float
    request: str
    trace_id: str = ""  # layer 7: the request's trace (loadbalancer/traceparent.js)


@dataclass(frozen=True)
class BackendShare:
    name: str
    address: str
    count: int
    share: float
    errors: int  # 5xx answers
    p50_ms: float
    p99_ms: float


def fields_of(line: str, count: int) -> list[str] | None:
    """A tab-separated log line's COUNT fields after its ISO time (a line written before the
    time led the line has none), or None if it is not such a line."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) == count + 1 and "T" in fields[0]:
        fields = fields[1:]  # $time_iso8601 is for the reader: $msec after it is parsed
    return fields if len(fields) == count else None


def parse(line: str) -> Entry | None:
    """One log line (tab-separated, see loadbalancer/lb-l*.j2), or None if it is not one."""
    # Layer 7 adds the trace id last; layer 4 (and a line from before) has none.
    fields = fields_of(line, 7) or fields_of(line, 8)
    if fields is None:
        return None
    at, layer, client, upstream, status, seconds, request = fields[:7]
    # Several servers are listed when nginx moved on ("a, b"), or across an internal redirect
    # ("a : b"): the last one answered.
    tried = [a for a in upstream.replace(" : ", ", ").split(", ") if a and a != "-"]
    try:
        return Entry(
            at=float(at),
            layer=layer,
            client=client,
            upstream=tried[-1] if tried else ANSWERED_BY_LB,
            attempts=len(tried),
            status=int(status),
            seconds=float(seconds),
            request=request,
            trace_id=fields[7] if len(fields) == 8 else "",
        )
    except ValueError:
        return None


def tail_lines(log: Path) -> list[str]:
    """The log's last TAIL_BYTES as whole lines; none when there is no log yet."""
    if not log.exists():
        return []
    with open(log, "rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - TAIL_BYTES))
        if size > TAIL_BYTES:
            handle.readline()  # the first line may be cut
        return handle.read().decode(errors="replace").splitlines()


def read(log: Path, since: float | None = None, now: float | None = None) -> list[Entry]:
    """The log's entries, only those of the last SINCE seconds when given."""
    start = None if since is None else (now or time.time()) - since
    entries = (parse(line) for line in tail_lines(log))
    return [e for e in entries if e is not None and (start is None or e.at >= start)]


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


def shares(topology: Topology, entries: Iterable[Entry]) -> list[BackendShare]:
    """The share of entries each backend served, every web server listed even if idle."""
    by_address: dict[str, list[Entry]] = {w.endpoint: [] for w in topology.of_kind("web")}
    for entry in entries:
        by_address.setdefault(entry.upstream, []).append(entry)
    total = sum(len(v) for v in by_address.values())
    rows = []
    for address, served in by_address.items():
        node = topology.node_at(address.rsplit(":", 1)[0])
        times = sorted(e.seconds * 1000 for e in served)
        rows.append(
            BackendShare(
                name=node.name if node else address,
                address=address,
                count=len(served),
                share=len(served) / total if total else 0.0,
                errors=sum(1 for e in served if e.status >= 500),
                p50_ms=_percentile(times, 0.50),
                p99_ms=_percentile(times, 0.99),
            )
        )
    return sorted(rows, key=lambda r: r.name)


def histogram(rows: list[BackendShare], width: int = 40) -> str:
    """A small text histogram: one bar per backend, scaled to its share."""
    lines = []
    for row in rows:
        bar = "#" * round(row.share * width)
        lines.append(
            f"  {row.name:<8} {row.address:<17} {bar:<{width}} {row.share:6.1%} "
            f"{row.count:>7}  p50 {row.p50_ms:6.1f} ms  p99 {row.p99_ms:7.1f} ms  5xx {row.errors}"
        )
    return "\n".join(lines)


def report(topology: Topology, log: Path, mode: str, since: float | None) -> str:
    """What `reviewlab lb stats` prints."""
    entries = read(log, since)
    window = f"the last {since:g} s" if since is not None else "the whole log"
    if not entries:
        return f"vIP ({mode}): nothing in {log} for {window}; send some requests first."
    layers = sorted({e.layer for e in entries})
    unit = "requests" if layers == ["l7"] else "connections (l4) and requests (l7)"
    if layers == ["l4"]:
        unit = "connections (l4 logs one line per TCP connection, not per request)"
    retried = sum(1 for e in entries if e.attempts > 1)
    head = (
        f"vIP now in {mode}; {len(entries)} {unit} in {window}, "
        f"{retried} moved on to another server after a failure"
    )
    return head + "\n" + histogram(shares(topology, entries))
