"""A network segment on one machine for a floating address: what VRRP needs and loopback lacks.

Every native node lives on 127.0.0.0/8, and every 127 address is local to the machine, so an
address cannot move between two processes there. Here each member (a load balancer) gets a
network namespace of its own, with one interface on a bridge in the machine's namespace:

    machine ── bridge ──┬── veth ── [namespace of lb-1: its address, the vIP while it holds it]
                        └── veth ── [namespace of lb-2: its address]

Two kernel settings make 127 addresses travel on that wire (`route_localnet`), and routes in
the machine's `local` table send the members' addresses and the vIP out on the bridge
instead of to the machine's own loopback; the longest prefix wins over 127.0.0.0/8. Inside a
namespace, 127.0.0.0/8 leads back to the machine, so a member reaches every other node at its
usual address. Which member answers the vIP is decided by ARP: the holder's keepalived
announces it (gratuitous ARP) and the machine's next packet goes there.

Docker's bridge firewall (`br_netfilter` with a FORWARD policy of DROP) would drop what one
member sends the other, so one iptables rule lets the segment's own frames through.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from reviewlab_lab.errors import LabFailed

# A partition between members (chaos lb-partition) is tagged as every other partition.
from reviewlab_lab.netcut import RULE_TAG as CUT_TAG

# Every iptables rule a segment adds carries this comment, so a teardown finds it.
RULE_TAG = "reviewlab-vrrp"
# The member's interface inside its namespace: keepalived's `interface`.
MEMBER_INTERFACE = "vrrp0"
# A member keeps the vIP on its loopback, where it answers no ARP (reviewlab_lab.vrrp.member):
# it answers ARP only for the addresses of the interface asked on (the holder's copy of the
# vIP on its segment interface), and asks from that interface's own address.
QUIET_ARP = {"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2"}
# Linux interface names are at most 15 characters.
NAME_LIMIT = 15


@dataclass(frozen=True)
class Member:
    """One holder candidate: its node name and its own address on the segment."""

    name: str
    address: str

    @property
    def namespace(self) -> str:
        return f"reviewlab-{self.name}"

    def host_side(self, bridge: str) -> str:
        """The machine's end of the member's veth pair."""
        return f"{bridge}-{self.name}"[:NAME_LIMIT]


@dataclass(frozen=True)
class Segment:
    """A bridge, its members and the address that floats between them. The machine speaks
    on the bridge from an address of its own there, GATEWAY (the members' ARP answers no
    request that claims to come from 127.0.0.1)."""

    bridge: str
    gateway: str
    vip: str
    members: tuple[Member, ...]

    def __post_init__(self) -> None:
        sides = {m.host_side(self.bridge) for m in self.members}
        if len(self.bridge) > NAME_LIMIT - 3 or len(sides) != len(self.members):
            raise ValueError(f"bridge name {self.bridge!r} is too long for distinct veth names")

    def member(self, name: str) -> Member:
        for found in self.members:
            if found.name == name:
                return found
        raise LabFailed(f"{name} is not a member of the {self.bridge} segment")

    def in_namespace(self, name: str, argv: list[str]) -> list[str]:
        """ARGV run inside member NAME's namespace."""
        return ["ip", "netns", "exec", self.member(name).namespace, *argv]


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except FileNotFoundError as exc:
        raise LabFailed(f"{argv[0]} is not installed (`make setup` installs it)") from exc
    if check and done.returncode != 0:
        raise LabFailed(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.stdout.strip()}")
    return done


def _forward_rule(bridge: str) -> list[str]:
    return ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", RULE_TAG]


def exists(segment: Segment) -> bool:
    return _run(["ip", "link", "show", segment.bridge], check=False).returncode == 0


def create(segment: Segment) -> None:
    """Build SEGMENT from nothing (what an earlier run left is removed first)."""
    remove(segment)
    br = segment.bridge
    _run(["ip", "link", "add", br, "type", "bridge"])
    _run(["ip", "link", "set", br, "up"])
    _run(["sysctl", "-qw", f"net.ipv4.conf.{br}.route_localnet=1"])
    _run(["ip", "addr", "add", f"{segment.gateway}/32", "dev", br])
    if shutil.which("iptables"):
        _run(["iptables", "-I", *_forward_rule(br), "-j", "ACCEPT"])
    for member in segment.members:
        _join(segment, member)
    for address in (*(m.address for m in segment.members), segment.vip):
        _run(["ip", "route", "replace", f"{address}/32", "dev", br, "src", segment.gateway,
              "table", "local"])  # fmt: skip


def _join(segment: Segment, member: Member) -> None:
    ns, side = member.namespace, member.host_side(segment.bridge)
    _run(["ip", "netns", "add", ns])
    _run(["ip", "link", "add", side, "type", "veth", "peer", "name", MEMBER_INTERFACE,
          "netns", ns])  # fmt: skip
    _run(["ip", "link", "set", side, "master", segment.bridge, "up"])

    def inside(*argv: str) -> None:
        _run(["ip", "netns", "exec", ns, *argv])

    inside("ip", "link", "set", "lo", "up")
    inside("ip", "link", "set", MEMBER_INTERFACE, "up")
    inside("sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1",
           f"net.ipv4.conf.{MEMBER_INTERFACE}.route_localnet=1",
           *(f"{key}={value}" for key, value in QUIET_ARP.items()))  # fmt: skip
    inside("ip", "addr", "add", f"{member.address}/32", "dev", MEMBER_INTERFACE)
    # Nothing of 127/8 but the member's own addresses is local here, 127.0.0.1 included: a
    # node at 127.0.0.1 (the DNS, natively) is the machine's, over the bridge.
    inside("ip", "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
    inside("ip", "route", "del", "local", "127.0.0.1", "dev", "lo", "table", "local")
    inside("ip", "route", "add", "127.0.0.0/8", "dev", MEMBER_INTERFACE, "src", member.address)


def remove(segment: Segment) -> None:
    """Take SEGMENT down; a segment that is not there is no change. The machine's routes to
    its addresses go with the bridge."""
    for member in segment.members:
        # The veth pair first: a namespace's own devices go only when the kernel gets to it.
        _run(["ip", "link", "del", member.host_side(segment.bridge)], check=False)
        _run(["ip", "netns", "del", member.namespace], check=False)
    _run(["ip", "link", "del", segment.bridge], check=False)
    if shutil.which("iptables"):
        while _run(["iptables", "-D", *_forward_rule(segment.bridge), "-j", "ACCEPT"],
                   check=False).returncode == 0:  # fmt: skip
            pass


def carriers(segment: Segment) -> list[str]:
    """The members whose interface carries the vIP now: one while the pair agrees, two while
    a partition lets each believe the other dead (split brain), none between holders."""
    found = []
    for member in segment.members:
        shown = _run(
            ["ip", "-n", member.namespace, "-4", "-o", "addr", "show", "dev", MEMBER_INTERFACE],
            check=False,
        ).stdout
        if f" {segment.vip}/" in shown:
            found.append(member.name)
    return found


def holder(segment: Segment) -> str | None:
    """The first member whose interface holds the vIP now, if any."""
    return next(iter(carriers(segment)), None)


def _cut_rules(peer: str) -> list[list[str]]:
    tag = ["-m", "comment", "--comment", CUT_TAG, "-j", "DROP"]
    return [["INPUT", "-s", peer, *tag], ["OUTPUT", "-d", peer, *tag]]


def cut(segment: Segment, name: str, peers: list[str]) -> None:
    """Cut member NAME off from the members PEERS (their adverts and all), both ways, inside
    its own namespace; the machine, and so every client, still reaches it."""
    for peer in peers:
        address = segment.member(peer).address
        for rule in _cut_rules(address):
            _run(segment.in_namespace(name, ["iptables", "-w", "-I", *rule]))


def _cuts(segment: Segment) -> dict[str, list[list[str]]]:
    """The cut rules in place, by member, as `iptables -D` arguments."""
    found: dict[str, list[list[str]]] = {}
    for member in segment.members:
        listed = _run(
            segment.in_namespace(member.name, ["iptables", "-w", "-S"]), check=False
        ).stdout
        for line in listed.splitlines():
            if CUT_TAG in line and line.startswith("-A "):
                rule = [word.strip('"') for word in line.split()[1:]]
                found.setdefault(member.name, []).append(rule)
    return found


def heal(segment: Segment) -> list[str]:
    """Remove every cut of the segment's members; return the members that were cut."""
    found = _cuts(segment)
    for name, rules in found.items():
        for rule in rules:
            _run(segment.in_namespace(name, ["iptables", "-w", "-D", *rule]), check=False)
    return sorted(found)


def cut_members(segment: Segment) -> list[str]:
    """The members that have a cut in place now."""
    return sorted(_cuts(segment))
