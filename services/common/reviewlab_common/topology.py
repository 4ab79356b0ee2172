"""The lab's topology: every node, its kind, address and ports, read from one TOML file."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

NODE_KINDS = frozenset({"dns", "etcd", "postgres", "redis", "minio", "lb", "edge", "web", "worker"})
CLUSTER_PURPOSES = frozenset({"catalog", "shard"})
WEB_ROLES = frozenset({"api", "upload"})
# Kinds the lab runs exactly one node of; the code asks for them with `Topology.one`.
SINGLE_KINDS = ("dns", "redis", "minio", "lb")
# Kinds that must have at least one node.
REQUIRED_KINDS = (*SINGLE_KINDS, "etcd", "edge", "web")
PORT_FIELDS = ("port", "rest_port", "peer_port", "console_port", "ceiling_port")
DEFAULT_PATH = Path(__file__).resolve().parents[3] / "infra" / "topology.toml"


class TopologyError(ValueError):
    """The topology file is not usable; the message names the node and the field."""


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    address: str
    port: int
    cluster: str | None = None
    rest_port: int | None = None
    peer_port: int | None = None
    console_port: int | None = None
    ceiling_port: int | None = None
    roles: tuple[str, ...] = ()

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"


@dataclass(frozen=True)
class Cluster:
    name: str
    purpose: str
    synchronous_mode: bool
    members: tuple[Node, ...]


@dataclass(frozen=True)
class Lab:
    domain: str
    internal_network: str
    data_dir: Path
    cache_dir: Path
    venv: Path
    run_user: str
    buckets: int
    minio_version: str
    postgres_bin: Path


@dataclass(frozen=True)
class Topology:
    lab: Lab
    nodes: dict[str, Node]
    clusters: dict[str, Cluster]
    services: dict[str, str] = field(default_factory=dict)

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
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise TopologyError(f"{where}: field 'address' {address!r} is not an IP address") from exc
    if not ip.is_loopback:
        raise TopologyError(f"{where}: field 'address' {address} must be in 127.0.0.0/8")
    roles = tuple(table.get("roles", ["api", "upload"] if kind == "web" else []))
    for role in roles:
        if role not in WEB_ROLES:
            raise TopologyError(
                f"{where}: field 'roles' has unknown role {role!r}; known: {sorted(WEB_ROLES)}"
            )
    node = Node(
        name=name,
        kind=kind,
        address=address,
        port=_require(table, "port", int, where),
        cluster=table.get("cluster"),
        rest_port=_optional_int(table, "rest_port", where),
        peer_port=_optional_int(table, "peer_port", where),
        console_port=_optional_int(table, "console_port", where),
        ceiling_port=_optional_int(table, "ceiling_port", where),
        roles=roles,
    )
    if kind == "postgres":
        _require(table, "cluster", str, where)
        _require(table, "rest_port", int, where)
    if kind == "etcd":
        _require(table, "peer_port", int, where)
    return node


def parse(data: dict[str, Any]) -> Topology:
    """Validate a topology document and build the typed view of it."""
    lab_table = _require(data, "lab", dict, "topology")
    lab = Lab(
        domain=_require(lab_table, "domain", str, "[lab]"),
        internal_network=_require(lab_table, "internal_network", str, "[lab]"),
        data_dir=Path(_require(lab_table, "data_dir", str, "[lab]")),
        cache_dir=Path(_require(lab_table, "cache_dir", str, "[lab]")),
        venv=Path(_require(lab_table, "venv", str, "[lab]")),
        run_user=_require(lab_table, "run_user", str, "[lab]"),
        buckets=_require(lab_table, "buckets", int, "[lab]"),
        minio_version=_require(lab_table, "minio_version", str, "[lab]"),
        postgres_bin=Path(_require(lab_table, "postgres_bin", str, "[lab]")),
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
        if node.address in seen:
            raise TopologyError(
                f"node {name!r}: field 'address' {node.address} is already used by node "
                f"{seen[node.address]!r}; every node needs its own address"
            )
        seen[node.address] = name
        nodes[name] = node
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
        )
    for node in nodes.values():
        if node.kind == "postgres" and node.cluster not in clusters:
            raise TopologyError(
                f"node {node.name!r}: field 'cluster' {node.cluster!r} is not a [clusters] entry"
            )
    if sum(1 for c in clusters.values() if c.purpose == "catalog") != 1:
        raise TopologyError("[clusters]: exactly one cluster must have purpose 'catalog'")
    services = dict(data.get("services", {}))
    for service, target in services.items():
        if target not in nodes:
            raise TopologyError(f"[services]: {service!r} points at unknown node {target!r}")
    topology = Topology(lab=lab, nodes=nodes, clusters=clusters, services=services)
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


def load(path: Path | None = None) -> Topology:
    """Read and validate the topology file (REVIEWLAB_TOPOLOGY overrides the default path)."""
    path = path or Path(os.environ.get("REVIEWLAB_TOPOLOGY", DEFAULT_PATH))
    with path.open("rb") as handle:
        try:
            data = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise TopologyError(f"{path}: not valid TOML: {exc}") from exc
    return parse(data)


@cache
def current() -> Topology:
    """The topology this process runs in, read once."""
    return load()
