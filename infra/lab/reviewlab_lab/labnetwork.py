"""Whether the running runtime's network exists on this machine, read from its interfaces.

A probe sent to an address of a network no interface is on leaves by the default route, to
whoever answers there. So before the CLI probes nodes, it checks that some interface of this
machine (the bridge under Compose, loopback natively) sits on the lab's network. The check
reads `ip -o -4 addr show`: no packet is sent. Inside a node's container it is skipped: the
container is on the lab's network.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess

from reviewlab_common.topology import Topology

from reviewlab_lab.errors import LabFailed
from reviewlab_lab.runtimes.base import NODE_ENV


def interfaces(ip_output: str) -> list[ipaddress.IPv4Interface]:
    """The IPv4 interface addresses in `ip -o -4 addr show` output."""
    found = []
    for line in ip_output.splitlines():
        words = line.split()
        if "inet" in words[:-1]:
            found.append(ipaddress.IPv4Interface(words[words.index("inet") + 1]))
    return found


def local_interfaces() -> list[ipaddress.IPv4Interface]:
    try:
        shown = subprocess.run(
            ["ip", "-o", "-4", "addr", "show"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise LabFailed(f"cannot list this machine's interfaces with `ip addr`: {exc}") from exc
    return interfaces(shown.stdout)


def present(network: ipaddress.IPv4Network, found: list[ipaddress.IPv4Interface]) -> bool:
    """Whether one of the interfaces FOUND is on NETWORK."""
    return any(interface.network.overlaps(network) for interface in found)


def require(topology: Topology, found: list[ipaddress.IPv4Interface] | None = None) -> None:
    """LabFailed, before any probe, when no interface of this machine is on the lab's network."""
    if os.environ.get(NODE_ENV):
        # Inside a node's container: it runs on the lab's network by construction (and the
        # images carry no `ip`).
        return
    runtime = topology.lab.runtime
    if present(runtime.network, local_interfaces() if found is None else found):
        return
    if runtime.name == "compose":
        raise LabFailed(
            f"Compose is not running: no interface of this machine is on its network "
            f"{runtime.network} (the lab's bridge), so nothing was probed. Start it with "
            "`make up RUNTIME=compose`, or ask the native lab with `--runtime native`"
        )
    raise LabFailed(
        f"the {runtime.name} lab's network {runtime.network} is on no interface of this "
        "machine, so nothing was probed"
    )
