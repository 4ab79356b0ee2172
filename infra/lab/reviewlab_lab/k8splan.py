"""Which Kubernetes object stands for each lab node: the plan deploy/k8s/ is written from.

Nodes that run alike become one workload with a replica per node: a Patroni cluster is a
StatefulSet named after its scope, the web servers a Deployment per set of roles, any other
kind one workload named after the kind. A kind whose data outlives a container
(KindSpec.stateful) is a StatefulSet with a volume per pod, the rest Deployments. An exporter
runs beside the node it watches, as a sidecar in that node's pods. The vIP becomes the
Service in front of its members, and the DNS the cluster's own Services and DNS. Every node
of the topology ends up in `mapping`, which a unit test holds to.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from reviewlab_common.topology import PORT_FIELDS, WATCHING_KINDS, Node, Topology, TopologyError

from reviewlab_lab import kinds
from reviewlab_lab.kinds import KindSpec

# Kinds a cluster provides itself, and what a learner finds there instead.
REPLACED_BY_THE_CLUSTER = {
    "dns": "the cluster's DNS: a Service per workload; the public view: NetworkPolicies",
}
# Patroni finds its cluster's pods by this label (its `kubernetes.scope_label` default).
SCOPE_LABEL = "cluster-name"
# The names Kubernetes gives the ports, by the topology's port field.
PORT_NAMES = {
    "port": "main",
    "rest_port": "rest",
    "peer_port": "peers",
    "console_port": "console",
    "ceiling_port": "ceiling",
    "stats_port": "stats",
}


@dataclass(frozen=True)
class Port:
    name: str
    number: int
    protocol: str  # "TCP" or "UDP"


@dataclass(frozen=True)
class Probe:
    """How Kubernetes asks a pod whether it is ready: a GET of PATH, or a TCP connect."""

    port: int
    path: str | None = None


@dataclass(frozen=True)
class Workload:
    """Lab nodes that run alike, as one Deployment or StatefulSet with a pod per node."""

    name: str
    kind: str
    nodes: tuple[Node, ...]
    cluster: str | None = None
    sidecars: tuple[Node, ...] = ()  # exporters that watch its nodes, one per pod

    @property
    def spec(self) -> KindSpec:
        return kinds.spec(self.kind)

    @property
    def controller(self) -> str:
        return "StatefulSet" if self.spec.stateful else "Deployment"

    @property
    def group_label(self) -> tuple[str, str]:
        """The label every pod of the workload has and no other pod has."""
        if self.cluster is not None:
            return SCOPE_LABEL, self.cluster
        return "app.kubernetes.io/name", self.name

    @property
    def ports(self) -> tuple[Port, ...]:
        return ports_of(self.nodes)

    @property
    def probe(self) -> Probe:
        """The readiness check every pod of the workload runs."""
        probes = {probe_of(n) for n in self.nodes}
        if len(probes) > 1:
            raise TopologyError(
                f"nodes {', '.join(n.name for n in self.nodes)}: a workload's pods are alike, "
                "but their readiness checks differ; give them the same ports"
            )
        return probes.pop()


def ports_of(nodes: tuple[Node, ...]) -> tuple[Port, ...]:
    """The ports NODES listen on, named, which every one of them must share."""
    first = nodes[0]
    spec = kinds.of(first)
    found = tuple(
        Port(PORT_NAMES[field], number, "UDP" if field in spec.udp_ports else "TCP")
        for field in PORT_FIELDS
        if (number := getattr(first, field))
    )
    for node in nodes[1:]:
        theirs = tuple(getattr(node, f) for f in PORT_FIELDS)
        if theirs != tuple(getattr(first, f) for f in PORT_FIELDS):
            raise TopologyError(
                f"node {node.name!r}: its ports differ from {first.name}'s, and both would be "
                "pods of one workload; give them the same ports"
            )
    return found


def probe_of(node: Node) -> Probe:
    """The kind's readiness check: its HTTP GET where it has one, else a TCP connect."""
    spec = kinds.of(node)
    if spec.ready_check == "http" and spec.ready_url is not None:
        url = urlsplit(spec.ready_url(node))
        assert url.port is not None
        return Probe(url.port, url.path or "/")
    return Probe(node.port)


def workloads(topology: Topology) -> list[Workload]:
    """Every workload, in the topology's order of their first nodes."""
    groups: dict[str, list[Node]] = {}
    clusters: dict[str, str] = {}
    for node in topology.nodes.values():
        spec = kinds.of(node)
        if not spec.runs or node.kind in REPLACED_BY_THE_CLUSTER or node.kind in WATCHING_KINDS:
            continue
        if node.cluster is not None:
            name = node.cluster
            clusters[name] = name
        elif node.kind == "web":
            name = "-".join(("web", *node.roles))
        else:
            name = node.kind
        groups.setdefault(name, []).append(node)
    found = [
        Workload(name, nodes[0].kind, tuple(nodes), clusters.get(name))
        for name, nodes in groups.items()
    ]
    return [_with_sidecars(topology, w) for w in found]


def _with_sidecars(topology: Topology, workload: Workload) -> Workload:
    members = {n.name for n in workload.nodes}
    watchers = tuple(n for n in topology.nodes.values() if n.watches in members)
    kinds_seen = {w.kind for w in watchers}
    # One sidecar per exporter kind: every pod of the workload gets its own copy.
    sidecars = tuple(next(w for w in watchers if w.kind == k) for k in sorted(kinds_seen))
    return Workload(workload.name, workload.kind, workload.nodes, workload.cluster, sidecars)


def workload_of(topology: Topology, name: str) -> Workload | None:
    """The workload node NAME runs in, or None when it has none."""
    return next((w for w in workloads(topology) if name in {n.name for n in w.nodes}), None)


def mapping(topology: Topology) -> dict[str, str]:
    """Node name -> what stands for it on a cluster, for every node of the topology."""
    found: dict[str, str] = {}
    for workload in workloads(topology):
        for ordinal, node in enumerate(workload.nodes):
            found[node.name] = f"{workload.controller} {workload.name}, pod {ordinal + 1}"
        members = {n.name for n in workload.nodes}
        for watcher in topology.nodes.values():
            if watcher.watches in members:
                found[watcher.name] = f"container {watcher.kind} in {workload.name}'s pods"
    for node in topology.nodes.values():
        if node.kind in REPLACED_BY_THE_CLUSTER:
            found[node.name] = REPLACED_BY_THE_CLUSTER[node.kind]
        elif node.kind == "vip":
            found[node.name] = f"Service {public_name(topology, node)} (type LoadBalancer)"
        elif node.name not in found and _watches_the_cluster(topology, node):
            found[node.name] = f"no counterpart: it watches {node.watches}, the cluster's own"
    missing = [n for n in topology.nodes if n not in found]
    if missing:
        raise TopologyError(f"nodes {', '.join(missing)} have no counterpart in deploy/k8s")
    return {name: found[name] for name in topology.nodes}


def _watches_the_cluster(topology: Topology, node: Node) -> bool:
    """An exporter of a node the cluster replaces: the cluster's part has figures of its own."""
    watched = topology.nodes.get(node.watches or "")
    return watched is not None and watched.kind in REPLACED_BY_THE_CLUSTER


def public_name(topology: Topology, node: Node) -> str:
    """The public name ([services]) that points at NODE; its own name when none does."""
    return next((s for s, target in topology.services.items() if target == node.name), node.name)


@dataclass(frozen=True)
class EntryPoint:
    """A Service reached from outside the lab: the public view's names, the published ports."""

    name: str
    workload: Workload
    ports: tuple[Port, ...]


def entry_points(topology: Topology) -> list[EntryPoint]:
    """The lab's published nodes (KindSpec.published) that run on the cluster, by public name.

    The vIP's Service leads to its members; an entry point's kind publishes its port (and its
    ceiling port where KindSpec.publishes_ceiling says so), as under Compose.
    """
    found: dict[str, EntryPoint] = {}
    for node in topology.nodes.values():
        spec = kinds.of(node)
        if not spec.published:
            continue
        behind = topology.nodes[node.members[0]] if node.kind == "vip" else node
        workload = workload_of(topology, behind.name)
        if workload is None:
            continue
        fields = ("port", "ceiling_port") if spec.publishes_ceiling else ("port",)
        ports = tuple(p for p in workload.ports if p.name in {PORT_NAMES[f] for f in fields})
        # Two edges are one workload: its public name is the first one's ([services] cdn).
        if not any(e.workload.name == workload.name for e in found.values()):
            name = public_name(topology, node)
            found[name] = EntryPoint(name, workload, ports)
    return list(found.values())
