"""The CDN edges' cache statuses, counted: each edge sends one syslog datagram per media
request (`$upstream_cache_status<TAB>$upstream_addr`, edge.conf.j2), and the console counts
them for Prometheus, which reads them on the console's /metrics."""

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


def parse(datagram: bytes) -> tuple[str, int] | None:
    """(cache status, origin fetches) of one syslog line; None when it is not an edge's."""
    text = datagram.decode("utf-8", "replace")
    _, found, message = text.partition(TAG)
    if not found:
        return None
    cache, _, upstream = message.strip().partition("\t")
    fetched = [a for a in upstream.replace(" : ", ", ").split(", ") if a and a != "-"]
    return (cache if cache and cache != "-" else "NONE"), len(fetched)


class EdgeLog(asyncio.DatagramProtocol):
    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        node = self.topology.node_at(str(addr[0]))
        parsed = parse(data)
        if node is None or node.kind != "edge" or parsed is None:
            return  # only the lab's edges are counted
        cache, fetches = parsed
        EDGE_REQUESTS.labels(node.name, cache).inc()
        if fetches:
            ORIGIN_FETCHES.labels(node.name).inc(fetches)


async def listen(topology: Topology, address: str, port: int) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: EdgeLog(topology), local_addr=(address, port)
    )
    return transport
