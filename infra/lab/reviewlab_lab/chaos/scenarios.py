"""The chaos scenarios: what each breaks, on which node, and how it is put back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from reviewlab_common.topology import Topology, TopologyError

from reviewlab_lab.chaos.watch import Look
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.runtimes.base import Runtime

# What a target must be: a kind of node, or a Postgres member in a role, or the load
# balancer that holds the vIP now.
PRIMARY, REPLICA = "primary", "replica"
HOLDER = "vip-holder"


@dataclass(frozen=True)
class Scenario:
    name: str
    target: str  # a node kind, PRIMARY / REPLICA (a Postgres member in that role), or HOLDER
    fault: str  # kill (restarts by itself), hold (down until restored), partition, switch
    duration: float  # seconds the fault lasts (hold, partition, switch)
    about: str
    default_cluster: str = ""  # for PRIMARY / REPLICA targets without --target
    goal: str = ""


SCENARIOS = {
    s.name: s
    for s in [
        Scenario(
            "replica-kill",
            REPLICA,
            "hold",
            10,
            "SIGKILL a read replica of the catalog (Patroni and its Postgres) and keep it down. "
            "Reads that went to it move to the other replica or the primary; writes never "
            "needed it. When it is started again Patroni rejoins it as a streaming replica and "
            "it replays what it missed. Watch the replica vanish from replicas.catalog and its "
            "lag fall back to 0.",
            "catalog",
            "0 failed reads, 0 failed writes",
        ),
        Scenario(
            "primary-crash",
            PRIMARY,
            "kill",
            0,
            "SIGKILL a shard's primary and let the runtime restart it at once. Patroni finds "
            "its own leader key still valid and takes the primary role back: a crash, not a "
            "failover. Watch the shard's writes pause for about the time a Postgres restart "
            "takes, and no promotion.",
            "reviews-1",
            "writes back within 3 s",
        ),
        Scenario(
            "primary-loss",
            PRIMARY,
            "hold",
            35,
            "SIGKILL a shard's primary and keep it down: a node lost for good. The leader key "
            "in etcd expires after Patroni's ttl, the synchronous replica promotes itself, "
            "the primary's DNS name follows, and the web tier answers 503 quickly meanwhile. "
            "When the old node starts again it rewinds and rejoins as a replica.",
            "reviews-1",
            "writes back within 22 s, 0 acknowledged writes lost",
        ),
        Scenario(
            "primary-loss-during-move",
            PRIMARY,
            "move",
            30,
            "Move three of the load's buckets off reviews-1 to reviews-2 and, right after the "
            "copy, SIGKILL reviews-1's primary and keep it down. The move retries until the "
            "synchronous replica is promoted, catches up from the change log (an ordinary "
            "table, replicated with everything else), cuts over and flips the map. At every "
            "moment the map points at a complete copy. The buckets move back at the end.",
            "reviews-1",
            "0 acknowledged writes lost, the move finished and verified",
        ),
        Scenario(
            "primary-partition",
            PRIMARY,
            "partition",
            40,
            "Cut a shard's primary off from etcd and from its peers while it keeps running and "
            "clients still reach it. It cannot renew its leader key: it demotes itself, and "
            "with synchronous replication it cannot acknowledge a commit its peers did not "
            "receive. A replica takes over. Watch for two primaries accepting writes: there "
            "must be none.",
            "reviews-1",
            "0 writes acknowledged by the cut-off node after its leader key expired",
        ),
        Scenario(
            "etcd-member-loss",
            "etcd",
            "hold",
            20,
            "SIGKILL one etcd member and keep it down. The other two keep a quorum, so every "
            "Patroni cluster keeps its leader key and nothing changes role.",
            goal="no role change",
        ),
        Scenario(
            "web-kill",
            "web",
            "hold",
            10,
            "SIGKILL a web server and keep it down. The load balancer's passive checks mark it "
            "failed and retry idempotent requests on the other web servers.",
            goal="0 failed GETs",
        ),
        Scenario(
            "worker-kill",
            "worker",
            "hold",
            20,
            "SIGKILL a segmentation worker and keep it down. Jobs it held stay pending in the "
            "Redis stream until the other worker claims them.",
            goal="every job finishes",
        ),
        Scenario(
            "redis-stop",
            "redis",
            "hold",
            10,
            "Stop Redis. Reviews still commit with their outbox row; photo jobs wait in the "
            "outbox and are published when Redis is back.",
            goal="0 failed writes",
        ),
        Scenario(
            "minio-stop",
            "minio",
            "hold",
            10,
            "Stop MinIO. Text reviews and reads go on; a photo upload gets a clear 503.",
            goal="0 failed text writes",
        ),
        Scenario(
            "edge-kill",
            "edge",
            "hold",
            10,
            "SIGKILL the CDN edge and keep it down: media URLs fail, the API does not.",
            goal="0 failed API requests",
        ),
        Scenario(
            "lb-kill",
            HOLDER,
            "kill",
            0,
            "SIGKILL the load balancer that holds the vIP: its nginx and its keepalived at "
            "once, no goodbye advert. The standby misses three adverts (0.75 s) and takes the "
            "address; clients retry a read that failed once, 1.5 s later. The runtime restarts "
            "the killed member, which comes back as the standby (nopreempt): the address does "
            "not move a second time. Watch the vIP move in the events.",
            goal="0 failed reads after the client's one retry, no read waiting over 3 s",
        ),
        Scenario(
            "lb-partition",
            HOLDER,
            "partition",
            10,
            "Cut the load balancer that holds the vIP off from its peer while both keep "
            "running and clients still reach both. Each stops hearing the other's adverts: "
            "the standby takes the address as if the holder were dead, and the holder keeps "
            "it. Two members carry the vIP (split brain); the machine sends to the one that "
            "announced it last. Both forward to the same web servers, so a stateless pair "
            "loses nothing but the connections that land on the wrong side. When the cut "
            "heals, the two masters hear each other and the higher priority keeps the "
            "address (nopreempt only holds a standby back): it may move a second time.",
            goal="0 failed reads after the client's one retry, one member carries the vIP after",
        ),
        Scenario(
            "lb-switch",
            "lb",
            "switch",
            10,
            "Switch the load balancer between layer 7 and layer 4 under load (a graceful "
            "nginx reload), then back.",
            goal="0 failed requests",
        ),
    ]
}


def scenario(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise TopologyError(f"no scenario {name!r}; scenarios: {', '.join(SCENARIOS)}")
    return SCENARIOS[name]


def role_of(look: Look, name: str) -> str | None:
    for members in look.clusters.values():
        if name in members:
            return PRIMARY if members[name].role == "leader" else REPLICA
    return None


def pick_target(topology: Topology, chosen: Scenario, look: Look, asked: str | None) -> str:
    """The node to break: ASKED if it fits the scenario, else one chosen from the live roles."""
    if asked is not None:
        if asked not in topology.nodes:
            raise TopologyError(f"no node named {asked!r}; nodes: {', '.join(topology.nodes)}")
        node = topology.nodes[asked]
        if chosen.target in (PRIMARY, REPLICA):
            role = role_of(look, asked) if node.kind == "postgres" else None
            if role != chosen.target:
                fits = [n for n in topology.nodes if role_of(look, n) == chosen.target]
                raise TopologyError(
                    f"{chosen.name} needs a Postgres {chosen.target}; {asked} is "
                    f"{role or 'a ' + node.kind + ' node'}; "
                    f"{chosen.target} nodes now: {', '.join(fits)}"
                )
        elif chosen.target == HOLDER:
            if node.kind != "lb":
                listed = ", ".join(n.name for n in topology.load_balancers())
                raise TopologyError(
                    f"{chosen.name} needs a load balancer; {asked} is a {node.kind} node; "
                    f"choose one of: {listed} (without --target: the one holding the vIP)"
                )
        elif node.kind != chosen.target:
            fits = [n.name for n in topology.of_kind(chosen.target)]
            raise TopologyError(
                f"{chosen.name} needs a {chosen.target} node; {asked} is a {node.kind} node; "
                f"choose one of: {', '.join(fits)}"
            )
        return asked
    if chosen.target == HOLDER:
        if look.vip_holder is None:
            raise LabFailed("no load balancer holds the vIP right now: is the lab up?")
        return look.vip_holder
    if chosen.target in (PRIMARY, REPLICA):
        members = look.clusters.get(chosen.default_cluster, {})
        if not members:
            raise LabFailed(
                f"no Patroni member of {chosen.default_cluster} answered: is the lab up?"
            )
        if chosen.target == PRIMARY:
            leaders = [n for n, m in members.items() if m.role == "leader"]
            if not leaders:
                raise LabFailed(f"{chosen.default_cluster} has no primary right now; try again")
            return leaders[0]
        # The asynchronous replica first: losing it never holds up a synchronous commit.
        replicas = sorted(
            (n for n, m in members.items() if m.role != "leader"),
            key=lambda n: (members[n].role == "sync_standby", n),
        )
        if not replicas:
            raise LabFailed(f"{chosen.default_cluster} has no replica right now")
        return replicas[0]
    nodes = topology.of_kind(chosen.target)
    if chosen.target == "etcd" and len(nodes) < 3:
        raise TopologyError(
            f"etcd-member-loss needs at least 3 etcd members; the topology has {len(nodes)}: "
            "losing the only one stops every cluster's DCS"
        )
    return nodes[-1].name if chosen.target == "etcd" else nodes[0].name


def peers_of(topology: Topology, name: str) -> list[str]:
    """Who a partitioned node is cut off from: etcd and the other members of its cluster; for
    a load balancer, the other members of the vIP's pair."""
    node = topology.nodes[name]
    if node.kind == "lb":
        return [m.name for m in topology.load_balancers() if m.name != name]
    others = [m.name for m in topology.clusters[node.cluster].members] if node.cluster else []
    return [n.name for n in topology.of_kind("etcd")] + [n for n in others if n != name]


def hold_down(runtime: Runtime, name: str, *, kill: bool, within: float = 60) -> None:
    """Crash (or stop) NAME and keep it stopped until restored."""
    if kill:
        runtime.lose(name)
    else:
        runtime.stop(name)
    limit = time.monotonic() + within
    while runtime.state(name) != "stopped":
        if time.monotonic() > limit:
            raise LabFailed(f"{name} did not stop (state {runtime.state(name)})")
        time.sleep(0.1)


@dataclass
class Fault:
    """The fault in place; undo() puts everything back, once, whatever happened."""

    undo_steps: list[Callable[[], object]]
    # What the fault reports beside the load's figures (a move's outcome, for one).
    extra: dict[str, object] = field(default_factory=dict)

    def undo(self) -> list[str]:
        problems = []
        while self.undo_steps:
            step = self.undo_steps.pop()
            try:
                step()
            except Exception as exc:
                problems.append(str(exc))
        return problems


def inject(
    topology: Topology, runtime: Runtime, chosen: Scenario, target: str, fault: Fault
) -> None:
    """Break TARGET as CHOSEN says; FAULT learns how to put it back before each step."""
    match chosen.fault:
        case "kill":
            runtime.kill(target)
        case "hold":
            fault.undo_steps.append(lambda: runtime.start(target))
            kill = chosen.target not in ("redis", "minio")
            hold_down(runtime, target, kill=kill)
        case "partition":
            peers = peers_of(topology, target)
            fault.undo_steps.append(lambda: runtime.heal(target, peers))
            runtime.partition(target, peers)
        case "move":
            from reviewlab_lab.chaos.load import PRODUCTS
            from reviewlab_lab.resharding.chaosmove import MoveUnderFault

            cluster = topology.nodes[target].cluster or ""
            move = MoveUnderFault(topology, cluster, PRODUCTS)
            fault.undo_steps.append(
                lambda: fault.extra.setdefault("move", move.finish_and_move_back())
            )
            move.start_and_hold()
            fault.undo_steps.append(lambda: runtime.start(target))
            hold_down(runtime, target, kill=True)
            move.go_on()
        case "switch":
            before = runtime.lb_mode()
            other = "l4" if before.layer == "l7" else "l7"
            fault.undo_steps.append(lambda: runtime.apply_lb_mode(before))
            runtime.apply_lb_mode(replace(before, layer=other))
