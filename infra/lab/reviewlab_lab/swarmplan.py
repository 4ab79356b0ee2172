"""Where each lab node runs in the Swarm stack: the plan deploy/swarm-stack.yml is written from.

[runtimes.swarm] names the lab's sites: failure domains, one or more machines each, told
apart by the node label SITE_LABEL. A group of nodes that must survive a lost machine (a
Patroni cluster, the etcd members, the web servers, the workers, the edges; KindSpec.placement)
is dealt over the sites in order: "apart" groups get one site per member or the topology is
refused, "spread" groups wrap around. The k-th group of a kind starts at the k-th site, so the
clusters' first members do not all share one site, and adding a node to a group moves no other
node. The vIP's members are the replicas of one service, which Swarm spreads itself; every
other node may run on any machine.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reviewlab_common.topology import Node, Topology, TopologyError

from reviewlab_lab import composefile, kinds

SITE_LABEL = "reviewlab.site"
# A site is written into placement constraints: a plain word keeps them unambiguous.
SITE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
WHERE = "[runtimes.swarm]"
# Swarm's template for a task's slot (1, 2, ...) in a service's hostname and environment.
TASK_SLOT = "{{.Task.Slot}}"


@dataclass(frozen=True)
class Swarm:
    """[runtimes.swarm]: the overlay's subnet, the sites, the registry, the published ports."""

    network: ipaddress.IPv4Network
    sites: tuple[str, ...]
    registry: str
    # An entry point other than the vIP is published at this plus its native host part.
    published_base: int


def settings(topology: Topology) -> Swarm:
    """[runtimes.swarm], checked: a stack cannot be written without it."""
    table = topology.planned.get("swarm")
    if table is None:
        raise TopologyError(
            f"the topology has no {WHERE} table: add one naming the sites, the registry, "
            "the overlay network and published_base (docs/swarm.md)"
        )
    return Swarm(
        network=_network(table),
        sites=_sites(table),
        registry=_registry(table),
        published_base=_published_base(table),
    )


def _network(table: Mapping[str, Any]) -> ipaddress.IPv4Network:
    value = table.get("network")
    try:
        return ipaddress.IPv4Network(value)
    except (TypeError, ValueError) as exc:
        raise TopologyError(
            f"{WHERE}: field 'network' {value!r} is not an IPv4 network: {exc}"
        ) from exc


def _sites(table: Mapping[str, Any]) -> tuple[str, ...]:
    sites = table.get("sites")
    if not isinstance(sites, list) or not sites or not all(isinstance(s, str) for s in sites):
        raise TopologyError(f"{WHERE}: field 'sites' must list the sites' names, e.g. ['site-1']")
    for site in sites:
        if not SITE_NAME.match(site):
            raise TopologyError(
                f"{WHERE}: site {site!r} must be lower-case letters, digits and '-' "
                "(it is a machine label's value)"
            )
    if len(set(sites)) != len(sites):
        raise TopologyError(f"{WHERE}: field 'sites' names a site twice: {sites}")
    return tuple(sites)


def _registry(table: Mapping[str, Any]) -> str:
    registry = table.get("registry")
    if not isinstance(registry, str) or not re.match(r"^[A-Za-z0-9.-]+(:[0-9]+)?$", registry):
        raise TopologyError(
            f"{WHERE}: field 'registry' {registry!r} must be a registry's host[:port], "
            "e.g. 127.0.0.1:5000 (no scheme, no path)"
        )
    return registry


def _published_base(table: Mapping[str, Any]) -> int:
    base = table.get("published_base")
    if isinstance(base, bool) or not isinstance(base, int) or not 1024 <= base <= 65535 - 256:
        raise TopologyError(
            f"{WHERE}: field 'published_base' must be a port in 1024..65279, got {base!r}"
        )
    return base


def _group(node: Node) -> str:
    """The group NODE is placed with: its Patroni cluster, else its kind."""
    return node.cluster or node.kind


def sites(topology: Topology) -> dict[str, str]:
    """Node name -> its site, for every node whose kind has a placement."""
    swarm = settings(topology)
    groups: dict[str, list[Node]] = {}
    for node in topology.nodes.values():
        if kinds.of(node).placement:
            groups.setdefault(_group(node), []).append(node)
    placed: dict[str, str] = {}
    started: dict[str, int] = {}  # kind -> how many of its groups were dealt so far
    for group, members in groups.items():
        kind = members[0].kind
        if kinds.of(members[0]).placement == "apart" and len(members) > len(swarm.sites):
            raise TopologyError(
                f"{group}: {len(members)} members ({', '.join(n.name for n in members)}) but "
                f"{len(swarm.sites)} sites in {WHERE}; each member needs a site of its own "
                "(add a site or remove a member)"
            )
        first = started.get(kind, 0)
        started[kind] = first + 1
        for index, node in enumerate(members):
            placed[node.name] = swarm.sites[(first + index) % len(swarm.sites)]
    return placed


def constraint(site: str) -> str:
    """The placement constraint that keeps a service on SITE's machines."""
    return f"node.labels.{SITE_LABEL} == {site}"


def member_hostname(topology: Topology) -> str:
    """The vIP service's hostname template, which names each replica after its member.

    A replica knows only its slot, so the members must be named by it: lb-1, lb-2, ...
    """
    vip = topology.vip
    stem = vip.members[0].removesuffix("1")
    expected = tuple(f"{stem}{slot}" for slot in range(1, len(vip.members) + 1))
    if stem == vip.members[0] or vip.members != expected:
        raise TopologyError(
            f"node {vip.name!r}: its members {', '.join(vip.members)} must be named by their "
            f"place for the Swarm stack ({', '.join(expected)}): a replica knows only its slot"
        )
    return f"{stem}{TASK_SLOT}"


@dataclass(frozen=True)
class PublishedPort:
    """A port the routing mesh answers on, on every machine of the swarm."""

    target: int
    published: int
    protocol: str  # "tcp" or "udp"


def published(topology: Topology, node: Node) -> list[PublishedPort]:
    """The ports NODE is published on: the vIP's own, the other entry points' moved.

    A published port is the whole swarm's, and the vIP, an edge and the console all use 8080
    on addresses of their own natively: the vIP keeps its numbers (the shop's address), every
    other entry point gets published_base plus the host part of its native address.
    """
    spec = kinds.of(node)
    ports = composefile.published_ports(node)
    if node.kind == "vip":
        return [PublishedPort(p, p, "tcp") for p in ports]
    # Read as native runs it (swarmfiles): the running network is the one addresses are in.
    host_part = int(ipaddress.IPv4Address(node.host_address)) - int(
        topology.lab.runtime.network.network_address
    )
    number = settings(topology).published_base + host_part
    if len(ports) > 1 or number > 65535:
        raise TopologyError(
            f"node {node.name!r}: the Swarm stack publishes one port per entry point, at "
            f"published_base + its host part ({number}); it has {ports}"
        )
    return [PublishedPort(p, number, proto) for p in ports for proto in spec.published]
