"""The Swarm stack as data: a service per lab node, read from the plan (swarmplan).

Each node runs `reviewlab run NODE` in the image the Compose file names, pulled from the
registry [runtimes.swarm] names, with one replica, the kind's health check and a restart
policy; the ones swarmplan places carry their site's constraint. The lab's secrets file is a
Swarm secret mounted where the services read it. The vIP is one service whose replicas are its
members, published through the routing mesh; the other entry points are published there too.
The one-shot `provision` runs as a job; `init` has no counterpart: the secret is made first.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from reviewlab_common.topology import RUNTIME_ENV, Node, Topology

from reviewlab_lab import composefile, kinds, swarmplan
from reviewlab_lab.runtimes.base import NODE_ENV

NETWORK = composefile.NETWORK
# The lab's secrets file (reviewlab_common.secrets): one Swarm secret, made from the file
# `reviewlab init` writes before the stack is deployed, never written into the stack.
SECRET = "lab-secrets"
SECRET_NAME = "reviewlab-lab-secrets"
# The run user's uid and gid in every image (infra/docker/Dockerfile): the secret is its own.
IMAGE_UID = 10001
SECRET_MODE = 0o400
RUNTIME = "swarm"
# A node's process may fail while what it needs is still starting (a stack has no
# depends_on): Swarm starts it again after DELAY, and never gives up. A start that outlives the
# kind's start period counts as a success (the window a limit on attempts would count in).
RESTART_DELAY = "5s"


def _environment(name: str) -> dict[str, str]:
    return {RUNTIME_ENV: RUNTIME, NODE_ENV: name}


def _restart_policy(node: Node) -> dict[str, Any]:
    return {
        "condition": "any",
        "delay": RESTART_DELAY,
        "max_attempts": 0,
        "window": f"{kinds.of(node).start_period_s}s",
    }


def _secret() -> dict[str, Any]:
    uid = str(IMAGE_UID)
    target = composefile.CONTAINER_SECRETS
    return {"source": SECRET, "target": target, "uid": uid, "gid": uid, "mode": SECRET_MODE}


def _ports(ports: list[swarmplan.PublishedPort]) -> list[dict[str, Any]]:
    return [
        {"target": p.target, "published": p.published, "protocol": p.protocol, "mode": "ingress"}
        for p in ports
    ]


def _own_check(topology: Topology, node: Node) -> list[str]:
    """The kind's readiness check, asking the task's own container by its hostname.

    No task has a fixed address; its hostname is the node's name, which its own /etc/hosts
    maps to its address on the overlay.
    """
    return composefile.healthcheck(topology, replace(node, address=node.name))


def _service(topology: Topology, node: Node, site: str | None) -> dict[str, Any]:
    swarm = swarmplan.settings(topology)
    spec = kinds.of(node)
    service: dict[str, Any] = {
        "image": f"{swarm.registry}/{composefile.image_of(node)}",
        "hostname": node.name,
        "init": True,
        "command": ["reviewlab", "run", node.name],
        "environment": _environment(node.name),
        "networks": [NETWORK],
    }
    ports = swarmplan.published(topology, node) if spec.published else []
    if ports:
        service["ports"] = _ports(ports)
    service["secrets"] = [_secret()]
    if spec.stateful:
        service["volumes"] = [f"{node.name}-data:{composefile.CONTAINER_DATA}"]
    service["healthcheck"] = composefile.health(_own_check(topology, node), node)
    if spec.stop_grace:
        service["stop_grace_period"] = spec.stop_grace
    deploy: dict[str, Any] = {"mode": "replicated", "replicas": 1}
    if site is not None:
        deploy["placement"] = {"constraints": [swarmplan.constraint(site)]}
    deploy["restart_policy"] = _restart_policy(node)
    service["deploy"] = deploy
    return service


def _vip_service(topology: Topology) -> dict[str, Any]:
    """The vIP's members as the replicas of one service, which the routing mesh publishes.

    Each replica is the member its slot names (lb-1, lb-2); Swarm keeps them on machines of
    different sites when it can, never two on one machine.
    """
    vip = topology.vip
    first = topology.load_balancers()[0]
    member = swarmplan.member_hostname(topology)
    service = _service(topology, first, None)
    service["hostname"] = member
    # `$$` is a `$` the stack's own ${VAR} interpolation leaves alone.
    service["command"] = ["sh", "-c", f'exec reviewlab run "$${NODE_ENV}"']
    service["environment"] = _environment(member)
    if kinds.of(first).stateful:
        # One name, a volume on each machine: no two replicas share a machine.
        service["volumes"] = [f"{vip.name}-data:{composefile.CONTAINER_DATA}"]
    service["ports"] = _ports(swarmplan.published(topology, vip))
    # The check's address is the replica's own hostname, which only a shell knows.
    check = composefile.healthcheck(topology, replace(first, address="$$(hostname)"))
    shell = check if check[0] == "CMD-SHELL" else ["CMD-SHELL", " ".join(check[1:])]
    service["healthcheck"] = composefile.health(shell, first)
    service["deploy"]["replicas"] = len(vip.members)
    service["deploy"]["placement"] = {
        "max_replicas_per_node": 1,
        "preferences": [{"spread": f"node.labels.{swarmplan.SITE_LABEL}"}],
    }
    return service


def _provision(topology: Topology) -> dict[str, Any]:
    """`reviewlab provision` once, as a job: retried until the nodes it fills answer."""
    swarm = swarmplan.settings(topology)
    return {
        "image": f"{swarm.registry}/reviewlab/app:{composefile.IMAGE_TAG}",
        "command": ["reviewlab", "provision"],
        "environment": _environment(composefile.PROVISION),
        "networks": [NETWORK],
        "secrets": [_secret()],
        "deploy": {
            "mode": "replicated-job",
            "restart_policy": {"condition": "on-failure", "delay": "10s", "max_attempts": 0},
        },
    }


def document(topology: Topology) -> dict[str, Any]:
    """The stack file as data."""
    swarm = swarmplan.settings(topology)
    placed = swarmplan.sites(topology)
    services: dict[str, Any] = {composefile.PROVISION: _provision(topology)}
    members = set(topology.vip.members)
    for node in topology.nodes.values():
        if node.kind == "vip":
            services[node.name] = _vip_service(topology)
        elif kinds.of(node).runs and node.name not in members:
            services[node.name] = _service(topology, node, placed.get(node.name))
    mounts = [m for s in services.values() for m in s.get("volumes", [])]
    volumes: dict[str, Any] = {mount.split(":")[0]: {} for mount in mounts}
    network: dict[str, Any] = {"driver": "overlay", "attachable": True}
    network["ipam"] = {"config": [{"subnet": str(swarm.network)}]}
    return {
        "version": "3.9",
        "services": services,
        "networks": {NETWORK: network},
        "volumes": volumes,
        "secrets": {SECRET: {"external": True, "name": SECRET_NAME}},
    }
