"""The private DNS: split horizon (internal vs public view) and TSIG-signed dynamic updates."""

from __future__ import annotations

import base64
import ipaddress
import os
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
from reviewlab_common.topology import Cluster, Topology

from tests.integration.conftest import eventually
from tests.integration.shop import patroni_members

INTERNAL_SOURCE = "127.0.0.2"
PUBLIC_SOURCE = "127.0.1.5"
PUBLIC_SERVICES = {"www", "cdn"}


def internal_names(topology: Topology) -> list[str]:
    """Every name only the inside may see: one per node, two role names per cluster."""
    names = list(topology.nodes)
    for cluster in topology.clusters:
        names += [f"primary.{cluster}", f"replicas.{cluster}"]
    return names


def test_the_sources_fall_on_either_side_of_the_internal_network(topology: Topology) -> None:
    network = ipaddress.ip_network(topology.lab.internal_network)
    assert ipaddress.ip_address(INTERNAL_SOURCE) in network
    assert ipaddress.ip_address(PUBLIC_SOURCE) not in network


def test_internal_names_resolve_only_from_internal_sources(topology: Topology) -> None:
    names = internal_names(topology)
    assert len(names) == len(topology.nodes) + 2 * len(topology.clusters)
    for name in names:
        assert lab_dns.lookup(topology, name, source=INTERNAL_SOURCE), f"{name} is missing"
        assert lab_dns.lookup(topology, name, source=PUBLIC_SOURCE) == [], f"{name} leaks"


def test_each_node_name_points_at_its_address(topology: Topology) -> None:
    for node in topology.nodes.values():
        assert lab_dns.lookup(topology, node.name, source=INTERNAL_SOURCE) == [node.address]


def patroni_roles(cluster: Cluster) -> tuple[list[str], list[str]]:
    """(primary addresses, replica addresses) as Patroni sees the cluster right now."""
    by_name = {m.name: m.address for m in cluster.members}
    roles = {m["name"]: m["role"] for m in patroni_members(cluster)}
    primary = [by_name[n] for n, role in roles.items() if role == "leader"]
    replicas = sorted(by_name[n] for n, role in roles.items() if role != "leader")
    return primary, replicas


def dns_follows_patroni(topology: Topology, cluster: Cluster) -> bool:
    primary, replicas = patroni_roles(cluster)
    if len(primary) != 1:
        return False
    return (
        lab_dns.lookup(topology, f"primary.{cluster.name}", source=INTERNAL_SOURCE) == primary
        and lab_dns.lookup(topology, f"replicas.{cluster.name}", source=INTERNAL_SOURCE) == replicas
    )


def test_role_names_point_at_the_current_primary_and_replicas(topology: Topology) -> None:
    for cluster in topology.clusters.values():
        # The role-change callback updates DNS asynchronously: allow a failover in flight.
        eventually(
            partial(dns_follows_patroni, topology, cluster),
            within=30,
            what=f"primary.{cluster.name} and replicas.{cluster.name} follow Patroni",
        )
        primary = lab_dns.lookup(topology, f"primary.{cluster.name}", source=INTERNAL_SOURCE)
        replicas = lab_dns.lookup(topology, f"replicas.{cluster.name}", source=INTERNAL_SOURCE)
        assert len(primary) == 1
        assert len(replicas) == len(cluster.members) - 1
        assert set(primary) | set(replicas) == {m.address for m in cluster.members}


@pytest.mark.parametrize("source", [INTERNAL_SOURCE, PUBLIC_SOURCE])
def test_www_and_cdn_resolve_from_everywhere(topology: Topology, source: str) -> None:
    assert set(topology.services) == PUBLIC_SERVICES
    for service, target in topology.services.items():
        found = lab_dns.lookup(topology, service, source=source)
        assert found == [topology.nodes[target].address], (service, source)


@pytest.fixture()
def scratch_name(topology: Topology) -> Iterator[str]:
    """A name no one else uses, deleted afterwards whatever the test did."""
    name = f"scratch-{uuid.uuid4().hex[:10]}"
    assert lab_dns.lookup(topology, name, source=INTERNAL_SOURCE) == []
    yield name
    lab_dns.replace_records(topology, {name: []})
    assert lab_dns.lookup(topology, name, source=INTERNAL_SOURCE) == []


def test_a_signed_update_changes_a_record(topology: Topology, scratch_name: str) -> None:
    lab_dns.replace_records(topology, {scratch_name: ["127.0.0.99"]})
    assert lab_dns.lookup(topology, scratch_name, source=INTERNAL_SOURCE) == ["127.0.0.99"]
    lab_dns.replace_records(topology, {scratch_name: ["127.0.0.98", "127.0.0.97"]})
    assert lab_dns.lookup(topology, scratch_name, source=INTERNAL_SOURCE) == [
        "127.0.0.97",
        "127.0.0.98",
    ]
    # A record added to the internal view stays invisible to the public one.
    assert lab_dns.lookup(topology, scratch_name, source=PUBLIC_SOURCE) == []


def test_an_unsigned_update_is_refused(topology: Topology, scratch_name: str) -> None:
    lab_dns.replace_records(topology, {scratch_name: ["127.0.0.98"]})
    with pytest.raises(lab_dns.DnsError, match="REFUSED"):
        lab_dns.replace_records(topology, {scratch_name: ["127.0.0.97"]}, signed=False)
    with pytest.raises(lab_dns.DnsError, match="REFUSED"):
        lab_dns.replace_records(topology, {scratch_name: []}, signed=False)
    assert lab_dns.lookup(topology, scratch_name, source=INTERNAL_SOURCE) == ["127.0.0.98"]


def test_an_update_signed_with_the_wrong_key_is_refused(
    topology: Topology, scratch_name: str
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
    assert lab_dns.lookup(topology, scratch_name, source=INTERNAL_SOURCE) == []
