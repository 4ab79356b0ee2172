"""The lab's topology: every node, its kind, address and ports, read from one TOML file."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

NODE_KINDS = frozenset(
    {
        *("dns", "etcd", "postgres", "redis", "minio", "lb", "edge", "web", "worker"),
        # The CDN's origin shield: the one cache the edges pull from, the one reader of MinIO.
        "shield",
        # The lab console's side: Prometheus, the exporters of the nodes that have no
        # /metrics of their own (each watches one node), and the console page itself.
        *("metrics", "nginx-exporter", "redis-exporter", "bind-exporter", "console"),
        # The trace store and its UI (Zipkin): every Python service sends it spans.
        "tracing",
        # The floating address the load balancers share (VRRP): no process of its own; the
        # member that holds it answers on it.
        "vip",
    }
)
# Kinds whose node reads another node's figures for Prometheus: its field 'watches' names it.
WATCHING_KINDS = frozenset({"nginx-exporter", "redis-exporter", "bind-exporter"})
CLUSTER_PURPOSES = frozenset({"catalog", "shard"})
WEB_ROLES = frozenset({"api", "upload"})
# Kinds the lab runs exactly one node of; the code asks for them with `Topology.one`.
SINGLE_KINDS = ("dns", "redis", "minio", "vip", "shield")
# Kinds that must have at least one node.
REQUIRED_KINDS = (*SINGLE_KINDS, "lb", "etcd", "edge", "web")
# The ports a vIP answers on: its members', which must agree (nginx listens on them there).
VIP_PORT_FIELDS = ("port", "ceiling_port")
PORT_FIELDS = ("port", "rest_port", "peer_port", "console_port", "ceiling_port", "stats_port")
# Where the topology file is: the lab names it for every node's process and its own commands
# (reviewlab_lab.paths.TOPOLOGY_PATH); the shared library does not guess from its own location.
TOPOLOGY_ENV = "REVIEWLAB_TOPOLOGY"
# The runtimes that can run the lab: every node a process on its own loopback address, or a
# container on the lab's bridge network. Node addresses are written once, for the native
# runtime; a node keeps its host part in every runtime's network (127.0.0.21 -> 172.30.0.21).
RUNTIMES = ("native", "compose")
# Runtimes the lab writes a deployment file for but does not run itself: their [runtimes.*]
# table is optional and kept as written (Topology.planned), for the lab's generator to read.
PLANNED_RUNTIMES = ("swarm",)
RUNTIME_ENV = "REVIEWLAB_RUNTIME"
# The fields of a [runtimes.*] table the shared library reads; the rest are the driver's.
RUNTIME_FIELDS = ("network", "gateway", "connect_timeout_ms")
DATA_DIR_ENV = "REVIEWLAB_DATA_DIR"


class TopologyError(ValueError):
    """The topology file is not usable; the message names the node and the field."""


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    # Where the node is reached in the running runtime's network.
    address: str
    port: int
    # Where the machine's own programs reach an entry point (the vIP, the edge, the DNS): the
    # native address, which the Compose runtime publishes its containers' ports on.
    host_address: str
    cluster: str | None = None
    rest_port: int | None = None
    peer_port: int | None = None
    console_port: int | None = None
    ceiling_port: int | None = None
    stats_port: int | None = None
    roles: tuple[str, ...] = ()
    # An exporter's node: the one whose figures it reads (WATCHING_KINDS).
    watches: str | None = None
    # A CDN edge: the client networks it is near, whose DNS answer for cdn is this edge
    # (GeoDNS); a client in none of them gets the edge [services] names.
    near: tuple[str, ...] = ()
    # A vIP: the load balancers that may hold it, in the order they win a first election.
    members: tuple[str, ...] = ()

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def host_url(self) -> str:
        return f"http://{self.host_address}:{self.port}"


@dataclass(frozen=True)
class Cluster:
    name: str
    purpose: str
    synchronous_mode: bool
    members: tuple[Node, ...]
    # A shard added after the lab began: the first shard map gives it no buckets, and
    # `reviewlab shard move` / `rebalance` give it some.
    starts_empty: bool = False


@dataclass(frozen=True)
class Runtime:
    """One way of running the lab's nodes, and the network its nodes live in."""

    name: str
    network: ipaddress.IPv4Network
    # The bridge's own address (Compose): a source there is the host, never a lab node.
    gateway: str | None = None
    # How long reaching a member on this network may take before it counts as down
    # ([runtimes.*] connect_timeout_ms): one machine or one bridge answers in well under 1 ms.
    connect_timeout_s: float = 0.05
    # The rest of the runtime's table, which only its driver reads (the lab's; e.g. the
    # Compose project's name): the services never need it.
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def machine_address(self) -> str:
        """Where the machine's own programs (CLI, tests, load generators) appear to the nodes:
        the bridge's gateway under Compose, the network's first address natively."""
        return self.gateway or str(self.network.network_address + 1)


@dataclass(frozen=True)
class Lab:
    domain: str
    data_dir: Path
    buckets: int
    runtime: Runtime

    @property
    def internal_network(self) -> str:
        """Sources in this network see the DNS's internal view."""
        return str(self.runtime.network)


@dataclass(frozen=True)
class Tracing:
    """[tracing]: whether the services trace, and the share of new traces they keep."""

    enabled: bool = False
    sample_ratio: float = 1.0


@dataclass(frozen=True)
class Topology:
    lab: Lab
    nodes: dict[str, Node]
    clusters: dict[str, Cluster]
    services: dict[str, str] = field(default_factory=dict)
    tracing: Tracing = field(default_factory=Tracing)
    # [runtimes.<name>] of the PLANNED_RUNTIMES the file has, as written.
    planned: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.kind == kind]

    def one(self, kind: str) -> Node:
        """The single node of KIND (dns, redis, minio, lb); other kinds are asked for by name."""
        if kind not in SINGLE_KINDS:
            raise TopologyError(
                f"kind {kind!r} may have several nodes; name the one you mean "
                f"(single-node kinds: {', '.join(SINGLE_KINDS)})"
            )
        found = self.of_kind(kind)
        if not found:
            raise TopologyError(f"the topology has no node of kind {kind!r}")
        return found[0]

    @property
    def shards(self) -> list[Cluster]:
        return sorted(
            (c for c in self.clusters.values() if c.purpose == "shard"), key=lambda c: c.name
        )

    @property
    def catalog(self) -> Cluster:
        return next(c for c in self.clusters.values() if c.purpose == "catalog")

    def fqdn(self, name: str) -> str:
        return f"{name}.{self.lab.domain}"

    @property
    def vip(self) -> Node:
        """The floating address clients use for the shop: held by one of its load balancers."""
        return self.one("vip")

    def load_balancers(self) -> list[Node]:
        """The vIP's members, in its order (the first wins the first election)."""
        return [self.nodes[name] for name in self.vip.members]

    def node_at(self, address: str) -> Node | None:
        return next((n for n in self.nodes.values() if n.address == address), None)


def _require(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in table:
        raise TopologyError(f"{where}: missing field {key!r}")
    value = table[key]
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise TopologyError(f"{where}: field {key!r} must be {kind.__name__}, got {value!r}")
    return value


def _optional_int(table: dict[str, Any], key: str, where: str) -> int | None:
    return _require(table, key, int, where) if key in table else None


def _parse_runtimes(data: dict[str, Any]) -> dict[str, Runtime]:
    runtimes: dict[str, Runtime] = {}
    tables = _require(data, "runtimes", dict, "topology")
    unknown = sorted(set(tables) - {*RUNTIMES, *PLANNED_RUNTIMES})
    if unknown:
        raise TopologyError(
            f"[runtimes.{unknown[0]}]: not a runtime of the lab; "
            f"runtimes: {', '.join((*RUNTIMES, *PLANNED_RUNTIMES))}"
        )
    for name in RUNTIMES:
        where = f"[runtimes.{name}]"
        table = _require(tables, name, dict, "[runtimes]")
        try:
            network = ipaddress.IPv4Network(_require(table, "network", str, where))
        except ValueError as exc:
            raise TopologyError(f"{where}: field 'network' is not an IPv4 network: {exc}") from exc
        gateway = table.get("gateway")
        if gateway is not None and ipaddress.ip_address(gateway) not in network:
            raise TopologyError(f"{where}: field 'gateway' {gateway} is not in {network}")
        connect_ms = _require(table, "connect_timeout_ms", int, where)
        if not 1 <= connect_ms <= 10_000:
            raise TopologyError(f"{where}: field 'connect_timeout_ms' must be 1..10000 ms")
        options = {k: v for k, v in table.items() if k not in RUNTIME_FIELDS}
        runtimes[name] = Runtime(name, network, gateway, connect_ms / 1000, options)
    return runtimes


def _parse_planned(data: dict[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The tables of the PLANNED_RUNTIMES: only their generator knows their fields."""
    tables = data["runtimes"]
    return {
        name: dict(_require(tables, name, dict, "[runtimes]"))
        for name in PLANNED_RUNTIMES
        if name in tables
    }


def _in_runtime(native: Runtime, runtime: Runtime, address: str) -> str:
    """ADDRESS (written for the native network) in RUNTIME's network: same host part."""
    offset = int(ipaddress.IPv4Address(address)) - int(native.network.network_address)
    return str(runtime.network.network_address + offset)


def _parse_node(name: str, table: dict[str, Any], defaults: dict[str, Any]) -> Node:
    where = f"node {name!r}"
    kind = _require(table, "kind", str, where)
    if kind not in NODE_KINDS:
        raise TopologyError(
            f"{where}: field 'kind' is {kind!r}; known kinds: {', '.join(sorted(NODE_KINDS))}"
        )
    # Ports a kind always uses come from [defaults.<kind>]; a node may still set its own.
    kind_defaults = defaults.get(kind, {})
    table = {**{k: v for k, v in kind_defaults.items() if k in PORT_FIELDS}, **table}
    address = _require(table, "address", str, where)
    try:
        ipaddress.IPv4Address(address)
    except ValueError as exc:
        raise TopologyError(f"{where}: field 'address' {address!r} is not an IP address") from exc
    roles = tuple(table.get("roles", ["api", "upload"] if kind == "web" else []))
    near = tuple(_require(table, "near", list, where)) if "near" in table else ()
    if near and kind != "edge":
        raise TopologyError(f"{where}: field 'near' is for CDN edges (kind 'edge') only")
    for network in near:
        try:
            ipaddress.IPv4Network(network)
        except (TypeError, ValueError) as exc:
            raise TopologyError(
                f"{where}: field 'near' has {network!r}, which is not an IPv4 network "
                "(write it as 127.0.1.0/24)"
            ) from exc
    members = tuple(_require(table, "members", list, where)) if kind == "vip" else ()
    if "members" in table and kind != "vip":
        raise TopologyError(f"{where}: field 'members' is for the vIP (kind 'vip') only")
    if kind == "vip":
        if len(members) < 2 or not all(isinstance(m, str) for m in members):
            raise TopologyError(
                f"{where}: field 'members' must name at least two load balancers (kind 'lb')"
            )
        for field_name in VIP_PORT_FIELDS:
            if field_name in table:
                raise TopologyError(
                    f"{where}: field {field_name!r} comes from its members (set it on kind 'lb')"
                )
    for role in roles:
        if role not in WEB_ROLES:
            raise TopologyError(
                f"{where}: field 'roles' has unknown role {role!r}; known: {sorted(WEB_ROLES)}"
            )
    node = Node(
        name=name,
        kind=kind,
        address=address,
        # A vIP answers on its members' ports (filled in once every node is read).
        port=0 if kind == "vip" else _require(table, "port", int, where),
        host_address=address,
        cluster=table.get("cluster"),
        rest_port=_optional_int(table, "rest_port", where),
        peer_port=_optional_int(table, "peer_port", where),
        console_port=_optional_int(table, "console_port", where),
        ceiling_port=_optional_int(table, "ceiling_port", where),
        stats_port=_optional_int(table, "stats_port", where),
        roles=roles,
        watches=_require(table, "watches", str, where) if kind in WATCHING_KINDS else None,
        near=near,
        members=members,
    )
    if kind == "postgres":
        _require(table, "cluster", str, where)
        _require(table, "rest_port", int, where)
    if kind == "etcd":
        _require(table, "peer_port", int, where)
    return node


def _with_vip_ports(nodes: dict[str, Node]) -> dict[str, Node]:
    """NODES with each vIP's ports taken from its members, after checking who they are: load
    balancers that agree on their ports, each a member of one vIP."""
    claimed: dict[str, str] = {}
    for vip in [n for n in nodes.values() if n.kind == "vip"]:
        where = f"node {vip.name!r}"
        for name in vip.members:
            member = nodes.get(name)
            if member is None or member.kind != "lb":
                raise TopologyError(
                    f"{where}: field 'members' names {name!r}, which is not a node of kind 'lb'"
                )
            if name in claimed:
                raise TopologyError(
                    f"node {name!r} is a member of two vIPs: {claimed[name]}, {vip.name}"
                )
            claimed[name] = vip.name
        first = nodes[vip.members[0]]
        ports = {f: getattr(first, f) for f in VIP_PORT_FIELDS}
        for name in vip.members[1:]:
            theirs = {f: getattr(nodes[name], f) for f in VIP_PORT_FIELDS}
            if theirs != ports:
                raise TopologyError(
                    f"{where}: its members answer on different ports ({first.name}: {ports}, "
                    f"{name}: {theirs}); a vIP needs one set"
                )
        nodes[vip.name] = replace(vip, **ports)
    for node in nodes.values():
        if node.kind == "lb" and node.name not in claimed:
            raise TopologyError(
                f"node {node.name!r}: a load balancer must be a member of the vIP "
                "(add it to the 'members' of the node of kind 'vip')"
            )
    return nodes


def _parse_tracing(data: dict[str, Any]) -> Tracing:
    table = data.get("tracing", {})
    enabled = _require(table, "enabled", bool, "[tracing]") if "enabled" in table else False
    ratio = table.get("sample_ratio", 1.0)
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
        raise TopologyError(f"[tracing]: field 'sample_ratio' must be a number in 0..1: {ratio!r}")
    return Tracing(enabled=enabled, sample_ratio=float(ratio))


def parse(data: dict[str, Any], runtime: str = "native") -> Topology:
    """Validate a topology document and build the typed view of it as RUNTIME runs it."""
    if runtime not in RUNTIMES:
        raise TopologyError(f"unknown runtime {runtime!r}; runtimes: {', '.join(RUNTIMES)}")
    lab_table = _require(data, "lab", dict, "topology")
    runtimes = _parse_runtimes(data)
    native = runtimes["native"]
    lab = Lab(
        domain=_require(lab_table, "domain", str, "[lab]"),
        data_dir=Path(_require(lab_table, "data_dir", str, "[lab]")),
        buckets=_require(lab_table, "buckets", int, "[lab]"),
        runtime=runtimes[runtime],
    )
    defaults = data.get("defaults", {})
    for kind, table in defaults.items():
        where = f"[defaults.{kind}]"
        if kind not in NODE_KINDS:
            raise TopologyError(f"{where}: {kind!r} is not a node kind")
        for key in table:
            if key not in PORT_FIELDS:
                raise TopologyError(f"{where}: only ports have defaults ({', '.join(PORT_FIELDS)})")
            _require(table, key, int, where)
    nodes: dict[str, Node] = {}
    seen: dict[str, str] = {}
    for name, table in _require(data, "nodes", dict, "topology").items():
        node = _parse_node(name, table, defaults)
        if ipaddress.IPv4Address(node.address) not in native.network:
            raise TopologyError(
                f"node {name!r}: field 'address' {node.address} is not in the lab's network "
                f"{native.network} ([runtimes.native])"
            )
        for other in runtimes.values():
            there = _in_runtime(native, other, node.address)
            if there == other.gateway:
                raise TopologyError(
                    f"node {name!r}: field 'address' {node.address} would be {there}, which the "
                    f"{other.name} network keeps for its gateway; pick another address"
                )
        if node.address in seen:
            raise TopologyError(
                f"node {name!r}: field 'address' {node.address} is already used by node "
                f"{seen[node.address]!r}; every node needs its own address"
            )
        seen[node.address] = name
        nodes[name] = replace(node, address=_in_runtime(native, lab.runtime, node.address))
    clusters: dict[str, Cluster] = {}
    for name, table in _require(data, "clusters", dict, "topology").items():
        where = f"cluster {name!r}"
        purpose = _require(table, "purpose", str, where)
        if purpose not in CLUSTER_PURPOSES:
            raise TopologyError(
                f"{where}: field 'purpose' {purpose!r} is not one of catalog, shard"
            )
        members = tuple(n for n in nodes.values() if n.cluster == name)
        if not members:
            raise TopologyError(f"{where}: no node names it in its 'cluster' field")
        clusters[name] = Cluster(
            name=name,
            purpose=purpose,
            synchronous_mode=bool(table.get("synchronous_mode", True)),
            members=members,
            starts_empty=bool(table.get("starts_empty", False)),
        )
    for node in nodes.values():
        if node.kind == "postgres" and node.cluster not in clusters:
            raise TopologyError(
                f"node {node.name!r}: field 'cluster' {node.cluster!r} is not a [clusters] entry"
            )
    if sum(1 for c in clusters.values() if c.purpose == "catalog") != 1:
        raise TopologyError("[clusters]: exactly one cluster must have purpose 'catalog'")
    for node in nodes.values():
        if node.watches is not None and node.watches not in nodes:
            raise TopologyError(
                f"node {node.name!r}: field 'watches' {node.watches!r} is not a node of the lab"
            )
    nodes = _with_vip_ports(nodes)
    services = dict(data.get("services", {}))
    for service, target in services.items():
        if target not in nodes:
            raise TopologyError(f"[services]: {service!r} points at unknown node {target!r}")
    topology = Topology(
        lab=lab,
        nodes=nodes,
        clusters=clusters,
        services=services,
        tracing=_parse_tracing(data),
        planned=_parse_planned(data),
    )
    if topology.tracing.enabled and not topology.of_kind("tracing"):
        raise TopologyError("[tracing]: enabled, but no node has kind 'tracing' to send spans to")
    for kind in REQUIRED_KINDS:
        if not topology.of_kind(kind):
            raise TopologyError(f"the topology has no node of kind {kind!r}; the lab needs one")
    for kind in SINGLE_KINDS:
        extra = [n.name for n in topology.of_kind(kind)][1:]
        if extra:
            raise TopologyError(
                f"node {extra[0]!r}: the lab runs exactly one {kind!r} node "
                f"({topology.of_kind(kind)[0].name}); remove the others"
            )
    return topology


def load(path: Path | None = None, runtime: str | None = None) -> Topology:
    """Read and validate the topology file as RUNTIME runs it.

    PATH, else REVIEWLAB_TOPOLOGY names the file; REVIEWLAB_RUNTIME the runtime (native by
    default).
    """
    if path is None:
        named = os.environ.get(TOPOLOGY_ENV)
        if not named:
            raise TopologyError(
                f"{TOPOLOGY_ENV} is not set: name the lab's infra/topology.toml there "
                "(the lab sets it for every node and for its own commands)"
            )
        path = Path(named)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read the topology: {exc.strerror}") from exc
    return parse(data, runtime or os.environ.get(RUNTIME_ENV) or "native")


@cache
def current() -> Topology:
    """The topology this process runs in, read once.

    REVIEWLAB_DATA_DIR overrides the data directory: the machine keeps its copy of a Compose
    lab's state (the secrets) apart from the native lab's.
    """
    topology = load()
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        topology = replace(topology, lab=replace(topology.lab, data_dir=Path(data_dir)))
    return topology
