"""deploy/swarm-stack.yml is generated from the topology, reads as a stack, and places the lab's
redundant nodes on different sites."""

from __future__ import annotations

import copy
import shutil
import subprocess
import tomllib
from collections import Counter
from dataclasses import asdict
from typing import Any

import pytest
import yaml
from reviewlab_common.secrets import secrets_path
from reviewlab_common.topology import Topology, TopologyError, parse
from reviewlab_lab import composefile, kinds, secretfile, swarmfiles, swarmplan, swarmstack
from reviewlab_lab.paths import REPO, TOPOLOGY_PATH
from reviewlab_lab.swarmfiles import HEADER, STACK_FILE


@pytest.fixture()
def topology(document: dict[str, Any]) -> Topology:
    return parse(document)


@pytest.fixture()
def stack() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(STACK_FILE.read_text())
    return loaded


def site_of(service: dict[str, Any]) -> str:
    (rule,) = service["deploy"]["placement"]["constraints"]
    label, _, site = rule.partition(" == ")
    assert label == f"node.labels.{swarmplan.SITE_LABEL}"
    return site


def test_the_committed_stack_file_matches_the_topology() -> None:
    assert STACK_FILE.read_text() == swarmfiles.render(), (
        "deploy/swarm-stack.yml is stale: run `reviewlab swarm generate` and commit it"
    )
    assert swarmfiles.stale_reason() is None
    assert STACK_FILE.read_text().startswith(HEADER)


def test_a_changed_topology_makes_it_stale(document: dict[str, Any]) -> None:
    grown = copy.deepcopy(document)
    grown["nodes"]["web-4"] = {"kind": "web", "address": "127.0.0.14"}
    text = swarmfiles.render(parse(grown))
    assert "web-4" in yaml.safe_load(text)["services"]
    assert text != swarmfiles.render()


def test_docker_reads_it_as_a_stack() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on this machine")
    # Client side only: the CLI checks the file against the Compose schema, no daemon needed.
    done = subprocess.run(
        ["docker", "stack", "config", "-c", str(STACK_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert set(yaml.safe_load(done.stdout)["services"]) == set(
        yaml.safe_load(STACK_FILE.read_text())["services"]
    )


def test_every_running_node_is_a_service_or_a_replica_of_the_vip(
    topology: Topology, stack: dict[str, Any]
) -> None:
    services = stack["services"]
    members = set(topology.vip.members)
    for node in topology.nodes.values():
        if node.name in members or node.kind == "vip":
            continue
        service = services[node.name]
        assert kinds.of(node).runs
        assert service["command"] == ["reviewlab", "run", node.name]
        assert service["hostname"] == node.name
        assert service["deploy"]["mode"] == "replicated"
        assert service["deploy"]["replicas"] == 1
    vip = services[topology.vip.name]
    assert vip["deploy"]["replicas"] == len(members)
    assert vip["hostname"] == "lb-{{.Task.Slot}}"
    assert vip["deploy"]["placement"]["max_replicas_per_node"] == 1
    assert not members & set(services)
    assert services[composefile.PROVISION]["deploy"]["mode"] == "replicated-job"


def test_what_swarm_ignores_or_refuses_is_not_there(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        for key in ("container_name", "depends_on", "build", "restart", "privileged"):
            assert key not in service, f"{name}: {key}"
        assert service["networks"] == ["lab"], name
    text = STACK_FILE.read_text()
    assert "ipv4_address" not in text
    network = stack["networks"]["lab"]
    assert network["driver"] == "overlay" and network["attachable"] is True


def test_images_come_from_the_registry_the_topology_names(
    topology: Topology, stack: dict[str, Any]
) -> None:
    registry = swarmplan.settings(topology).registry
    assert registry == "127.0.0.1:5000"
    for name, service in stack["services"].items():
        assert service["image"].startswith(f"{registry}/reviewlab/"), name


def test_no_two_members_of_a_patroni_cluster_share_a_site(
    topology: Topology, stack: dict[str, Any]
) -> None:
    assert topology.clusters
    for cluster in topology.clusters.values():
        sites = [site_of(stack["services"][n.name]) for n in cluster.members]
        assert len(set(sites)) == len(sites), cluster.name


def test_the_etcd_members_sit_on_distinct_sites(topology: Topology, stack: dict[str, Any]) -> None:
    sites = [site_of(stack["services"][n.name]) for n in topology.of_kind("etcd")]
    assert len(sites) == 3 and len(set(sites)) == 3


@pytest.mark.parametrize("kind", ["web", "worker", "edge"])
def test_web_servers_workers_and_edges_spread(
    topology: Topology, stack: dict[str, Any], kind: str
) -> None:
    sites = [site_of(stack["services"][n.name]) for n in topology.of_kind(kind)]
    assert len(sites) >= 2 and len(set(sites)) == len(sites)


def test_more_web_servers_than_sites_wrap_around_evenly(document: dict[str, Any]) -> None:
    for i in range(4, 8):
        document["nodes"][f"web-{i}"] = {"kind": "web", "address": f"127.0.0.{10 + i}"}
    topology = parse(document)
    placed = swarmplan.sites(topology)
    counts = Counter(placed[n.name] for n in topology.of_kind("web"))
    assert sorted(counts.values()) == [2, 2, 3]


def test_the_clusters_start_on_different_sites(topology: Topology) -> None:
    placed = swarmplan.sites(topology)
    firsts = [placed[c.members[0].name] for c in topology.clusters.values()]
    assert len(set(firsts)) == len(swarmplan.settings(topology).sites)


def test_a_cluster_with_more_members_than_sites_is_refused(document: dict[str, Any]) -> None:
    document["nodes"]["catalog-4"] = {
        "kind": "postgres",
        "cluster": "catalog",
        "address": "127.0.0.24",
    }
    with pytest.raises(TopologyError, match=r"catalog: 4 members .* but 3 sites"):
        swarmplan.sites(parse(document))


def test_nodes_without_a_placement_may_run_anywhere(
    topology: Topology, stack: dict[str, Any]
) -> None:
    anywhere = {
        name
        for name, service in stack["services"].items()
        if "constraints" not in service["deploy"].get("placement", {})
    }
    members = set(topology.vip.members)
    unplaced = {
        n.name
        for n in topology.nodes.values()
        if kinds.of(n).runs and not kinds.of(n).placement and n.name not in members
    }
    assert anywhere == {"provision", "vip", *unplaced}
    assert {"dns", "redis", "minio", "shield", "metrics", "console", "traces"} <= anywhere


def test_every_service_mounts_the_lab_secrets_where_the_lab_reads_them(
    stack: dict[str, Any],
) -> None:
    container = parse(tomllib.loads(TOPOLOGY_PATH.read_text()), runtime="compose")
    target = str(secrets_path(container))
    assert target == composefile.CONTAINER_SECRETS
    for name, service in stack["services"].items():
        (secret,) = service["secrets"]
        assert secret["source"] == swarmstack.SECRET, name
        assert secret["target"] == target, name
        assert secret["mode"] == 0o400 and secret["uid"] == str(swarmstack.IMAGE_UID)
        assert "volumes" not in service or not any("secrets" in v for v in service["volumes"]), name
    assert stack["secrets"] == {
        swarmstack.SECRET: {"external": True, "name": swarmstack.SECRET_NAME}
    }


def test_no_secret_value_is_written_into_the_stack_file(topology: Topology) -> None:
    text = swarmfiles.render(topology)
    for word in ("password", "minio_root", "secret:"):
        assert word not in text.lower()
    for value in asdict(secretfile.generate()).values():
        assert value not in text
    for service in yaml.safe_load(text)["services"].values():
        assert set(service["environment"]) == {"REVIEWLAB_RUNTIME", "REVIEWLAB_NODE"}


def test_the_secret_belongs_to_the_images_run_user() -> None:
    dockerfile = (REPO / "infra" / "docker" / "Dockerfile").read_text()
    assert f"--uid {swarmstack.IMAGE_UID} " in dockerfile
    assert f"--gid {swarmstack.IMAGE_UID} " in dockerfile


def test_every_node_has_its_kinds_health_check(topology: Topology, stack: dict[str, Any]) -> None:
    for node in topology.nodes.values():
        name = topology.vip.name if node.name in topology.vip.members else node.name
        if node.kind == "vip":
            continue
        check = stack["services"][name]["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check["start_period"] == f"{kinds.of(node).start_period_s}s"
        spec = kinds.of(node)
        if spec.ready_check == "http" and node.name not in topology.vip.members:
            assert spec.ready_url is not None
            # The kind's URL, at the task's own hostname instead of a fixed address.
            assert check["test"][-1] == spec.ready_url(node).replace(node.address, node.name)
    assert "$$(hostname):8081/" in stack["services"]["vip"]["healthcheck"]["test"][1]


def test_every_node_restarts_after_any_exit(stack: dict[str, Any]) -> None:
    for name, service in stack["services"].items():
        policy = service["deploy"]["restart_policy"]
        assert policy["max_attempts"] == 0, name
        assert policy["condition"] == ("on-failure" if name == "provision" else "any"), name


def test_the_entry_points_go_through_the_routing_mesh(
    topology: Topology, stack: dict[str, Any]
) -> None:
    published = {
        name: [(p["published"], p["protocol"]) for p in service.get("ports", [])]
        for name, service in stack["services"].items()
    }
    lb = topology.load_balancers()[0]
    assert published["vip"] == [(lb.port, "tcp"), (lb.ceiling_port, "tcp")]
    assert published["edge-1"] == [(30071, "tcp")]
    assert published["dns"] == [(30001, "udp"), (30001, "tcp")]
    everyone = [port for ports in published.values() for port in ports]
    assert len(everyone) == len(set(everyone))
    assert all(
        p["mode"] == "ingress" for s in stack["services"].values() for p in s.get("ports", [])
    )
    assert {n for n, ports in published.items() if ports} == {
        "vip",
        *(n.name for n in topology.nodes.values() if kinds.of(n).published and n.kind != "vip"),
    }


def test_the_vip_members_must_be_named_by_their_slot(document: dict[str, Any]) -> None:
    document["nodes"]["lb-a"] = document["nodes"].pop("lb-2")
    document["nodes"]["vip"]["members"] = ["lb-1", "lb-a"]
    document["nodes"]["lb-2-exporter"]["watches"] = "lb-a"
    with pytest.raises(TopologyError, match="must be named by their place"):
        swarmplan.member_hostname(parse(document))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("sites", [], "must list the sites"),
        ("sites", ["site-1", "site-1"], "names a site twice"),
        ("sites", ["Site 1"], "lower-case letters"),
        ("registry", "http://127.0.0.1:5000/", "host\\[:port\\]"),
        ("network", "172.31.0.0/33", "not an IPv4 network"),
        ("published_base", 80, "1024..65279"),
    ],
)
def test_a_bad_swarm_table_is_refused(
    document: dict[str, Any], field: str, value: object, message: str
) -> None:
    document["runtimes"]["swarm"][field] = value
    with pytest.raises(TopologyError, match=message):
        swarmplan.settings(parse(document))


def test_a_topology_without_a_swarm_table_says_what_to_add(document: dict[str, Any]) -> None:
    del document["runtimes"]["swarm"]
    topology = parse(document)  # the other runtimes do not need it
    with pytest.raises(TopologyError, match=r"no \[runtimes.swarm\] table"):
        swarmplan.settings(topology)


def test_an_unknown_runtime_table_is_refused(document: dict[str, Any]) -> None:
    document["runtimes"]["swarn"] = {"sites": ["a"]}
    with pytest.raises(TopologyError, match=r"\[runtimes.swarn\]: not a runtime of the lab"):
        parse(document)
