"""docker-compose.yml, generated from the topology: `reviewlab compose generate`.

Every node that runs a process becomes a service of the same name with a fixed address on
the lab network, its own data volume, a health check and a restart policy; the vIP is an
address the load balancers' containers pass between them, which the Compose runtime forwards
the machine's published vIP address to (runtimes.compose). Two one-shot services frame them:
`init` makes the secrets, `provision` fills the DNS, etcd, MinIO and the databases once the
infrastructure is healthy. The file is committed; a unit test fails when it is stale.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from reviewlab_common import topology as lab_topology
from reviewlab_common.topology import RUNTIME_ENV, Node, Topology, TopologyError

from reviewlab_lab import files, kinds
from reviewlab_lab import install as lab_install
from reviewlab_lab.paths import REPO
from reviewlab_lab.runtimes.base import NODE_ENV
from reviewlab_lab.vrrp import segment

COMPOSE_FILE = REPO / "docker-compose.yml"
COMMAND = "reviewlab compose generate"

HEADER = (
    "# Review Lab in containers: generated from infra/topology.toml by\n"
    "# `reviewlab compose generate`. Do not edit: change the topology and regenerate.\n"
    "# Images: `make images`. Run: `make up RUNTIME=compose` (or `docker compose up -d`).\n"
)
IMAGE_TAG = "dev"
# Few images (KindSpec.image): the app image runs web, worker, the CLI and the one-shot
# services; each other image adds one component's Debian packages to it (the `reviewlab run`
# launcher is in all).
NETWORK = "lab"
SECRETS_VOLUME = "secrets"
CONTAINER_DATA = "/var/lib/reviewlab/data"
CONTAINER_SECRETS_DIR = "/var/lib/reviewlab/secrets"
# Where every container finds the lab's secrets (the volume the init service fills).
CONTAINER_SECRETS = f"{CONTAINER_SECRETS_DIR}/lab.json"
# The one-shot services: `init` makes the secrets, `provision` fills the lab.
INIT, PROVISION = "init", "provision"

DOCKERFILE = "infra/docker/Dockerfile"


def project(topology: Topology) -> str:
    """[runtimes.compose] project: the Compose project, whose containers are <project>-<node>."""
    name = topology.lab.runtime.options.get("project")
    if not isinstance(name, str) or not name:
        raise TopologyError("[runtimes.compose]: field 'project' must name the Compose project")
    return name


def job_range(topology: Topology) -> str | None:
    """[runtimes.compose] dynamic_range: where the bridge hands addresses to the containers that
    are not nodes (the one-shot jobs); no node may sit there."""
    runtime = topology.lab.runtime
    value = runtime.options.get("dynamic_range")
    if value is None:
        return None
    where = "[runtimes.compose]: field 'dynamic_range'"
    try:
        network = ipaddress.IPv4Network(value)
    except (TypeError, ValueError) as exc:
        raise TopologyError(f"{where} {value!r} is not an IPv4 network: {exc}") from exc
    if not network.subnet_of(runtime.network):
        raise TopologyError(f"{where} {value} is not in {runtime.network}")
    for node in topology.nodes.values():
        if ipaddress.IPv4Address(node.address) in network:
            raise TopologyError(
                f"node {node.name!r}: field 'address' {node.host_address} would be {node.address}, "
                "which the compose network keeps for other containers; pick another address"
            )
    return str(network)


def container_name(topology: Topology, name: str) -> str:
    """The container that runs node (or one-shot service) NAME."""
    return f"{project(topology)}-{name}"


def image_of(node: Node) -> str:
    return f"reviewlab/{kinds.of(node).image}:{IMAGE_TAG}"


def build(target: str) -> dict[str, Any]:
    """How `docker compose build` makes an image: one Dockerfile, one target per image.

    Where no registry answers, `make images` builds the same targets from a local base
    (REVIEWLAB_BASE); a Compose build picks that base up from the environment too.
    """
    args = {"BASE": "${REVIEWLAB_BASE:-debian:bookworm-slim}"}
    if target == "minio":
        args |= {
            "GO_IMAGE": "${REVIEWLAB_GO_IMAGE:-golang:1.24-bookworm}",
            "MINIO_VERSION": lab_install.current().minio_version,
        }
    if target == "tracing":
        args |= {"ZIPKIN_VERSION": lab_install.current().zipkin_version}
    return {"context": ".", "dockerfile": DOCKERFILE, "target": target, "args": args}


def healthcheck(topology: Topology, node: Node) -> list[str]:
    """The kind's readiness check (kinds.KindSpec.ready_check), run inside its container."""
    spec = kinds.of(node)
    match spec.ready_check:
        case "http":
            assert spec.ready_url is not None
            url = spec.ready_url(node)
            return ["CMD", "curl", "-fsS", "-o", "/dev/null", "--max-time", "2", url]
        case "dns":
            name = topology.fqdn("ns")
            return [
                "CMD-SHELL",
                f"dig +short +time=1 +tries=1 -p {node.port} @{node.address} {name} | grep -q .",
            ]
    # redis: any answer (the check has no password and the default user is disabled, so an
    # anonymous PING hears NOAUTH: the server answers, which is what ready.probe asks too).
    return [
        "CMD-SHELL",
        f"redis-cli -h {node.address} -p {node.port} ping 2>&1 | grep -qE 'PONG|NOAUTH'",
    ]


def health(test: list[str], node: Node) -> dict[str, Any]:
    """A health check running TEST, in the lab's rhythm and with NODE's kind's grace at start."""
    return {
        "test": test,
        "interval": "5s",
        "timeout": "3s",
        "retries": 3,
        "start_period": f"{kinds.of(node).start_period_s}s",
    }


def published_ports(node: Node) -> list[int]:
    """The ports of NODE the machine reaches on its native address (KindSpec.published)."""
    spec = kinds.of(node)
    if not spec.published:
        return []
    ceiling = [node.ceiling_port] if spec.publishes_ceiling and node.ceiling_port else []
    return [node.port, *ceiling]


def _published(node: Node) -> list[str]:
    """The machine reaches the vIP, the edge and the DNS on their native addresses."""
    spec = kinds.of(node)
    if not spec.published:
        return []
    at = node.host_address
    ports = published_ports(node)
    # One protocol (TCP) needs no suffix; a port published for both names each.
    suffixes = [f"/{p}" for p in spec.published] if len(spec.published) > 1 else [""]
    return [f"{at}:{port}:{port}{suffix}" for port in ports for suffix in suffixes if port]


def _depends_on(topology: Topology, node: Node) -> dict[str, dict[str, str]]:
    spec = kinds.of(node)
    healthy = {"condition": "service_healthy"}
    needs: dict[str, dict[str, str]] = {INIT: {"condition": "service_completed_successfully"}}
    for kind in spec.after:
        needs |= {n.name: healthy for n in topology.of_kind(kind)}
    if spec.needs_provisioning:
        needs[PROVISION] = {"condition": "service_completed_successfully"}
    return needs


def _environment(node_name: str) -> dict[str, str]:
    return {RUNTIME_ENV: "compose", NODE_ENV: node_name}


def _node_service(topology: Topology, node: Node) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": image_of(node),
        "build": build(kinds.of(node).image),
        "container_name": container_name(topology, node.name),
        "hostname": node.name,
        "init": True,
        "command": ["reviewlab", "run", node.name],
        "environment": _environment(node.name),
        "networks": {NETWORK: {"ipv4_address": node.address}},
    }
    if kinds.of(node).privileged:
        # keepalived adds and removes the vIP on the container's interface; nginx itself drops
        # to the lab user (reviewlab_lab.vrrp.member). The vIP's quiet copy on the loopback
        # answers no ARP (segment.QUIET_ARP).
        service["user"] = "root"
        service["cap_add"] = ["NET_ADMIN"]
        service["sysctls"] = dict(segment.QUIET_ARP)
    published = _published(node)
    if published:
        service["ports"] = published
    volumes = [f"{SECRETS_VOLUME}:{CONTAINER_SECRETS_DIR}:ro"]
    if kinds.of(node).stateful:
        volumes.append(f"{node.name}-data:{CONTAINER_DATA}")
    service["volumes"] = volumes
    service["healthcheck"] = health(healthcheck(topology, node), node)
    service["depends_on"] = _depends_on(topology, node)
    service["restart"] = "unless-stopped"
    grace = kinds.of(node).stop_grace
    if grace:
        service["stop_grace_period"] = grace
    return service


def _one_shot(topology: Topology, name: str, command: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "image": f"reviewlab/app:{IMAGE_TAG}",
        "build": build("app"),
        "container_name": container_name(topology, name),
        "command": command,
        "environment": _environment(name),
        "networks": [NETWORK],
        "restart": "no",
        **extra,
    }


def document(topology: Topology) -> dict[str, Any]:
    """The Compose file as data."""
    runtime = topology.lab.runtime
    services: dict[str, Any] = {
        INIT: _one_shot(
            topology,
            INIT,
            ["reviewlab", "init"],
            volumes=[f"{SECRETS_VOLUME}:{CONTAINER_SECRETS_DIR}"],
        ),
        PROVISION: _one_shot(
            topology,
            PROVISION,
            ["reviewlab", "provision"],
            volumes=[f"{SECRETS_VOLUME}:{CONTAINER_SECRETS_DIR}:ro"],
            depends_on={
                n.name: {"condition": "service_healthy"}
                for n in topology.nodes.values()
                if kinds.of(n).provisioning_needs_it
            },
        ),
    }
    for node in topology.nodes.values():
        if kinds.of(node).runs:
            services[node.name] = _node_service(topology, node)
    volumes: dict[str, Any] = {SECRETS_VOLUME: {}}
    for node in topology.nodes.values():
        if kinds.of(node).stateful:
            volumes[f"{node.name}-data"] = {}
    ipam = {"subnet": str(runtime.network), "gateway": runtime.gateway}
    jobs = job_range(topology)
    if jobs:
        ipam["ip_range"] = jobs
    return {
        "services": services,
        "networks": {NETWORK: {"driver": "bridge", "ipam": {"config": [ipam]}}},
        "volumes": volumes,
    }


def render(topology: Topology | None = None) -> str:
    topology = topology or lab_topology.load(runtime="compose")
    return files.generated_yaml(HEADER, [document(topology)])


def stale_reason() -> str | None:
    """Why the committed docker-compose.yml does not match the topology, or None."""
    return files.stale_reason(COMPOSE_FILE, render(), COMMAND)


def generate() -> bool:
    """Write docker-compose.yml; True when it changed."""
    return files.write_if_changed(COMPOSE_FILE, render())
