"""Step dns: the private DNS answers the inside and the outside differently (split horizon)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from reviewlab_common import dns as lab_dns
from reviewlab_common.topology import Topology

from reviewlab_lab import dnsrecords
from reviewlab_lab.demo import PUBLIC_SOURCE
from reviewlab_lab.tour.step import Evidence, Step, TourLab, require

# The public name every shopper needs, and an internal one that must stay hidden outside.
PUBLIC_NAME = "www"
INTERNAL_NAME = "primary.catalog"
# Under Compose the machine is outside the lab's network: a node's container asks instead.
INSIDE_NODE = "web-1"


@dataclass
class DnsEvidence(Evidence):
    inside: dict[str, list[str]] = field(default_factory=dict)
    outside: dict[str, list[str]] = field(default_factory=dict)
    # What the names must be: the vIP's addresses, and the catalog's primary as Patroni says.
    vip_inside: str = ""
    vip_outside: str = ""
    catalog_primary: str = ""


def ask_inside(lab: TourLab, names: list[str]) -> tuple[dict[str, list[str]], str]:
    """Each name's answer to a client inside the lab's network, and where that client is."""
    topology = lab.topology
    if topology.lab.runtime.name == "native":
        source = topology.lab.runtime.machine_address
        return {n: lab_dns.lookup(topology, n, source=source) for n in names}, f"from {source}"
    out = lab.runtime.run_in_node(INSIDE_NODE, ["reviewlab", "dns", "lookup", *names])
    return {n: list(a) for n, a in json.loads(out).items()}, f"from {INSIDE_NODE}'s container"


def _leader_address(topology: Topology) -> str:
    roles = dnsrecords.cluster_roles(topology.catalog)
    leaders = [name for name, role in roles.items() if role == "leader"]
    return topology.nodes[leaders[0]].address if len(leaders) == 1 else ""


def run(lab: TourLab) -> DnsEvidence:
    topology = lab.topology
    names = [PUBLIC_NAME, INTERNAL_NAME]
    dns_node = topology.one("dns")
    seen = DnsEvidence(
        vip_inside=topology.nodes[topology.services[PUBLIC_NAME]].address,
        vip_outside=topology.nodes[topology.services[PUBLIC_NAME]].host_address,
        catalog_primary=_leader_address(topology),
    )
    started = time.perf_counter()
    seen.inside, inside_from = ask_inside(lab, names)
    inside_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    seen.outside = {
        n: lab_dns.lookup(topology, n, source=PUBLIC_SOURCE, published=True) for n in names
    }
    outside_ms = (time.perf_counter() - started) * 1000
    seen.shown.append(f"{'name':<32} {'inside (internal view)':<23} outside (public)")
    for name in names:
        inside = ", ".join(seen.inside[name]) or "(no answer)"
        outside = ", ".join(seen.outside[name]) or "(no answer)"
        seen.shown.append(f"{topology.fqdn(name):<32} {inside:<23} {outside}")
    seen.shown += [
        "the same question from outside, by hand:",
        f"  dig @{dns_node.host_address} -p {dns_node.port} -b {PUBLIC_SOURCE} "
        f"+short {topology.fqdn(INTERNAL_NAME)}",
    ]
    server = f"dns {dns_node.host_address}:{dns_node.port}"
    seen.add("both names, internal view", inside_ms, "ms", f"{server}, asked {inside_from}")
    seen.add("both names, public view", outside_ms, "ms", f"{server}, asked from {PUBLIC_SOURCE}")
    return seen


def check(seen: DnsEvidence) -> str:
    www_in, www_out = seen.inside[PUBLIC_NAME], seen.outside[PUBLIC_NAME]
    hidden_in, hidden_out = seen.inside[INTERNAL_NAME], seen.outside[INTERNAL_NAME]
    require(
        www_in == [seen.vip_inside] and www_out == [seen.vip_outside],
        f"www should be the vIP in both views; inside said {www_in}, outside {www_out}",
    )
    require(seen.catalog_primary != "", "Patroni names no single leader of the catalog")
    require(
        hidden_in == [seen.catalog_primary],
        f"inside, primary.catalog should be the catalog's leader {seen.catalog_primary}; "
        f"it said {hidden_in}",
    )
    require(hidden_out == [], f"primary.catalog leaks to the public view: {hidden_out}")
    return (
        f"www is {www_out[0]} for everyone; primary.catalog is {hidden_in[0]} inside "
        "the lab and does not exist outside it"
    )


STEP = Step(
    name="dns",
    title="DNS: one name, two views",
    concept=(
        "DNS turns a name into an address (an A record). The shop runs its own DNS so it can "
        "move a name at once when a node fails, and so its internal addresses stay private. "
        "You will ask the same two names from inside the lab's network and from outside it."
    ),
    claim=(
        "`www` answers the vIP in both views; `primary.catalog` answers the catalog's current "
        "primary (as Patroni names it) inside, and nothing outside."
    ),
    saw=(
        "One DNS server, two answers: split horizon. A shopper can find the shop, but not the "
        "database behind it. When the catalog fails over, the lab updates primary.catalog by "
        "a signed dynamic update, and the services follow the name."
    ),
    run=run,
    check=check,
)
