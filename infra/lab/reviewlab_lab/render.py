"""Render every node's config from the topology into the lab's data directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.storage import MEDIA_BUCKET
from reviewlab_common.topology import Node, Topology

from reviewlab_lab import dnsrecords, loadbalancer
from reviewlab_lab.paths import REPO, LabPaths

STOP_PRIORITY = {
    "dns": 10,
    "etcd": 20,
    "postgres": 30,
    "redis": 40,
    "minio": 40,
    "edge": 50,
    "web": 60,
    "worker": 70,
    "lb": 80,
}


@dataclass
class Program:
    """One supervised process: a node of the lab."""

    node: Node
    command: str
    environment: dict[str, str] = field(default_factory=dict)
    stop_seconds: int = 15
    stop_signal: str = "TERM"
    # Patroni stops its own Postgres; signalling the whole group would race it.
    stop_as_group: bool = True


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([REPO / "infra", REPO / "loadbalancer"]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write a rendered file; report whether its content changed."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return True


class Renderer:
    """Turns the topology into config files and supervised programs."""

    def __init__(self, topology: Topology, paths: LabPaths) -> None:
        self.topology = topology
        self.paths = paths
        self.secrets = lab_secrets.load(topology)
        self.jinja = _env()
        self.changed: set[str] = set()

    def _render(
        self, owner: str, template: str, target: Path, mode: int = 0o644, **ctx: object
    ) -> None:
        text = self.jinja.get_template(template).render(**ctx)
        if write_if_changed(target, text, mode):
            self.changed.add(owner)

    def _common_env(self, node: Node) -> dict[str, str]:
        return {
            "REVIEWLAB_NODE": node.name,
            "REVIEWLAB_TOPOLOGY": str(REPO / "infra" / "topology.toml"),
            "HOME": str(self.paths.data(node.name)),
        }

    def programs(self) -> list[Program]:
        """Render every config and describe every process of the lab."""
        lab = self.topology.lab
        venv_bin = lab.venv / "bin"
        result: list[Program] = []
        for node in self.topology.nodes.values():
            data = self.paths.data(node.name)
            run = self.paths.node_run(node.name)
            for folder in (data, run):
                folder.mkdir(parents=True, exist_ok=True)
            env = self._common_env(node)
            match node.kind:
                case "dns":
                    result.append(Program(node, self._dns(node)))
                case "etcd":
                    peer = f"http://{node.address}:{node.peer_port}"
                    client = node.url
                    result.append(
                        Program(
                            node,
                            f"/usr/bin/etcd --name {node.name} --data-dir {data} "
                            f"--listen-client-urls {client} --advertise-client-urls {client} "
                            f"--listen-peer-urls {peer} --initial-advertise-peer-urls {peer} "
                            f"--initial-cluster {node.name}={peer} --log-level warn",
                        )
                    )
                case "postgres":
                    result.append(
                        Program(node, self._patroni(node, env), env, 60, stop_as_group=False)
                    )
                case "redis":
                    conf = self.paths.conf / f"{node.name}.redis.conf"
                    self._render(
                        node.name,
                        "redis/redis.conf.j2",
                        conf,
                        node=node,
                        data_dir=data,
                        node_run=run,
                    )
                    result.append(Program(node, f"/usr/bin/redis-server {conf}"))
                case "minio":
                    binary = lab.cache_dir / f"minio-{lab.minio_version}" / "minio"
                    env |= {
                        "MINIO_ROOT_USER": self.secrets.minio_user,
                        "MINIO_ROOT_PASSWORD": self.secrets.minio_password,
                        "MINIO_BROWSER": "on",
                    }
                    result.append(
                        Program(
                            node,
                            f"{binary} server --quiet --address {node.endpoint} "
                            f"--console-address {node.address}:{node.console_port} {data}/objects",
                            env,
                        )
                    )
                case "lb":
                    conf = self.paths.conf / "lb.nginx.conf"
                    text = loadbalancer.render_config(self.topology, self.paths, self.jinja)
                    if write_if_changed(conf, text):
                        self.changed.add(node.name)
                    result.append(Program(node, self._nginx(node, conf), stop_signal="QUIT"))
                case "edge":
                    conf = self.paths.conf / f"{node.name}.nginx.conf"
                    self._render(
                        node.name,
                        "cdn/edge.conf.j2",
                        conf,
                        node=node,
                        node_run=run,
                        data_dir=data,
                        log_dir=self.paths.logs,
                        domain=lab.domain,
                        origin=self.topology.one("minio"),
                        bucket=MEDIA_BUCKET,
                        immutable_ttl="30d",
                        mutable_ttl="60s",
                        mutable_ttl_seconds=60,
                        miss_ttl="5s",
                    )
                    result.append(Program(node, self._nginx(node, conf), stop_signal="QUIT"))
                case "web":
                    result.append(
                        Program(
                            node,
                            f"{venv_bin}/uvicorn reviewlab_web.app:app --host {node.address} "
                            f"--port {node.port} --no-access-log --timeout-graceful-shutdown 5",
                            env,
                        )
                    )
                case "worker":
                    result.append(Program(node, f"{venv_bin}/python -m reviewlab_worker", env))
        return result

    def _nginx(self, node: Node, conf: Path) -> str:
        prefix = self.paths.data(node.name)
        return f"/usr/sbin/nginx -p {prefix} -c {conf} -e stderr -g 'daemon off;'"

    def _dns(self, node: Node) -> str:
        lab = self.topology.lab
        dns_dir = self.paths.data(node.name)
        records = dnsrecords.static_records(self.topology)
        for view, names in (
            ("internal", records),
            ("public", dnsrecords.public_records(self.topology)),
        ):
            zone = dns_dir / view / f"{lab.domain}.zone"
            # The internal zone changes by dynamic update once it exists: keep it and its journal.
            if view == "internal" and zone.exists():
                continue
            self._render(
                node.name,
                "dns/zone.j2",
                zone,
                view=view,
                domain=lab.domain,
                ns_address=node.address,
                records=sorted(names.items())
                if view == "public"
                else sorted(
                    (name, address) for name, addresses in names.items() for address in addresses
                ),
            )
        conf = self.paths.conf / "named.conf"
        self._render(
            node.name,
            "dns/named.conf.j2",
            conf,
            mode=0o640,
            node=node,
            dns_dir=dns_dir,
            domain=lab.domain,
            internal_network=lab.internal_network,
            tsig_name=lab_secrets.TSIG_KEY_NAME,
            tsig_algorithm=lab_secrets.TSIG_ALGORITHM,
            tsig_secret=self.secrets.tsig_secret,
        )
        return f"/usr/sbin/named -g -c {conf}"

    def _patroni(self, node: Node, env: dict[str, str]) -> str:
        assert node.cluster is not None
        callback = self.paths.conf / "patroni-callback.sh"
        reviewlab = self.topology.lab.venv / "bin" / "reviewlab"
        script = (
            "#!/bin/sh\n"
            "# Patroni runs: <script> <action> <role> <scope>; it resyncs the scope's DNS.\n"
            f'exec {reviewlab} dns sync --cluster "$3" >> {self.paths.logs}/dns-sync.log 2>&1\n'
        )
        write_if_changed(callback, script, 0o755)
        conf = self.paths.conf / f"{node.name}.patroni.yml"
        etcd = ",".join(n.endpoint for n in self.topology.of_kind("etcd"))
        self._render(
            node.name,
            "postgres/patroni.yml.j2",
            conf,
            mode=0o600,
            node=node,
            cluster=self.topology.clusters[node.cluster],
            etcd_hosts=etcd,
            pgdata=self.paths.pgdata(node.name),
            postgres_bin=self.topology.lab.postgres_bin,
            node_run=self.paths.node_run(node.name),
            secrets=self.secrets,
            callback=callback,
        )
        env["PATH"] = f"{self.topology.lab.venv / 'bin'}:/usr/bin:/bin"
        return f"{self.topology.lab.venv / 'bin' / 'patroni'} {conf}"


def supervisor_config(topology: Topology, paths: LabPaths, programs: list[Program]) -> str:
    """The supervisord config that runs every node of the lab."""
    lines = [
        "; Review Lab's process supervisor: rendered by `reviewlab up` from infra/topology.toml.",
        "[unix_http_server]",
        f"file={paths.supervisor_socket}",
        "chmod=0770",
        "[supervisord]",
        f"logfile={paths.logs / 'supervisord.log'}",
        f"pidfile={paths.run / 'supervisord.pid'}",
        f"childlogdir={paths.logs}",
        "nodaemon=false",
        "minfds=4096",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "[supervisorctl]",
        f"serverurl=unix://{paths.supervisor_socket}",
    ]
    for program in programs:
        node = program.node
        env = ",".join(f'{k}="{v}"' for k, v in sorted(program.environment.items()))
        lines += [
            f"[program:{node.name}]",
            f"command={program.command}",
            f"directory={paths.data(node.name)}",
            f"priority={STOP_PRIORITY[node.kind]}",
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "startretries=1000",
            f"stopsignal={program.stop_signal}",
            f"stopwaitsecs={program.stop_seconds}",
            f"stopasgroup={str(program.stop_as_group).lower()}",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={paths.log(node.name)}",
            "stdout_logfile_maxbytes=20MB",
            "stdout_logfile_backups=2",
        ]
        if env:
            lines.append(f"environment={env}")
    return "\n".join(lines) + "\n"
