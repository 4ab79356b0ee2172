"""Render each node's config from the topology, and describe the process that runs the node.

Both runtimes use this: the native one renders every node on the machine and runs the
programs under supervisord; a Compose container renders its own node and execs its program.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml
from reviewlab_common import cdn
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.etcd import PATRONI_ETCD_USER, PATRONI_NAMESPACE
from reviewlab_common.queue import DEAD_LETTER_STREAM, JOBS_STREAM
from reviewlab_common.storage import MEDIA_BUCKET
from reviewlab_common.topology import TOPOLOGY_ENV, Node, Topology

from reviewlab_lab import (
    dnsrecords,
    geodns,
    kinds,
    loadbalancer,
    metricsnodes,
    redisacl,
    scrapeconfig,
)
from reviewlab_lab import install as lab_install
from reviewlab_lab.files import templates, write_if_changed
from reviewlab_lab.paths import TOPOLOGY_PATH, LabPaths
from reviewlab_lab.runtimes.base import NODE_ENV
from reviewlab_lab.vrrp import keepalived
from reviewlab_lab.vrrp import pair as vrrp_pair


@dataclass
class Program:
    """One node's process: what runs it and how it stops."""

    node: Node
    command: str
    environment: dict[str, str] = field(default_factory=dict)
    stop_seconds: int = 15
    stop_signal: str = "TERM"
    # Patroni stops its own Postgres; signalling the whole group would race it.
    stop_as_group: bool = True
    # Runs as root (a load balancer's keepalived moves addresses); every other node runs as
    # the lab's user.
    privileged: bool = False

    @property
    def argv(self) -> list[str]:
        return shlex.split(self.command)


# The trace store's bounds: spans kept in memory (a review with a photo makes about 30, a
# listing 5; 50,000 filled the 256 MB heap and kept the JVM in full collections) and the
# JVM's heap; a client JIT and the serial collector suit a small, mostly idle service.
ZIPKIN_MAX_SPANS = 15_000
ZIPKIN_JVM = "-Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k"
# How long the CDN keeps a product image (a mutable key): the shield a minute, the edges a
# few seconds, so the edges' copies follow the shield's and expiry can be watched.
SHIELD_MUTABLE_TTL_S = 60
# ngx_cache_purge: both CDN tiers take purges (reviewlab_common.cdn).
PURGE_MODULE = "/usr/lib/nginx/modules/ngx_http_cache_purge_module.so"
EDGE_MUTABLE_TTL_S = 10
# The worker's setting naming its portrait model (reviewlab_worker.settings.WorkerSettings.model).
MODEL_ENV = "REVIEWLAB_MODEL"
ConfigWriter = Callable[["Renderer", Node], None]
ProgramMaker = Callable[["Renderer", Node], "Program"]
# What a KindSpec's `config` and `program` name (kinds.py): filled by the decorators below.
CONFIG_WRITERS: dict[str, ConfigWriter] = {}
PROGRAMS: dict[str, ProgramMaker] = {}
W = TypeVar("W", bound=ConfigWriter)
P = TypeVar("P", bound=ProgramMaker)


def config_writer(name: str) -> Callable[[W], W]:
    """Register a Renderer method as the config writer a KindSpec names NAME."""

    def register(write: W) -> W:
        CONFIG_WRITERS[name] = write
        return write

    return register


def program_maker(name: str) -> Callable[[P], P]:
    """Register a Renderer method as the program a KindSpec names NAME."""

    def register(make: P) -> P:
        PROGRAMS[name] = make
        return make

    return register


class Renderer:
    """Turns the topology into config files (render) and process descriptions (program)."""

    def __init__(self, topology: Topology, paths: LabPaths) -> None:
        self.topology = topology
        self.paths = paths
        self.install = lab_install.current()
        self.secrets = lab_secrets.load(topology)
        self.jinja = templates()
        # Nodes whose config files changed since this renderer was made.
        self.changed: set[str] = set()

    def prepare(self, node: Node) -> None:
        """The folders the node writes: its data and run folders, the configs, the logs."""
        for folder in (
            self.paths.data(node.name),
            self.paths.node_run(node.name),
            self.paths.conf,
            self.paths.logs,
            self.paths.faults,
        ):
            folder.mkdir(parents=True, exist_ok=True)

    def _write(self, owner: str, target: Path, text: str, mode: int = 0o644) -> None:
        if write_if_changed(target, text, mode):
            self.changed.add(owner)

    def _template(
        self, owner: str, template: str, target: Path, mode: int = 0o644, **ctx: object
    ) -> None:
        self._write(owner, target, self.jinja.get_template(template).render(**ctx), mode)

    # Configs ---------------------------------------------------------------------------------
    def render(self, node: Node) -> None:
        """Write every config file NODE reads (its kind's config writer, if it has one)."""
        writer = kinds.spec(node.kind).config
        if writer is not None:
            CONFIG_WRITERS[writer](self, node)

    @config_writer("redis")
    def _redis(self, node: Node) -> None:
        self._template(
            node.name,
            "redis/redis.conf.j2",
            self._conf(node, "redis.conf"),
            mode=0o600,
            node=node,
            data_dir=self.paths.data(node.name),
            node_run=self.paths.node_run(node.name),
            users=redisacl.acl_users(self.secrets),
        )

    @config_writer("lb")
    def _lb(self, node: Node) -> None:
        text = loadbalancer.render_config(self.topology, self.paths, self.jinja, node)
        self._write(node.name, loadbalancer.config_path(self.paths, node), text)
        # The script layer 7 traces requests with; nginx reads it where the config names it.
        trace_js = loadbalancer.trace_script(self.jinja)
        self._write(node.name, self.paths.conf / loadbalancer.TRACE_JS, trace_js)
        ka = keepalived.render(vrrp_pair.instance(self.topology, node))
        self._write(node.name, vrrp_pair.keepalived_conf(self.paths, node), ka)

    @config_writer("edge")
    def _edge(self, node: Node) -> None:
        self._template(
            node.name,
            "cdn/edge.conf.j2",
            self._conf(node, "nginx.conf"),
            mode=0o600,  # it holds the purge key
            **self._cdn_context(node),
            shield=self.topology.one("shield"),
            # Short at the edges: they come back to the shield, not to MinIO.
            immutable_ttl="30d",
            mutable_ttl=f"{EDGE_MUTABLE_TTL_S}s",
            mutable_ttl_seconds=EDGE_MUTABLE_TTL_S,
            console=next(iter(self.topology.of_kind("console")), None),
        )

    @config_writer("shield")
    def _shield(self, node: Node) -> None:
        self._template(
            node.name,
            "cdn/shield.conf.j2",
            self._conf(node, "nginx.conf"),
            mode=0o600,
            **self._cdn_context(node),
            origin=self.topology.one("minio"),
            bucket=MEDIA_BUCKET,
            immutable_ttl=30 * 24 * 3600,
            mutable_ttl=SHIELD_MUTABLE_TTL_S,
        )

    def _cdn_context(self, node: Node) -> dict[str, object]:
        """What both CDN tiers' templates read: paths, names, the purge gate."""
        return {
            "node": node,
            "node_run": self.paths.node_run(node.name),
            "data_dir": self.paths.data(node.name),
            "log_dir": self.paths.logs,
            "domain": self.topology.lab.domain,
            "miss_ttl": "5s",
            "lab_network": self.topology.lab.internal_network,
            "purge_key": cdn.purge_key(self.secrets.token_secret),
            "purge_module": PURGE_MODULE,
        }

    def _conf(self, node: Node, suffix: str) -> Path:
        return self.paths.conf / f"{node.name}.{suffix}"

    @config_writer("dns")
    def _dns(self, node: Node) -> None:
        lab = self.topology.lab
        dns_dir = self.paths.data(node.name)
        internal = dnsrecords.static_records(self.topology)
        public = geodns.public_views(self.topology)
        views = {
            "internal": sorted((n, a) for n, addresses in internal.items() for a in addresses),
        } | {
            view.name: sorted(dnsrecords.public_records(self.topology, view.edge).items())
            for view in public
        }
        for view, records in views.items():
            zone = dns_dir / view / f"{lab.domain}.zone"
            # The internal zone changes by dynamic update once it exists: keep it and its journal.
            if view == "internal" and zone.exists():
                continue
            self._template(
                node.name,
                "dns/zone.j2",
                zone,
                view=view,
                domain=lab.domain,
                ns_address=node.address,
                records=records,
            )
        self._template(
            node.name,
            "dns/named.conf.j2",
            self.paths.conf / "named.conf",
            mode=0o640,
            node=node,
            dns_dir=dns_dir,
            domain=lab.domain,
            internal_network=lab.internal_network,
            # The bridge's gateway is the host seen from inside the Compose network: outside.
            outside_sources=[lab.runtime.gateway] if lab.runtime.gateway else [],
            tsig_name=lab_secrets.TSIG_KEY_NAME,
            tsig_algorithm=lab_secrets.TSIG_ALGORITHM,
            tsig_secret=self.secrets.tsig_secret,
            public_views=public,
        )

    @config_writer("patroni")
    def _patroni(self, node: Node) -> None:
        assert node.cluster is not None
        callback = self.paths.conf / "patroni-callback.sh"
        log = f"{self.paths.logs}/dns-sync.log"
        script = (
            "#!/bin/sh\n"
            "# Patroni runs: <script> <action> <role> <scope>; it resyncs the scope's DNS.\n"
            "# Each sync is headed by when and why, so the log lines up with the others.\n"
            f'echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $1: $3 member is $2" >> {log}\n'
            f'exec {self.install.bin / "reviewlab"} dns sync --cluster "$3" >> {log} 2>&1\n'
        )
        self._write(node.name, callback, script, 0o755)
        etcd = ",".join(n.endpoint for n in self.topology.of_kind("etcd"))
        self._template(
            node.name,
            "postgres/patroni.yml.j2",
            self._conf(node, "patroni.yml"),
            mode=0o600,
            node=node,
            cluster=self.topology.clusters[node.cluster],
            etcd_hosts=etcd,
            namespace=PATRONI_NAMESPACE,
            etcd_user=PATRONI_ETCD_USER,
            patroni_rest_user=lab_secrets.PATRONI_REST_USER,
            pgdata=self.paths.pgdata(node.name),
            postgres_bin=self.install.postgres_bin,
            node_run=self.paths.node_run(node.name),
            secrets=self.secrets,
            callback=callback,
            # Clients reach Postgres only from the lab's own network (the machine included).
            lab_network=self.topology.lab.internal_network,
        )

    @config_writer("prometheus")
    def _prometheus(self, node: Node) -> None:
        token = self._conf(node, "minio-token")
        bearer = scrapeconfig.minio_bearer_token(
            self.secrets.minio_user, self.secrets.minio_password
        )
        self._write(node.name, token, bearer + "\n", 0o600)
        document = scrapeconfig.scrape_config(self.topology, token)
        text = "# Rendered by `reviewlab up` from infra/topology.toml (scrapeconfig.py).\n"
        self._write(node.name, self._conf(node, "prometheus.yml"), text + yaml.safe_dump(document))

    # Programs --------------------------------------------------------------------------------
    def environment(self, node: Node) -> dict[str, str]:
        """What every node's process finds in its environment."""
        return {
            NODE_ENV: node.name,
            TOPOLOGY_ENV: str(TOPOLOGY_PATH),
            "HOME": str(self.paths.data(node.name)),
        }

    def program(self, node: Node) -> Program:
        """The process that runs NODE (its configs come from `render`): its kind's program."""
        return PROGRAMS[kinds.spec(node.kind).program](self, node)

    @program_maker("dns")
    def _named(self, node: Node) -> Program:
        # named under the replicas watch (reviewlab_lab.dnswatch), which forwards stops.
        named = f"/usr/sbin/named -f -c {self.paths.conf / 'named.conf'}"
        command = f"{self.install.bin}/python -m reviewlab_lab.dnswatch {named}"
        return Program(node, command, self.environment(node))

    @program_maker("etcd")
    def _etcd(self, node: Node) -> Program:
        # Every member is named: a new lab bootstraps them together. etcd reads the
        # --initial-* flags only on a first start; later it knows its members itself.
        peer = f"http://{node.address}:{node.peer_port}"
        members = ",".join(
            f"{m.name}=http://{m.address}:{m.peer_port}" for m in self.topology.of_kind("etcd")
        )
        return Program(
            node,
            f"/usr/bin/etcd --name {node.name} --data-dir {self.paths.data(node.name)} "
            f"--listen-client-urls {node.url} --advertise-client-urls {node.url} "
            f"--listen-peer-urls {peer} --initial-advertise-peer-urls {peer} "
            f"--initial-cluster {members} --initial-cluster-state new "
            f"--initial-cluster-token {self.topology.lab.domain} --log-level warn "
            # zap: one JSON line per entry with its ISO 8601 time ("ts").
            "--logger zap --log-outputs stderr",
        )

    @program_maker("patroni")
    def _patroni_program(self, node: Node) -> Program:
        venv_bin = self.install.bin
        env = self.environment(node) | {"PATH": f"{venv_bin}:/usr/bin:/bin"}
        conf = self._conf(node, "patroni.yml")
        return Program(node, f"{venv_bin / 'patroni'} {conf}", env, 60, stop_as_group=False)

    @program_maker("redis")
    def _redis_server(self, node: Node) -> Program:
        return Program(node, f"/usr/bin/redis-server {self._conf(node, 'redis.conf')}")

    @program_maker("minio")
    def _minio(self, node: Node) -> Program:
        env = self.environment(node) | {
            "MINIO_ROOT_USER": self.secrets.minio_user,
            "MINIO_ROOT_PASSWORD": self.secrets.minio_password,
            "MINIO_BROWSER": "on",
        }
        return Program(
            node,
            # --json: each line carries its ISO 8601 time, which MinIO's plain lines lack.
            f"{self.install.minio} server --json --anonymous --address {node.endpoint} "
            f"--console-address {node.address}:{node.console_port} "
            f"{self.paths.data(node.name)}/objects",
            env,
        )

    @program_maker("lb-member")
    def _lb_member(self, node: Node) -> Program:
        """nginx and keepalived as one process (reviewlab_lab.vrrp.member), as root: keepalived
        moves addresses, nginx drops to the lab user. Natively, in the member's namespace."""
        nginx = self._nginx(node, loadbalancer.config_path(self.paths, node)).command
        ka = shlex.join(vrrp_pair.keepalived_argv(self.paths, node))
        stale = " ".join(f"--stale {f}" for f in vrrp_pair.keepalived_pid_files(self.paths, node))
        command = (
            f"{self.install.bin}/python -m reviewlab_lab.vrrp.member --user "
            f"{self.install.run_user} --nginx {shlex.quote(nginx)} --keepalived {shlex.quote(ka)} "
            f"--quiet-vip {self.topology.vip.address} {stale}"
        )
        if self.topology.lab.runtime.name == "native":
            ns = vrrp_pair.native_segment(self.topology).member(node.name).namespace
            command = f"/usr/sbin/ip netns exec {ns} {command}"
        # The member stops its two in order (the address first): the signal goes to it alone.
        return Program(node, command, stop_seconds=20, stop_as_group=False, privileged=True)

    @program_maker("edge")
    def _edge_nginx(self, node: Node) -> Program:
        return self._nginx(node, self._conf(node, "nginx.conf"))

    @program_maker("uvicorn")
    def _uvicorn(self, node: Node) -> Program:
        return Program(
            node,
            f"{self.install.bin}/uvicorn reviewlab_web.app:app --host {node.address} "
            f"--port {node.port} --no-access-log --timeout-graceful-shutdown 5",
            self.environment(node),
        )

    @program_maker("worker")
    def _worker(self, node: Node) -> Program:
        env = self.environment(node) | {MODEL_ENV: str(self.install.model)}
        return Program(node, f"{self.install.bin}/python -m reviewlab_worker", env)

    @program_maker("prometheus")
    def _prometheus_server(self, node: Node) -> Program:
        conf, data = self._conf(node, "prometheus.yml"), self.paths.data(node.name) / "tsdb"
        return Program(node, metricsnodes.prometheus_command(node, conf, data))

    @program_maker("nginx-exporter")
    def _nginx_exporter(self, node: Node) -> Program:
        return Program(node, metricsnodes.nginx_exporter_command(node, self.topology))

    @program_maker("redis-exporter")
    def _redis_exporter(self, node: Node) -> Program:
        env = {"REDIS_PASSWORD": self.secrets.redis_password("metrics")}
        streams = (JOBS_STREAM, DEAD_LETTER_STREAM)
        command = metricsnodes.redis_exporter_command(node, self.topology, streams)
        return Program(node, command, env)

    @program_maker("bind-exporter")
    def _bind_exporter(self, node: Node) -> Program:
        return Program(node, metricsnodes.bind_exporter_command(node, self.topology))

    @program_maker("console")
    def _console(self, node: Node) -> Program:
        env = self.environment(node) | {
            metricsnodes.CHARTS_ENV: str(self.install.charts),
            metricsnodes.REPORTS_ENV: str(self.paths.root / "reports"),
        }
        return Program(
            node,
            f"{self.install.bin}/uvicorn reviewlab_console.app:app --host {node.address} "
            f"--port {node.port} --no-access-log --timeout-graceful-shutdown 2",
            env,
        )

    @program_maker("zipkin")
    def _zipkin(self, node: Node) -> Program:
        # In memory and bounded: past ZIPKIN_MAX_SPANS the oldest traces are dropped, and the
        # heap cap keeps the JVM's share of two shared cores' memory fixed.
        env = self.environment(node) | {
            "STORAGE_TYPE": "mem",
            "MEM_MAX_SPANS": str(ZIPKIN_MAX_SPANS),
        }
        return Program(
            node,
            f"/usr/bin/java {ZIPKIN_JVM} -jar {self.install.zipkin_jar} "
            f"--armeria.ports[0].ip={node.address} --armeria.ports[0].port={node.port} "
            "--armeria.ports[0].protocols[0]=http",
            env,
        )

    def _nginx(self, node: Node, conf: Path) -> Program:
        prefix = self.paths.data(node.name)
        return Program(
            node,
            f"{loadbalancer.NGINX} -p {prefix} -c {conf} -e stderr -g 'daemon off;'",
            stop_signal="QUIT",
        )
