"""The private DNS: split horizon (internal vs public view) and TSIG-signed dynamic updates."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from functools import partial

import dns.name
import dns.query
import dns.tsig
import dns.update
import pytest
from reviewlab_common import dns as lab_dns
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Cluster, Topology, load
from reviewlab_lab import dnsrecords

from tests.integration.conftest import eventually
from tests.integration.nodes import Nodes
from tests.integration.shop import patroni_members

# Natively, the source address decides the view: one inside the lab's network, one outside.
INTERNAL_SOURCE = "127.0.0.2"
PUBLIC_SOURCE = "127.0.1.5"
# The console and the trace UI are public names too: a learner opens them from the machine.
PUBLIC_SERVICES = {"www", "cdn", "console", "traces"}
# Under Compose, a client inside the lab network is a node's container.
INSIDE_NODE = "web-1"


class Views:
    """Ask the DNS as a client inside the lab's network, and as one outside it."""

    def __init__(self, topology: Topology, nodes: Nodes) -> None:
        self.topology = topology
        self.nodes = nodes

    def internal(self, *names: str) -> dict[str, list[str]]:
        if self.topology.lab.runtime.name == "native":
            return {n: lab_dns.lookup(self.topology, n, source=INTERNAL_SOURCE) for n in names}
        found = self.nodes.in_node(INSIDE_NODE, ["reviewlab", "dns", "lookup", *names])
        return {name: list(addresses) for name, addresses in json.loads(found).items()}

    def inside(self, name: str) -> list[str]:
        return self.internal(name)[name]

    def public(self, *names: str) -> dict[str, list[str]]:
        """From the machine, to the DNS where the machine reaches it (published, under Compose)."""
        return {
            n: lab_dns.lookup(self.topology, n, source=PUBLIC_SOURCE, published=True) for n in names
        }


@pytest.fixture(scope="module")
def views(topology: Topology, nodes: Nodes) -> Views:
    return Views(topology, nodes)


def internal_names(topology: Topology) -> list[str]:
    """Every name only the inside may see: one per node (but a node named as the public
    service it is, like the console), two role names per cluster."""
    names = [name for name in topology.nodes if name not in topology.services]
    for cluster in topology.clusters:
        names += [f"primary.{cluster}", f"replicas.{cluster}"]
    return names


def test_the_sources_fall_on_either_side_of_the_internal_network(topology: Topology) -> None:
    native = load(runtime="native")
    network = ipaddress.ip_network(native.lab.internal_network)
    assert ipaddress.ip_address(INTERNAL_SOURCE) in network
    assert ipaddress.ip_address(PUBLIC_SOURCE) not in network
    if topology.lab.runtime.gateway:  # the machine, seen from the Compose network
        assert f"!{topology.lab.runtime.gateway}" in named_conf_acl(topology)


def named_conf_acl(topology: Topology) -> str:
    """The rendered acl of the internal view, as the DNS node would read it."""
    from reviewlab_lab import geodns
    from reviewlab_lab.files import templates

    return (
        templates()
        .get_template("dns/named.conf.j2")
        .render(
            node=topology.one("dns"),
            dns_dir="/tmp",
            domain=topology.lab.domain,
            internal_network=topology.lab.internal_network,
            outside_sources=[topology.lab.runtime.gateway] if topology.lab.runtime.gateway else [],
            tsig_name="k",
            tsig_algorithm="hmac-sha256",
            tsig_secret="c2VjcmV0",
            public_views=geodns.public_views(topology),
        )
    )


def test_internal_names_resolve_only_from_internal_sources(
    views: Views, topology: Topology
) -> None:
    names = internal_names(topology)
    named_as_services = set(topology.nodes) & set(topology.services)
    assert named_as_services == {"console", "traces"}
    assert len(names) == len(topology.nodes) - len(named_as_services) + 2 * len(topology.clusters)

    # replicas.<cluster> lists only streaming replicas: one an earlier test restarted may take
    # a few seconds to be listed again.
    def all_answered() -> dict[str, list[str]] | None:
        found = views.internal(*names)
        return found if all(found.values()) else None

    inside = eventually(all_answered, within=30, what="every internal name answered inside")
    outside = views.public(*names)
    for name in names:
        assert inside[name], f"{name} is missing"
        assert outside[name] == [], f"{name} leaks"


def test_each_node_name_points_at_its_address(views: Views, topology: Topology) -> None:
    inside = views.internal(*topology.nodes)
    for node in topology.nodes.values():
        assert inside[node.name] == [node.address]


def patroni_roles(cluster: Cluster) -> tuple[list[str], list[str]]:
    """(primary addresses, replica addresses) as Patroni sees the cluster right now."""
    by_name = {m.name: m.address for m in cluster.members}
    roles = {m["name"]: m["role"] for m in patroni_members(cluster)}
    primary = [by_name[n] for n, role in roles.items() if role == "leader"]
    replicas = sorted(by_name[n] for n, role in roles.items() if role != "leader")
    return primary, replicas


def dns_follows_patroni(views: Views, cluster: Cluster) -> bool:
    primary, replicas = patroni_roles(cluster)
    if len(primary) != 1:
        return False
    names = f"primary.{cluster.name}", f"replicas.{cluster.name}"
    found = views.internal(*names)
    return found[names[0]] == primary and found[names[1]] == replicas


def test_role_names_point_at_the_current_primary_and_replicas(
    views: Views, topology: Topology
) -> None:
    for cluster in topology.clusters.values():
        # The role-change callback updates DNS asynchronously: allow a failover in flight.
        eventually(
            partial(dns_follows_patroni, views, cluster),
            within=30,
            what=f"primary.{cluster.name} and replicas.{cluster.name} follow Patroni",
        )
        primary = views.inside(f"primary.{cluster.name}")
        replicas = views.inside(f"replicas.{cluster.name}")
        assert len(primary) == 1
        assert len(replicas) == len(cluster.members) - 1
        assert set(primary) | set(replicas) == {m.address for m in cluster.members}


def test_www_and_cdn_resolve_from_everywhere(views: Views, topology: Topology) -> None:
    """Inside, to the node's lab address; outside, to where the machine publishes it."""
    assert set(topology.services) == PUBLIC_SERVICES
    inside = views.internal(*topology.services)
    outside = views.public(*topology.services)
    for service, target in topology.services.items():
        assert inside[service] == [topology.nodes[target].address], service
        assert outside[service] == [topology.nodes[target].host_address], service


@pytest.fixture()
def scratch_name(views: Views, topology: Topology) -> Iterator[str]:
    """A name no one else uses, deleted afterwards whatever the test did."""
    name = f"scratch-{uuid.uuid4().hex[:10]}"
    assert views.inside(name) == []
    yield name
    dnsrecords.replace_records(topology, {name: []})
    assert views.inside(name) == []


def test_a_signed_update_changes_a_record(
    views: Views, topology: Topology, scratch_name: str
) -> None:
    dnsrecords.replace_records(topology, {scratch_name: ["127.0.0.99"]})
    assert views.inside(scratch_name) == ["127.0.0.99"]
    dnsrecords.replace_records(topology, {scratch_name: ["127.0.0.98", "127.0.0.97"]})
    assert views.inside(scratch_name) == [
        "127.0.0.97",
        "127.0.0.98",
    ]
    # A record added to the internal view stays invisible to the public one.
    assert lab_dns.lookup(topology, scratch_name, source=PUBLIC_SOURCE, published=True) == []


def test_an_unsigned_update_is_refused(views: Views, topology: Topology, scratch_name: str) -> None:
    dnsrecords.replace_records(topology, {scratch_name: ["127.0.0.98"]})
    with pytest.raises(lab_dns.DnsError, match="REFUSED"):
        dnsrecords.replace_records(topology, {scratch_name: ["127.0.0.97"]}, signed=False)
    with pytest.raises(lab_dns.DnsError, match="REFUSED"):
        dnsrecords.replace_records(topology, {scratch_name: []}, signed=False)
    assert views.inside(scratch_name) == ["127.0.0.98"]


def test_an_update_signed_with_the_wrong_key_is_refused(
    views: Views, topology: Topology, scratch_name: str
) -> None:
    node = topology.one("dns")
    keyname = dns.name.from_text(lab_secrets.TSIG_KEY_NAME)
    forged = base64.b64encode(os.urandom(32)).decode()
    assert forged != lab_secrets.load(topology).tsig_secret
    update = dns.update.UpdateMessage(
        topology.lab.domain + ".",
        keyring={keyname: dns.tsig.Key(keyname, forged, lab_secrets.TSIG_ALGORITHM)},
        keyname=keyname,
        keyalgorithm=lab_secrets.TSIG_ALGORITHM,
    )
    update.add(scratch_name, 5, "A", "127.0.0.96")
    # bind answers NOTAUTH/BADSIG, which dnspython raises as the peer rejecting our signature.
    with pytest.raises(dns.tsig.PeerBadSignature):
        dns.query.tcp(update, node.address, port=node.port, timeout=3)
    assert views.inside(scratch_name) == []


def test_the_cli_looks_up_full_and_short_names_from_any_source(
    topology: Topology, views: Views
) -> None:
    """`reviewlab dns lookup www www.shop.internal --from 127.0.1.5`: the public view, once per
    spelling of the name."""
    from reviewlab_lab import install

    full = topology.fqdn("www")
    argv = [str(install.current().bin / "reviewlab"), "dns", "lookup", "www", full]
    done = subprocess.run(
        [*argv, "--from", PUBLIC_SOURCE],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["www"] == found[full] == views.public("www")["www"] != []
