"""The command lines of the lab console's nodes: Prometheus, the exporters, the console.

render.py registers them as programs; what each reads is decided here, from the topology.
Every exporter is a node of its own, beside the node it watches (its field `watches`): the
same process in both runtimes, one per container under Compose.
"""

from __future__ import annotations

from pathlib import Path

from reviewlab_common.topology import Node, Topology

from reviewlab_lab import scrapeconfig

PROMETHEUS = "/usr/bin/prometheus"
NGINX_EXPORTER = "/usr/bin/prometheus-nginx-exporter"
REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter"
BIND_EXPORTER = "/usr/bin/prometheus-bind-exporter"
# Where nginx answers its connection counters: the vIP on its ceiling server, an edge on its
# own port (both allow the lab's network only; lb.conf.j2, edge.conf.j2).
STUB_STATUS_PATH = "/stub_status"
# The console's settings (reviewlab_console.settings) the lab puts in its environment.
CHARTS_ENV = "REVIEWLAB_CHARTS"
REPORTS_ENV = "REVIEWLAB_REPORTS"


def prometheus_command(node: Node, conf: Path, data: Path) -> str:
    return (
        f"{PROMETHEUS} --config.file={conf} --web.listen-address={node.endpoint} "
        f"--storage.tsdb.path={data} "
        f"--storage.tsdb.retention.time={scrapeconfig.RETENTION_TIME} "
        f"--storage.tsdb.retention.size={scrapeconfig.RETENTION_SIZE} "
        "--web.enable-lifecycle --log.level=warn"
    )


def stub_status_url(watched: Node) -> str:
    port = watched.ceiling_port if watched.kind == "lb" else watched.port
    return f"http://{watched.address}:{port}{STUB_STATUS_PATH}"


def nginx_exporter_command(node: Node, topology: Topology) -> str:
    assert node.watches is not None
    watched = topology.nodes[node.watches]
    return (
        f"{NGINX_EXPORTER} -nginx.scrape-uri={stub_status_url(watched)} "
        f"-web.listen-address={node.endpoint} -nginx.timeout=1s"
    )


def redis_exporter_command(node: Node, topology: Topology, streams: tuple[str, ...]) -> str:
    """The Redis exporter as the `metrics` ACL user; its password comes in REDIS_PASSWORD."""
    assert node.watches is not None
    watched = topology.nodes[node.watches]
    return (
        f"{REDIS_EXPORTER} -redis.addr={watched.endpoint} -redis.user=metrics "
        f"-web.listen-address={node.endpoint} -check-streams={','.join(streams)} "
        # CONFIG is the admin's: the exporter reads maxmemory and friends from INFO instead.
        "-config-command=- -include-system-metrics=false"
    )


def bind_exporter_command(node: Node, topology: Topology) -> str:
    assert node.watches is not None
    watched = topology.nodes[node.watches]
    return (
        f"{BIND_EXPORTER} --bind.stats-url=http://{watched.address}:{watched.stats_port}/ "
        f"--web.listen-address={node.endpoint} --bind.timeout=1s "
        "--bind.stats-groups=server,view"
    )
