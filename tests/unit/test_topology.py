"""Topology validation: a bad file is refused with a message naming the node and the field."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest
from reviewlab_common.topology import DEFAULT_PATH, TopologyError, parse


@pytest.fixture()
def document() -> dict[str, Any]:
    with DEFAULT_PATH.open("rb") as handle:
        return tomllib.load(handle)


def test_the_real_topology_is_valid(document: dict[str, Any]) -> None:
    topology = parse(document)
    assert len(topology.of_kind("web")) == 3
    assert [c.name for c in topology.shards] == ["reviews-0", "reviews-1"]
    assert len(topology.catalog.members) == 3
    assert topology.services == {"www": "lb", "cdn": "edge-1"}
    assert len({n.address for n in topology.nodes.values()}) == len(topology.nodes)


def test_a_duplicate_address_is_refused(document: dict[str, Any]) -> None:
    bad = copy.deepcopy(document)
    bad["nodes"]["web-3"]["address"] = bad["nodes"]["web-1"]["address"]
    with pytest.raises(TopologyError, match=r"node 'web-3': field 'address' .* 'web-1'"):
        parse(bad)


def test_an_unknown_kind_is_refused(document: dict[str, Any]) -> None:
    bad = copy.deepcopy(document)
    bad["nodes"]["web-2"]["kind"] = "mainframe"
    with pytest.raises(TopologyError, match=r"node 'web-2': field 'kind' is 'mainframe'"):
        parse(bad)


def test_an_unknown_web_role_is_refused(document: dict[str, Any]) -> None:
    bad = copy.deepcopy(document)
    bad["nodes"]["web-1"]["roles"] = ["api", "admin"]
    with pytest.raises(TopologyError, match=r"node 'web-1': field 'roles' .* 'admin'"):
        parse(bad)


@pytest.mark.parametrize(
    ("node", "field"), [("redis", "port"), ("catalog-2", "cluster"), ("etcd-1", "peer_port")]
)
def test_a_missing_field_is_refused(document: dict[str, Any], node: str, field: str) -> None:
    bad = copy.deepcopy(document)
    del bad["nodes"][node][field]
    with pytest.raises(TopologyError, match=rf"node '{node}': missing field '{field}'"):
        parse(bad)


def test_an_address_outside_loopback_is_refused(document: dict[str, Any]) -> None:
    bad = copy.deepcopy(document)
    bad["nodes"]["minio"]["address"] = "10.0.0.5"
    with pytest.raises(TopologyError, match=r"node 'minio': field 'address' 10.0.0.5"):
        parse(bad)


def test_a_wrongly_typed_field_is_refused(document: dict[str, Any]) -> None:
    bad = copy.deepcopy(document)
    bad["nodes"]["web-1"]["port"] = "8000"
    with pytest.raises(TopologyError, match=r"node 'web-1': field 'port' must be int"):
        parse(bad)


def test_a_count_is_a_setting(document: dict[str, Any]) -> None:
    more = copy.deepcopy(document)
    more["nodes"]["web-4"] = {"kind": "web", "address": "127.0.0.14", "port": 8000}
    topology = parse(more)
    assert [n.name for n in topology.of_kind("web")][-1] == "web-4"
    assert topology.nodes["web-4"].roles == ("api", "upload")
