"""The CDN edge's hit ratio and origin fetches, read from its access log (infra/cdn)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reviewlab_common.topology import Node, Topology

from reviewlab_lab.lbstats import fields_of, tail_lines
from reviewlab_lab.paths import LabPaths

# What nginx's $upstream_cache_status says when the edge answered from its cache.
FROM_CACHE = frozenset({"HIT", "STALE", "UPDATING", "REVALIDATED"})


@dataclass(frozen=True)
class EdgeEntry:
    """One request the edge answered (see the `edge` log_format in edge.conf.j2)."""

    at: float
    client: str
    status: int
    cache: str  # $upstream_cache_status, "-" when the request bypassed the cache (/healthz)
    origin_fetches: int  # origin addresses nginx contacted for this request
    uri: str


def access_log(paths: LabPaths, edge: Node) -> Path:
    return paths.logs / f"{edge.name}.access.log"


def parse(line: str) -> EdgeEntry | None:
    fields = fields_of(line, 8)
    if fields is None:
        return None  # a line from before the tab-separated format, or not a line at all
    at, client, status, cache, upstream, _bytes, _seconds, request = fields
    fetched = [a for a in upstream.replace(" : ", ", ").split(", ") if a and a != "-"]
    try:
        uri = request.partition(" ")[2]
        return EdgeEntry(float(at), client, int(status), cache, len(fetched), uri)
    except ValueError:
        return None


def read(log: Path, since: float | None = None) -> list[EdgeEntry]:
    """The media requests of the last SINCE seconds (all when None)."""
    start = None if since is None else time.time() - since
    entries = (parse(line) for line in tail_lines(log))
    return [
        e
        for e in entries
        if e is not None and e.uri.startswith("/media/") and (start is None or e.at >= start)
    ]


def hit_ratio(entries: Iterable[EdgeEntry]) -> tuple[float, Counter[str]]:
    """The share answered from the cache, and the count per cache status."""
    statuses = Counter(e.cache for e in entries)
    total = sum(statuses.values())
    hits = sum(n for status, n in statuses.items() if status in FROM_CACHE)
    return (hits / total if total else 0.0), statuses


def origin_fetches(entries: Iterable[EdgeEntry], uri: str) -> int:
    """How often the edge went to the origin (MinIO) for URI."""
    return sum(e.origin_fetches for e in entries if e.uri == uri)


def shield_fetches(topology: Topology, uri: str) -> int:
    """Fetches from MinIO for URI that the origin shield's access log shows (the shield writes
    it at most a second late), read where the shield keeps it on either runtime."""
    from reviewlab_lab import runtimes

    runtime = runtimes.of(topology)
    shield = topology.one("shield")
    text = runtime.read_node_file(shield.name, str(access_log(runtime.node_paths(), shield)))
    entries = [e for line in (text or "").splitlines() if (e := parse(line)) is not None]
    return origin_fetches(entries, uri)
