"""The private DNS: split horizon (internal vs public view) and TSIG-signed dynamic updates."""

from __future__ import annotations

import uuid

import pytest
from reviewlab_common import dns as lab_dns
from reviewlab_common.topology import Topology

INTERNAL_SOURCE = "127.0.0.2"
PUBLIC_SOURCE = "127.0.1.5"


def internal_names(topology: Topology) -> list[str]:
    names = list(topology.nodes)
    for cluster in topology.clusters:
        names += [f"primary.{cluster}", f"replicas.{cluster}"]
    return names


def test_internal_names_resolve_only_from_internal_sources(topology: Topology) -> None:
    for name in internal_names(topology):
        assert lab_dns.lookup(topology, name, source=INTERNAL_SOURCE), f"{name} is missing"
        assert lab_dns.lookup(topology, name, source=PUBLIC_SOURCE) == [], f"{name} leaks"


def test_role_names_point_at_the_clusters_members(topology: Topology) -> None:
    for cluster in topology.clusters.values():
        addresses = {m.address for m in cluster.members}
        primary = lab_dns.lookup(topology, f"primary.{cluster.name}", source=INTERNAL_SOURCE)
        replicas = lab_dns.lookup(topology, f"replicas.{cluster.name}", source=INTERNAL_SOURCE)
        assert len(primary) == 1
        assert len(replicas) == len(cluster.members) - 1
        assert set(primary) | set(replicas) == addresses


@pytest.mark.parametrize("source", [INTERNAL_SOURCE, PUBLIC_SOURCE])
def test_www_and_cdn_resolve_from_everywhere(topology: Topology, source: str) -> None:
    for service, target in topology.services.items():
        found = lab_dns.lookup(topology, service, source=source)
        assert found == [topology.nodes[target].address], service


def test_a_signed_update_changes_a_record_and_an_unsigned_one_is_refused(
    topology: Topology,
) -> None:
    name = f"scratch-{uuid.uuid4().hex[:8]}"
    try:
        lab_dns.replace_records(topology, {name: ["127.0.0.99"]})
        assert lab_dns.lookup(topology, name, source=INTERNAL_SOURCE) == ["127.0.0.99"]
        lab_dns.replace_records(topology, {name: ["127.0.0.98"]})
        assert lab_dns.lookup(topology, name, source=INTERNAL_SOURCE) == ["127.0.0.98"]
        with pytest.raises(lab_dns.DnsError, match="REFUSED"):
            lab_dns.replace_records(topology, {name: ["127.0.0.97"]}, signed=False)
        assert lab_dns.lookup(topology, name, source=INTERNAL_SOURCE) == ["127.0.0.98"]
    finally:
        lab_dns.replace_records(topology, {name: []})
    assert lab_dns.lookup(topology, name, source=INTERNAL_SOURCE) == []
