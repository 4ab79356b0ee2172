"""GeoDNS: which CDN edge the DNS's public view gives a client, by the client's network.

Each edge names the client networks it is near (`near` in infra/topology.toml). bind9 gets
one public view per such edge, matching those networks, ahead of the plain public view,
whose `cdn` is the edge [services] names: the default for a network no edge claims. Views
match in order, first match wins, so the internal view stays first and every geo view comes
before the catch-all. `cdn.shop.internal` stays the one name in every URL; who asks decides
which edge it is.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from reviewlab_common.topology import Node, Topology, TopologyError

# The catch-all public view (bind9's view name, and its zone folder).
DEFAULT_VIEW = "public"


@dataclass(frozen=True)
class PublicView:
    """One public view: the client networks it matches (none: everyone) and its edge."""

    name: str
    networks: tuple[str, ...]
    edge: Node


def default_edge(topology: Topology) -> Node:
    edge = topology.nodes[topology.services["cdn"]]
    if edge.kind != "edge":
        raise TopologyError(f"[services]: 'cdn' points at {edge.name!r}, which is not an edge")
    return edge


def public_views(topology: Topology) -> list[PublicView]:
    """The geo views in the topology's order, then the catch-all; networks are checked to
    be claimed by one edge only (bind9 would silently give the first view the overlap)."""
    views: list[PublicView] = []
    claimed: dict[ipaddress.IPv4Network, str] = {}
    for edge in topology.of_kind("edge"):
        for text in edge.near:
            network = ipaddress.IPv4Network(text)
            clash = next((n for n in claimed if n.overlaps(network)), None)
            if clash is not None:
                raise TopologyError(
                    f"node {edge.name!r}: field 'near' {network} overlaps {clash}, which "
                    f"{claimed[clash]!r} is near; a client network belongs to one edge"
                )
            claimed[network] = edge.name
        if edge.near:
            views.append(PublicView(f"{DEFAULT_VIEW}-{edge.name}", edge.near, edge))
    return [*views, PublicView(DEFAULT_VIEW, (), default_edge(topology))]


def edge_for(topology: Topology, address: str) -> Node:
    """The edge a public client at ADDRESS gets for `cdn`, as bind9's views pick it."""
    where = ipaddress.IPv4Address(address)
    for view in public_views(topology):
        if not view.networks or any(where in ipaddress.IPv4Network(n) for n in view.networks):
            return view.edge
    raise AssertionError("the catch-all view matches everyone")
