"""docker-compose.yml is generated from the topology; the committed file must be current."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

import pytest
import yaml
from reviewlab_common.topology import parse
from reviewlab_lab import composefile, dnsrecords, files, kinds, loadbalancer
from reviewlab_lab.composefile import COMPOSE_FILE
from reviewlab_lab.paths import LabPaths


def test_the_committed_compose_file_matches_the_topology() -> None:
    assert COMPOSE_FILE.read_text() == composefile.render(), (
        "docker-compose.yml is stale: run `reviewlab compose generate` and commit it"
    )
    assert composefile.stale_reason() is None


def test_every_node_is_a_service_with_its_lab_address(document: dict[str, Any]) -> None:
    topology = parse(document, runtime="compose")
    compose = composefile.document(topology)
    network = ipaddress.ip_network("172.30.0.0/24")
    running = [n for n in topology.nodes.values() if kinds.of(n).runs]
    # The vIP alone is no service: an address the load balancers' containers pass around.
    assert {n.name for n in topology.nodes.values()} - {n.name for n in running} == {"vip"}
    assert "vip" not in compose["services"]
    for node in running:
        service = compose["services"][node.name]
        address = service["networks"]["lab"]["ipv4_address"]
        assert ipaddress.ip_address(address) in network
        # The same host part as the native address: 127.0.0.21 -> 172.30.0.21.
        assert address.split(".")[-1] == node.host_address.split(".")[-1]
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
        assert service["restart"] == "unless-stopped"
        assert service["command"] == ["reviewlab", "run", node.name]
    assert len(
        {
            s["networks"]["lab"]["ipv4_address"]
            for s in (compose["services"][n.name] for n in running)
        }
    ) == len(running)


def test_entry_points_are_published_on_their_native_addresses(document: dict[str, Any]) -> None:
    compose = composefile.document(parse(document, runtime="compose"))
    # The vIP is forwarded to whichever member holds it (vrrp.publish), never published by
    # one container; its members run as root with NET_ADMIN, for keepalived.
    for lb in ("lb-1", "lb-2"):
        assert "ports" not in compose["services"][lb]
        assert compose["services"][lb]["cap_add"] == ["NET_ADMIN"]
        assert compose["services"][lb]["user"] == "root"
    assert "127.0.0.71:8080:8080" in compose["services"]["edge-1"]["ports"]
    assert "127.0.0.1:5353:5353/udp" in compose["services"]["dns"]["ports"]
    assert "ports" not in compose["services"]["catalog-1"]


def test_no_secret_is_written_into_the_compose_file() -> None:
    text = COMPOSE_FILE.read_text().lower()
    for word in ("password", "secret:", "minio_root"):
        assert word not in text


def test_a_new_web_server_reaches_compose_dns_and_the_load_balancer(
    document: dict[str, Any], tmp_path: Any
) -> None:
    grown = copy.deepcopy(document)
    grown["nodes"]["web-4"] = {"kind": "web", "address": "127.0.0.14"}
    topology = parse(grown, runtime="compose")
    compose = composefile.document(topology)
    assert compose["services"]["web-4"]["networks"]["lab"]["ipv4_address"] == "172.30.0.14"
    assert dnsrecords.static_records(topology)["web-4"] == ["172.30.0.14"]
    member = topology.load_balancers()[0]
    config = loadbalancer.render_config(
        topology, LabPaths(tmp_path), files.templates(), member, loadbalancer.LbMode()
    )
    assert "172.30.0.14:8000" in config
    assert "web-4" in yaml.safe_dump(compose)


def test_a_node_on_the_bridge_gateway_is_refused(document: dict[str, Any]) -> None:
    from reviewlab_common.topology import TopologyError

    document["nodes"]["web-3"]["address"] = "127.0.0.254"
    with pytest.raises(TopologyError, match=r"node 'web-3'.*172.30.0.254"):
        parse(document)


def test_a_node_where_the_one_shot_jobs_get_addresses_is_refused(
    document: dict[str, Any],
) -> None:
    from reviewlab_common.topology import TopologyError

    document["nodes"]["web-3"]["address"] = "127.0.0.225"  # 172.30.0.224/28 under Compose
    topology = parse(document, "compose")  # the shared library leaves the range to the lab
    with pytest.raises(TopologyError, match=r"node 'web-3'.*172\.30\.0\.225"):
        composefile.render(topology)


def test_the_compose_project_is_the_labs_not_the_shared_librarys(
    document: dict[str, Any],
) -> None:
    topology = parse(document, "compose")
    assert not hasattr(topology.lab.runtime, "project")
    assert composefile.project(topology) == document["runtimes"]["compose"]["project"]
    assert composefile.container_name(topology, "web-1") == "reviewlab-web-1"
