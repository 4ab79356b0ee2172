"""Topology validation: a bad file is refused with a message naming the node and the field."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest
from reviewlab_common.topology import TopologyError, parse
from reviewlab_lab.paths import TOPOLOGY_PATH


@pytest.fixture()
def document() -> dict[str, Any]:
    """The real topology file, as a fresh dict each test may spoil."""
    with TOPOLOGY_PATH.open("rb") as handle:
        return tomllib.load(handle)


def test_the_real_topology_is_valid(document: dict[str, Any]) -> None:
    topology = parse(document)
    assert set(topology.nodes) == set(document["nodes"])
    assert len(topology.of_kind("web")) == 3
    assert [c.name for c in topology.shards] == ["reviews-0", "reviews-1", "reviews-2"]
    assert [c.starts_empty for c in topology.shards] == [False, False, True]
    assert [m.name for m in topology.catalog.members] == ["catalog-1", "catalog-2", "catalog-3"]
    assert all(c.synchronous_mode for c in topology.clusters.values())
    assert topology.services == {
        "www": "vip",
        "cdn": "edge-1",
        "traces": "traces",
        "console": "console",
    }
    assert topology.tracing.enabled and topology.tracing.sample_ratio == 1.0
    assert len({n.address for n in topology.nodes.values()}) == len(topology.nodes)
    assert topology.nodes["edge-1"].url == "http://127.0.0.71:8080"
    assert topology.nodes["web-3"].roles == ("api",)
    # The vIP answers on its members' ports; the first member wins the first election.
    assert [m.name for m in topology.load_balancers()] == ["lb-1", "lb-2"]
    assert (topology.vip.port, topology.vip.ceiling_port) == (8080, 8081)
    assert topology.vip.address == "127.0.0.10"


def test_a_vip_member_must_be_a_load_balancer(document: dict[str, Any]) -> None:
    document["nodes"]["vip"]["members"] = ["lb-1", "web-1"]
    with pytest.raises(TopologyError, match=r"node 'vip': field 'members' names 'web-1'.*'lb'"):
        parse(document)


def test_a_load_balancer_outside_the_vip_is_refused(document: dict[str, Any]) -> None:
    document["nodes"]["lb-3"] = {"kind": "lb", "address": "127.0.0.6"}
    with pytest.raises(TopologyError, match=r"node 'lb-3': a load balancer must be a member"):
        parse(document)


def test_vip_members_must_agree_on_their_ports(document: dict[str, Any]) -> None:
    document["nodes"]["lb-2"]["port"] = 8090
    with pytest.raises(TopologyError, match=r"node 'vip': its members answer on different ports"):
        parse(document)


def test_a_vip_takes_no_port_of_its_own(document: dict[str, Any]) -> None:
    document["nodes"]["vip"]["port"] = 80
    with pytest.raises(TopologyError, match=r"node 'vip': field 'port' comes from its members"):
        parse(document)


def test_a_vip_needs_two_members(document: dict[str, Any]) -> None:
    document["nodes"]["vip"]["members"] = ["lb-1"]
    with pytest.raises(TopologyError, match=r"must name at least two load balancers"):
        parse(document)


def test_a_duplicate_address_is_refused(document: dict[str, Any]) -> None:
    document["nodes"]["web-3"]["address"] = document["nodes"]["web-1"]["address"]
    with pytest.raises(TopologyError, match=r"node 'web-3': field 'address' .* node 'web-1'"):
        parse(document)


def test_an_unknown_kind_is_refused(document: dict[str, Any]) -> None:
    document["nodes"]["web-2"]["kind"] = "mainframe"
    with pytest.raises(TopologyError, match=r"node 'web-2': field 'kind' is 'mainframe'"):
        parse(document)


def test_an_unknown_web_role_is_refused(document: dict[str, Any]) -> None:
    document["nodes"]["web-1"]["roles"] = ["api", "admin"]
    with pytest.raises(TopologyError, match=r"node 'web-1': field 'roles' .* 'admin'"):
        parse(document)


@pytest.mark.parametrize(
    ("node", "field"),
    [
        ("redis", "kind"),
        ("minio", "address"),
        ("redis", "port"),
        ("catalog-2", "cluster"),
        ("etcd-1", "peer_port"),
    ],
)
def test_a_missing_field_is_refused(document: dict[str, Any], node: str, field: str) -> None:
    del document["nodes"][node][field]
    with pytest.raises(TopologyError, match=rf"^node '{node}': missing field '{field}'$"):
        parse(document)


def test_a_missing_lab_setting_is_refused(document: dict[str, Any]) -> None:
    del document["lab"]["buckets"]
    with pytest.raises(TopologyError, match=r"\[lab\]: missing field 'buckets'"):
        parse(document)


def test_a_postgres_node_in_an_undeclared_cluster_is_refused(document: dict[str, Any]) -> None:
    document["nodes"]["reviews-1b"]["cluster"] = "reviews-9"
    with pytest.raises(TopologyError, match=r"node 'reviews-1b': field 'cluster' 'reviews-9'"):
        parse(document)


def test_a_service_pointing_at_no_node_is_refused(document: dict[str, Any]) -> None:
    document["services"]["cdn"] = "edge-9"
    with pytest.raises(TopologyError, match=r"'cdn' points at unknown node 'edge-9'"):
        parse(document)


def test_an_address_outside_loopback_is_refused(document: dict[str, Any]) -> None:
    document["nodes"]["minio"]["address"] = "10.0.0.5"
    with pytest.raises(TopologyError, match=r"node 'minio': field 'address' 10\.0\.0\.5"):
        parse(document)


@pytest.mark.parametrize("port", ["8000", True, 8000.0])
def test_a_wrongly_typed_port_is_refused(document: dict[str, Any], port: object) -> None:
    document["nodes"]["web-1"]["port"] = port
    with pytest.raises(TopologyError, match=r"node 'web-1': field 'port' must be int"):
        parse(document)


def test_a_count_is_a_setting(document: dict[str, Any]) -> None:
    more = copy.deepcopy(document)
    more["nodes"]["web-4"] = {"kind": "web", "address": "127.0.0.14", "port": 8000}
    topology = parse(more)
    assert [n.name for n in topology.of_kind("web")] == ["web-1", "web-2", "web-3", "web-4"]
    assert topology.nodes["web-4"].roles == ("api", "upload")
    # The document given is not modified by parsing.
    assert "web-4" not in document["nodes"]


def test_ports_come_from_the_kind_defaults(document: dict[str, Any]) -> None:
    topology = parse(document)
    assert {n.port for n in topology.of_kind("postgres")} == {5432}
    assert {n.rest_port for n in topology.of_kind("postgres")} == {8008}
    document["nodes"]["reviews-1b"]["rest_port"] = 8009
    assert parse(document).nodes["reviews-1b"].rest_port == 8009


def test_a_missing_kind_default_is_a_missing_field(document: dict[str, Any]) -> None:
    del document["defaults"]["postgres"]["rest_port"]
    with pytest.raises(TopologyError, match=r"^node 'catalog-1': missing field 'rest_port'$"):
        parse(document)


def test_a_default_that_is_not_a_port_is_refused(document: dict[str, Any]) -> None:
    document["defaults"]["web"]["roles"] = ["api"]
    with pytest.raises(TopologyError, match=r"\[defaults.web\]: only ports have defaults"):
        parse(document)


def test_a_second_node_of_a_single_node_kind_is_refused(document: dict[str, Any]) -> None:
    document["nodes"]["redis-2"] = dict(document["nodes"]["redis"], address="127.0.0.51")
    with pytest.raises(TopologyError, match=r"node 'redis-2': the lab runs exactly one 'redis'"):
        parse(document)


def test_one_refuses_a_kind_that_may_have_several_nodes(document: dict[str, Any]) -> None:
    topology = parse(document)
    assert topology.one("redis").name == "redis"
    with pytest.raises(TopologyError, match=r"kind 'edge' may have several nodes"):
        topology.one("edge")
