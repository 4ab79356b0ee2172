"""The lab's own load-balancer pair: each member's keepalived and, natively, the segment the
vIP floats on (docs/loadbalancer.md, "A floating vIP").

The vIP node names its members; the first wins the first election. Natively every member
lives in a network namespace on the bridge [runtimes.native] names (vrrp.segment); in
containers, the members share the lab's bridge network.
"""

from __future__ import annotations

from pathlib import Path

from reviewlab_common.topology import Node, Topology, TopologyError

from reviewlab_lab.paths import LabPaths
from reviewlab_lab.vrrp import keepalived, segment

# One VRRP router on the lab's segment (the scratch pairs of the tests use others).
ROUTER_ID = 51
FIRST_PRIORITY, PRIORITY_STEP = 150, 50
# The member's interface in a container: the lab network is its only one.
CONTAINER_INTERFACE = "eth0"
KEEPALIVED = "/usr/sbin/keepalived"
CURL = "/usr/bin/curl"


def native_segment(topology: Topology) -> segment.Segment:
    """The bridge and namespaces of the native pair, from [runtimes.native] and the vIP."""
    options = topology.lab.runtime.options
    bridge, gateway = options.get("vrrp_bridge"), options.get("vrrp_gateway")
    if not isinstance(bridge, str) or not isinstance(gateway, str):
        raise TopologyError(
            "[runtimes.native]: fields 'vrrp_bridge' and 'vrrp_gateway' name the vIP's bridge "
            "and the machine's address on it"
        )
    members = tuple(segment.Member(m.name, m.address) for m in topology.load_balancers())
    return segment.Segment(bridge, gateway, topology.vip.address, members)


def instance(topology: Topology, member: Node) -> keepalived.Instance:
    """MEMBER's keepalived: unicast to the other members, checking its own nginx."""
    order = [m.name for m in topology.load_balancers()]
    peers = tuple(m.address for m in topology.load_balancers() if m.name != member.name)
    native = topology.lab.runtime.name == "native"
    ceiling = f"http://{member.address}:{member.ceiling_port}/"
    return keepalived.Instance(
        name=member.name,
        address=member.address,
        peers=peers,
        priority=max(1, FIRST_PRIORITY - PRIORITY_STEP * order.index(member.name)),
        interface=segment.MEMBER_INTERFACE if native else CONTAINER_INTERFACE,
        vip=topology.vip.address,
        router_id=ROUTER_ID,
        check=(CURL, "-sf", "-m1", "-o", "/dev/null", ceiling),
    )


def keepalived_conf(paths: LabPaths, member: Node) -> Path:
    return paths.conf / f"{member.name}.keepalived.conf"


def keepalived_pid_files(paths: LabPaths, member: Node) -> list[Path]:
    """keepalived's own pid file and its VRRP child's."""
    run = paths.node_run(member.name)
    return [run / "keepalived.pid", run / "vrrp.pid"]


def keepalived_argv(paths: LabPaths, member: Node) -> list[str]:
    """keepalived in the foreground, logging to its stderr (the member's log)."""
    own, vrrp = keepalived_pid_files(paths, member)
    conf = str(keepalived_conf(paths, member))
    return [KEEPALIVED, "-n", "-l", "-D", "-f", conf, "-p", str(own), "-r", str(vrrp)]
