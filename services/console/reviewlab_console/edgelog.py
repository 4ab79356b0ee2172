"""The CDN edges' cache statuses, counted: each edge sends one syslog datagram per media
request (`<edge> <cache status> <upstream addresses>`, tab-separated, edge.conf.j2), and the
console counts them for Prometheus, which reads them on the console's /metrics."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter
from reviewlab_common.topology import Topology

log = logging.getLogger(__name__)

EDGE_REQUESTS = Counter(
    "console_edge_requests", "Media requests an edge answered, by cache status", ["node", "cache"]
)
ORIGIN_FETCHES = Counter(
    "console_edge_origin_fetches", "Requests an edge made of the origin (MinIO)", ["node"]
)
TAG = "edge: "


def parse(datagram: bytes) -> tuple[str, str, int] | None:
    """(edge, cache status, origin fetches) of one syslog line; None when not an edge's."""
    text = datagram.decode("utf-8", "replace")
    _, found, message = text.partition(TAG)
    fields = message.strip("\n").split("\t")
    if not found or len(fields) != 3:
        return None
    edge, cache, upstream = fields
    fetched = [a for a in upstream.replace(" : ", ", ").split(", ") if a and a != "-"]
    return edge, (cache if cache and cache != "-" else "NONE"), len(fetched)


class EdgeLog(asyncio.DatagramProtocol):
    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        parsed = parse(data)
        if parsed is None:
            return
        edge, cache, fetches = parsed
        node = self.topology.nodes.get(edge)
        if node is None or node.kind != "edge":
            return  # only the lab's edges are counted
        EDGE_REQUESTS.labels(edge, cache).inc()
        if fetches:
            ORIGIN_FETCHES.labels(edge).inc(fetches)


async def listen(topology: Topology, address: str, port: int) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: EdgeLog(topology), local_addr=(address, port)
    )
    return transport
