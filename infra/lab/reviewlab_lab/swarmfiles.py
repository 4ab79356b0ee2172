"""deploy/swarm-stack.yml, generated from the topology: `reviewlab swarm generate`.

The file is committed; a unit test fails when it is stale, and another has `docker stack
config` read it. Nothing in the lab deploys it yet (docs/swarm.md).
"""

from __future__ import annotations

from reviewlab_common import topology as lab_topology
from reviewlab_common.topology import Topology

from reviewlab_lab import files, swarmstack
from reviewlab_lab.paths import REPO

STACK_FILE = REPO / "deploy" / "swarm-stack.yml"
COMMAND = "reviewlab swarm generate"
HEADER = (
    "# Review Lab as a Docker Swarm stack: generated from infra/topology.toml by\n"
    f"# `{COMMAND}`. Do not edit: change the topology and regenerate.\n"
    "# No address floats on an overlay network, so the vIP's VRRP pair is not here: the vIP is\n"
    "# one service whose replicas are its load balancers, published through Swarm's routing\n"
    "# mesh on its ports on every machine; the CDN edges, the DNS, the console and the trace UI\n"
    "# are published there too, each at its own port (docs/swarm.md). Not deployed by the lab.\n"
)


def render(topology: Topology | None = None) -> str:
    # As native runs it: the entry points' published ports come from their native addresses.
    topology = topology or lab_topology.load(runtime="native")
    return files.generated_yaml(HEADER, [swarmstack.document(topology)])


def stale_reason() -> str | None:
    """Why the committed stack file does not match the topology, or None."""
    return files.stale_reason(STACK_FILE, render(), COMMAND)


def generate() -> bool:
    """Write deploy/swarm-stack.yml; True when it changed."""
    return files.write_if_changed(STACK_FILE, render())
