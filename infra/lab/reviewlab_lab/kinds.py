"""The registry of node kinds: what the lab knows about each kind, in one entry per kind.

Both runtimes, readiness, status, the CLI and the Compose file read this table instead of
keeping their own; render.py writes a node's configs and describes its process with the
config writer and the program its entry names. Adding a kind is one KindSpec here plus its
templates (and, for a process the lab does not run yet, a writer and a program registered in
render.py); docs/architecture.md walks through an example.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reviewlab_common.topology import Node, TopologyError

# How a kind says it is ready. "http": a GET of its ready_url answers 200. "dns": the
# server answers for ns.<domain>. "redis": the server answers a PING.
READY_CHECKS = ("http", "dns", "redis")
# Faults the lab can switch on a node of the kind, besides what any node suffers.
FAULTS = ("delay",)
# How the Swarm stack places a group of the kind's nodes (a Patroni cluster, or every node of
# the kind) over the lab's sites (swarmplan). "apart": each member on a site of its own, and a
# group larger than the sites is refused. "spread": round robin, several to a site when the
# group is larger. A kind with neither may run anywhere.
PLACEMENTS = ("apart", "spread")


@dataclass(frozen=True)
class KindSpec:
    """One kind of node: its image, its lifecycle, its readiness, its label."""

    name: str
    image: str  # the image (Dockerfile target) its container runs
    stateful: bool  # its data outlives a container (a named volume at its data directory)
    stop_priority: int  # supervisord's priority: starts in ascending, stops in descending order
    ready_check: str  # one of READY_CHECKS
    ready_deadline_s: int  # how long `reviewlab up` waits for it (REVIEWLAB_SLOW scales it)
    role: str = ""  # the label `reviewlab status` shows when the node reports no role itself
    what: str = ""  # one line: what a node of the kind is (the README's node table)
    ready_url: Callable[[Node], str] | None = None  # for ready_check "http"
    reload_on_hup: bool = False  # re-reads its config on SIGHUP instead of a restart
    needs_provisioning: bool = False  # starts only once the lab is provisioned (second wave)
    provisioning_needs_it: bool = False  # provisioning writes into it: it must be ready first
    after: tuple[str, ...] = ()  # kinds whose nodes must be ready before it starts (Compose)
    published: tuple[str, ...] = ()  # "tcp" and/or "udp": its port is published on the machine
    publishes_ceiling: bool = False  # its ceiling_port is published too
    udp_ports: tuple[str, ...] = ()  # its port fields that listen on UDP (the others: TCP)
    start_period_s: int = 30  # Compose's grace before failed health checks count
    stop_grace: str | None = None  # Compose's wait before SIGKILL on stop
    faults: tuple[str, ...] = ()  # of FAULTS
    privileged: bool = False  # runs as root with NET_ADMIN (its keepalived moves the vIP)
    placement: str = ""  # one of PLACEMENTS, or "" (the Swarm stack puts it anywhere)
    config: str | None = None  # render.CONFIG_WRITERS: writes its configs (None: it reads none)
    program: str = ""  # render.PROGRAMS: describes its process (its command line)

    @property
    def runs(self) -> bool:
        """A process (a container under Compose) runs it; the vIP is only an address."""
        return bool(self.program)

    @property
    def wave(self) -> int:
        """1: infrastructure, started and waited for first; 2: the services on top of it."""
        return 2 if self.needs_provisioning else 1


def _http(path: str, port: str = "port") -> Callable[[Node], str]:
    def url(node: Node) -> str:
        return f"http://{node.address}:{getattr(node, port)}{path}"

    return url


def _exporter(kind: str, what: str, *, after: tuple[str, ...]) -> KindSpec:
    """A Prometheus exporter of Debian's: its own small node beside the node it watches."""
    return KindSpec(
        kind,
        what=what,
        program=kind,
        image="metrics",
        stateful=False,
        stop_priority=85,
        ready_check="http",
        ready_url=_http("/metrics"),
        ready_deadline_s=30,
        role="exporter",
        after=after,
    )


KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec(
            "dns",
            what="bind9: split-horizon views (GeoDNS for `cdn`), TSIG-signed dynamic updates",
            config="dns",
            program="dns",
            image="dns",
            stateful=True,
            stop_priority=10,
            ready_check="dns",
            ready_deadline_s=30,
            role="authoritative",
            provisioning_needs_it=True,
            published=("udp", "tcp"),
        ),
        KindSpec(
            "etcd",
            what="etcd: Patroni's DCS and the shard map; a majority of members must be up",
            program="etcd",
            image="etcd",
            stateful=True,
            stop_priority=20,
            ready_check="http",
            ready_url=_http("/health"),
            ready_deadline_s=30,
            role="member",
            # A majority must outlive a lost machine: three members on three sites.
            placement="apart",
            provisioning_needs_it=True,
        ),
        KindSpec(
            "postgres",
            what="Postgres under Patroni",
            config="patroni",
            program="patroni",
            image="postgres",
            stateful=True,
            stop_priority=30,
            # Patroni's /readiness: Postgres is up and, on a replica, streaming without lag.
            ready_check="http",
            ready_url=_http("/readiness", "rest_port"),
            ready_deadline_s=180,
            provisioning_needs_it=True,
            # A replica on its primary's machine is no copy: one member per site.
            placement="apart",
            after=("etcd", "dns"),
            start_period_s=120,
            # Patroni needs time to hand over or shut Postgres down cleanly.
            stop_grace="60s",
            # Patroni re-reads patroni.yml on SIGHUP and reloads Postgres: no failover for a
            # changed log format or parameter.
            reload_on_hup=True,
        ),
        KindSpec(
            "redis",
            what="Redis: the photo job streams; append-only file, `appendfsync always`",
            config="redis",
            program="redis",
            image="redis",
            stateful=True,
            stop_priority=40,
            ready_check="redis",
            ready_deadline_s=30,
            role="queue",
            provisioning_needs_it=True,
        ),
        KindSpec(
            "minio",
            what="MinIO built from source: the private `media` bucket, read by the shield alone",
            program="minio",
            image="minio",
            stateful=True,
            stop_priority=40,
            ready_check="http",
            ready_url=_http("/minio/health/ready"),
            ready_deadline_s=60,
            role="origin",
            provisioning_needs_it=True,
        ),
        # The CDN's origin shield: the edges' one upstream, and the one reader of MinIO.
        KindSpec(
            "shield",
            what="nginx origin shield: the one cache the edges pull from, MinIO's one reader",
            config="shield",
            program="edge",  # the same nginx as an edge, with its own config
            image="nginx",
            stateful=True,
            stop_priority=48,
            ready_check="http",
            ready_url=_http("/healthz"),
            ready_deadline_s=30,
            role="shield",
            reload_on_hup=True,
            after=("minio",),
        ),
        KindSpec(
            "edge",
            what="nginx CDN edge (proxy_cache) pulling from the shield, picked by GeoDNS",
            config="edge",
            program="edge",
            image="nginx",
            stateful=True,
            stop_priority=50,
            ready_check="http",
            ready_url=_http("/healthz"),
            ready_deadline_s=30,
            role="edge",
            reload_on_hup=True,
            after=("shield",),
            published=("tcp",),
            placement="spread",
        ),
        KindSpec(
            "lb",
            what="nginx load balancer (layer 7 or 4; layer 7 starts or joins traces) with "
            "keepalived: the pair shares the vIP",
            config="lb",
            program="lb-member",
            image="nginx",
            stateful=True,
            stop_priority=80,
            # nginx answering on the member's own address: its static ceiling location, which
            # both layers keep (a TCP accept alone said nothing about the config).
            ready_check="http",
            ready_url=_http("/", "ceiling_port"),
            ready_deadline_s=30,
            # The member passes SIGHUP on: nginx and keepalived re-read their configs.
            reload_on_hup=True,
            privileged=True,
            after=("edge",),
        ),
        # The floating address: no process. Ready when a member holds it and answers there.
        KindSpec(
            "vip",
            what="the vIP: a floating address, held by one load balancer at a time (VRRP)",
            image="",
            stateful=False,
            stop_priority=80,
            ready_check="http",
            ready_url=_http("/", "ceiling_port"),
            ready_deadline_s=30,
            role="floating address",
            published=("tcp",),
            publishes_ceiling=True,
        ),
        KindSpec(
            "web",
            what="FastAPI on uvicorn: the review API and the shop page",
            program="uvicorn",
            image="app",
            stateful=False,
            stop_priority=60,
            ready_check="http",
            ready_url=_http("/readyz"),
            ready_deadline_s=90,
            needs_provisioning=True,
            faults=("delay",),
            placement="spread",
        ),
        KindSpec(
            "worker",
            what="segmentation worker: the outbox relay, the cutouts, their push to the CDN",
            program="worker",
            image="app",
            stateful=False,
            stop_priority=70,
            ready_check="http",
            ready_url=_http("/readyz"),
            ready_deadline_s=90,
            role="segmentation",
            needs_provisioning=True,
            faults=("delay",),
            placement="spread",
        ),
        # The lab console's side (docs/console.md): Prometheus, the exporters, the page.
        KindSpec(
            "metrics",
            what="Prometheus: scrapes every node for the console",
            config="prometheus",
            program="prometheus",
            image="metrics",
            stateful=True,  # its TSDB (bounded in time and size) outlives a container
            stop_priority=90,
            ready_check="http",
            ready_url=_http("/-/ready"),
            ready_deadline_s=30,
            role="scraper",
            reload_on_hup=True,  # a new node is scraped after a SIGHUP, no restart
        ),
        _exporter(
            "nginx-exporter",
            "`prometheus-nginx-exporter` on an nginx's `stub_status`",
            after=("lb", "edge", "shield"),
        ),
        _exporter(
            "redis-exporter",
            "`prometheus-redis-exporter`, as the ACL user `metrics`",
            after=("redis",),
        ),
        _exporter(
            "bind-exporter",
            "`prometheus-bind-exporter` on bind9's statistics channel",
            after=("dns",),
        ),
        KindSpec(
            "console",
            what="the lab console (FastAPI): live diagram, figures, events; the edges' cache log",
            program="console",
            image="app",
            stateful=False,
            stop_priority=95,
            ready_check="http",
            ready_url=_http("/healthz"),
            ready_deadline_s=60,
            role="console",
            needs_provisioning=True,
            published=("tcp",),
            udp_ports=("stats_port",),  # the edges' syslog lines (reviewlab_console.edgelog)
        ),
        # Zipkin (docs/tracing.md): spans in memory, bounded; its UI is published on the machine.
        # Nothing waits for it: a service whose spans find no store drops them, never a request.
        KindSpec(
            "tracing",
            what="Zipkin: the trace store (in memory, bounded) and its UI",
            program="zipkin",
            image="tracing",
            stateful=False,  # the store is in memory: a restart forgets every trace
            stop_priority=15,  # up before the services that send it spans, down after them
            ready_check="http",
            ready_url=_http("/health"),
            ready_deadline_s=90,  # a JVM on two shared cores: 10-20 s to its first answer
            role="traces",
            published=("tcp",),
        ),
    )
}


def spec(kind: str) -> KindSpec:
    """The entry for KIND; a kind the topology allows but the lab does not know is an error."""
    found = KINDS.get(kind)
    if found is None:
        raise TopologyError(f"the lab has no entry for node kind {kind!r} in reviewlab_lab.kinds")
    return found


def of(node: Node) -> KindSpec:
    return spec(node.kind)


def with_fault(fault: str) -> tuple[str, ...]:
    """The kinds a lab-only FAULT switch applies to."""
    return tuple(k.name for k in KINDS.values() if fault in k.faults)


def of_wave(wave: int) -> tuple[str, ...]:
    return tuple(k.name for k in KINDS.values() if k.wave == wave)
