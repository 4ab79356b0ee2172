"""docker-compose.yml, generated from the topology: `reviewlab compose generate`.

Every node becomes a service of the same name with a fixed address on the lab network, its
own data volume, a health check and a restart policy. Two one-shot services frame them:
`init` makes the secrets, `provision` fills the DNS, etcd, MinIO and the databases once the
infrastructure is healthy. The file is committed; a unit test fails when it is stale.
"""

from __future__ import annotations

from typing import Any

import yaml
from reviewlab_common import install as lab_install
from reviewlab_common import topology as lab_topology
from reviewlab_common.topology import RUNTIME_ENV, Node, Topology

from reviewlab_lab.paths import REPO
from reviewlab_lab.runtimes.base import NODE_ENV

COMPOSE_FILE = REPO / "docker-compose.yml"

HEADER = (
    "# Review Lab in containers: generated from infra/topology.toml by\n"
    "# `reviewlab compose generate`. Do not edit: change the topology and regenerate.\n"
    "# Images: `make images`. Run: `make up RUNTIME=compose` (or `docker compose up -d`).\n"
)
IMAGE_TAG = "dev"
# Few images: the app image runs web, worker, the CLI and the one-shot services; each other
# image adds one component's Debian packages to it (the `reviewlab run` launcher is in all).
IMAGE_OF_KIND = {
    "dns": "dns",
    "etcd": "etcd",
    "postgres": "postgres",
    "redis": "redis",
    "minio": "minio",
    "lb": "nginx",
    "edge": "nginx",
    "web": "app",
    "worker": "app",
}
# Kinds whose data outlives a container (named volume at the node's data directory).
STATEFUL_KINDS = ("dns", "etcd", "postgres", "redis", "minio", "edge", "lb")
# Kinds the provisioning step needs healthy before it runs.
PROVISION_NEEDS = ("dns", "etcd", "postgres", "redis", "minio")
NETWORK = "lab"
SECRETS_VOLUME = "secrets"
CONTAINER_DATA = "/var/lib/reviewlab/data"
CONTAINER_SECRETS_DIR = "/var/lib/reviewlab/secrets"
# Where every container finds the lab's secrets (the volume the init service fills).
CONTAINER_SECRETS = f"{CONTAINER_SECRETS_DIR}/lab.json"
# The one-shot services: `init` makes the secrets, `provision` fills the lab.
INIT, PROVISION = "init", "provision"
# Grace before SIGKILL on stop: Patroni needs time to hand over or shut Postgres down cleanly.
STOP_GRACE = {"postgres": "60s"}


DOCKERFILE = "infra/docker/Dockerfile"


def container_name(topology: Topology, name: str) -> str:
    """The container that runs node (or one-shot service) NAME."""
    return f"{topology.lab.runtime.project}-{name}"


def image_of(node: Node) -> str:
    return f"reviewlab/{IMAGE_OF_KIND[node.kind]}:{IMAGE_TAG}"


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
    return {"context": ".", "dockerfile": DOCKERFILE, "target": target, "args": args}


def healthcheck(topology: Topology, node: Node) -> list[str]:
    """A cheap check that runs inside the node's container."""
    http = {
        "etcd": f"{node.url}/health",
        "postgres": f"http://{node.address}:{node.rest_port}/readiness",
        "minio": f"{node.url}/minio/health/ready",
        "lb": f"http://{node.address}:{node.ceiling_port}/",
        "edge": f"{node.url}/healthz",
        "web": f"{node.url}/readyz",
        "worker": f"{node.url}/readyz",
    }
    if node.kind in http:
        return ["CMD", "curl", "-fsS", "-o", "/dev/null", "--max-time", "2", http[node.kind]]
    if node.kind == "dns":
        name = topology.fqdn("ns")
        return [
            "CMD-SHELL",
            f"dig +short +time=1 +tries=1 -p {node.port} @{node.address} {name} | grep -q .",
        ]
    # redis: any answer (the default user is disabled, so an anonymous PING hears NOAUTH).
    return [
        "CMD-SHELL",
        f"redis-cli -h {node.address} -p {node.port} ping 2>&1 | grep -qE 'PONG|NOAUTH'",
    ]


def _published(node: Node) -> list[str]:
    """The machine reaches the vIP, the edge and the DNS on their native addresses."""
    at = node.host_address
    match node.kind:
        case "lb":
            return [
                f"{at}:{node.port}:{node.port}",
                f"{at}:{node.ceiling_port}:{node.ceiling_port}",
            ]
        case "edge":
            return [f"{at}:{node.port}:{node.port}"]
        case "dns":
            return [f"{at}:{node.port}:{node.port}/udp", f"{at}:{node.port}:{node.port}/tcp"]
    return []


def _depends_on(topology: Topology, node: Node) -> dict[str, dict[str, str]]:
    healthy = {"condition": "service_healthy"}
    needs: dict[str, dict[str, str]] = {INIT: {"condition": "service_completed_successfully"}}
    match node.kind:
        case "postgres":
            needs |= {n.name: healthy for n in topology.of_kind("etcd")}
            needs[topology.one("dns").name] = healthy
        case "edge":
            needs[topology.one("minio").name] = healthy
        case "web" | "worker":
            needs[PROVISION] = {"condition": "service_completed_successfully"}
        case "lb":
            needs |= {n.name: healthy for n in topology.of_kind("edge")}
    return needs


def _environment(node_name: str) -> dict[str, str]:
    return {RUNTIME_ENV: "compose", NODE_ENV: node_name}


def _node_service(topology: Topology, node: Node) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": image_of(node),
        "build": build(IMAGE_OF_KIND[node.kind]),
        "container_name": container_name(topology, node.name),
        "hostname": node.name,
        "init": True,
        "command": ["reviewlab", "run", node.name],
        "environment": _environment(node.name),
        "networks": {NETWORK: {"ipv4_address": node.address}},
    }
    published = _published(node)
    if published:
        service["ports"] = published
    volumes = [f"{SECRETS_VOLUME}:{CONTAINER_SECRETS_DIR}:ro"]
    if node.kind in STATEFUL_KINDS:
        volumes.append(f"{node.name}-data:{CONTAINER_DATA}")
    service["volumes"] = volumes
    service["healthcheck"] = {
        "test": healthcheck(topology, node),
        "interval": "5s",
        "timeout": "3s",
        "retries": 3,
        "start_period": "120s" if node.kind == "postgres" else "30s",
    }
    service["depends_on"] = _depends_on(topology, node)
    service["restart"] = "unless-stopped"
    if node.kind in STOP_GRACE:
        service["stop_grace_period"] = STOP_GRACE[node.kind]
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
                if n.kind in PROVISION_NEEDS
            },
        ),
    }
    for node in topology.nodes.values():
        services[node.name] = _node_service(topology, node)
    volumes: dict[str, Any] = {SECRETS_VOLUME: {}}
    for node in topology.nodes.values():
        if node.kind in STATEFUL_KINDS:
            volumes[f"{node.name}-data"] = {}
    ipam = {"subnet": str(runtime.network), "gateway": runtime.gateway}
    if runtime.dynamic_range:
        ipam["ip_range"] = runtime.dynamic_range
    return {
        "services": services,
        "networks": {NETWORK: {"driver": "bridge", "ipam": {"config": [ipam]}}},
        "volumes": volumes,
    }


def render(topology: Topology | None = None) -> str:
    topology = topology or lab_topology.load(runtime="compose")
    body = yaml.safe_dump(document(topology), sort_keys=False, default_flow_style=False, width=100)
    return HEADER + str(body)


def stale_reason() -> str | None:
    """Why the committed docker-compose.yml does not match the topology, or None."""
    committed = COMPOSE_FILE.read_text() if COMPOSE_FILE.exists() else ""
    if committed == render():
        return None
    where = COMPOSE_FILE.relative_to(REPO)
    return f"{where} does not match infra/topology.toml: run `reviewlab compose generate`"


def generate() -> bool:
    """Write docker-compose.yml; True when it changed."""
    text = render()
    if COMPOSE_FILE.exists() and COMPOSE_FILE.read_text() == text:
        return False
    COMPOSE_FILE.write_text(text)
    return True
