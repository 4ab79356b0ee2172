"""deploy/k8s/ is generated from the topology, validates, and says what the lab needs of it."""

from __future__ import annotations

import copy
import ipaddress
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from reviewlab_common.topology import Topology, parse
from reviewlab_lab import k8sfiles, k8splan
from reviewlab_lab.k8sfiles import HEADER, K8S_DIR, KUBERNETES_VERSION, KUSTOMIZATION
from reviewlab_lab.k8smanifests import NAMESPACE, SECRET_NAME

# A shopper's address: outside the lab, in no pod of its namespace.
OUTSIDE = "203.0.113.7"


@pytest.fixture()
def topology(document: dict[str, Any]) -> Topology:
    return parse(document)


@cache
def committed() -> dict[str, list[dict[str, Any]]]:
    return {
        p.name: [d for d in yaml.safe_load_all(p.read_text()) if d]
        for p in sorted(K8S_DIR.glob("*.yaml"))
    }


def objects(kind: str) -> list[dict[str, Any]]:
    return [d for docs in committed().values() for d in docs if d["kind"] == kind]


def test_the_committed_manifests_match_the_topology() -> None:
    expected = k8sfiles.render()
    on_disk = {p.name: p.read_text() for p in sorted(K8S_DIR.glob("*.yaml"))}
    assert on_disk == expected, "deploy/k8s/ is stale: run `reviewlab k8s generate` and commit it"
    assert k8sfiles.stale_reason() is None
    assert all(text.startswith(HEADER) for text in on_disk.values())


def test_a_changed_topology_makes_them_stale(document: dict[str, Any]) -> None:
    grown = copy.deepcopy(document)
    grown["nodes"]["worker-3"] = {"kind": "worker", "address": "127.0.0.83"}
    files = k8sfiles.render(parse(grown))
    worker = next(d for d in yaml.safe_load_all(files["worker.yaml"]) if d["kind"] == "Deployment")
    assert worker["spec"]["replicas"] == 3
    assert files != k8sfiles.render()


@pytest.mark.parametrize("name", sorted(set(k8sfiles.render()) - {KUSTOMIZATION}))
def test_every_manifest_validates_strictly(name: str) -> None:
    docs = committed()[name]
    assert docs
    for doc in docs:
        # Raises on a field the schema does not know, or a kind it has no schema for.
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE


def test_strict_validation_refuses_an_unknown_field() -> None:
    deployment = copy.deepcopy(objects("Deployment")[0])  # the cached one stays as it was
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_file_and_moves_every_image() -> None:
    (kustomization,) = committed()[KUSTOMIZATION]
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(set(committed()) - {KUSTOMIZATION})
    used = {
        c["image"].split(":")[0]
        for workload in objects("Deployment") + objects("StatefulSet")
        for c in workload["spec"]["template"]["spec"]["containers"]
    }
    assert {i["name"] for i in kustomization["images"]} == used
    assert all(i["newName"].startswith(k8sfiles.REGISTRY + "/") for i in kustomization["images"])


def test_every_node_has_a_counterpart(topology: Topology) -> None:
    mapping = k8splan.mapping(topology)
    assert list(mapping) == list(topology.nodes)
    replicas = {
        d["metadata"]["name"]: (d["kind"], d["spec"]["replicas"])
        for d in objects("Deployment") + objects("StatefulSet")
    }
    in_pods: list[str] = []
    for workload in k8splan.workloads(topology):
        assert replicas[workload.name] == (workload.controller, len(workload.nodes))
        for node in workload.nodes:
            assert mapping[node.name].startswith(f"{workload.controller} {workload.name}, pod ")
        in_pods += [n.name for n in workload.nodes]
    assert len(in_pods) == len(set(in_pods))
    # The rest is deliberately something else: a Service, a sidecar, the cluster's own part.
    elsewhere = {n: mapping[n] for n in topology.nodes if n not in in_pods}
    assert elsewhere == {
        "dns": k8splan.REPLACED_BY_THE_CLUSTER["dns"],
        "vip": "Service www (type LoadBalancer)",
        "lb-1-exporter": "container nginx-exporter in lb's pods",
        "lb-2-exporter": "container nginx-exporter in lb's pods",
        "edge-1-exporter": "container nginx-exporter in edge's pods",
        "edge-2-exporter": "container nginx-exporter in edge's pods",
        "shield-exporter": "container nginx-exporter in shield's pods",
        "redis-exporter": "container redis-exporter in redis's pods",
        "dns-exporter": "no counterpart: it watches dns, the cluster's own",
    }
    sidecars = {
        d["metadata"]["name"]: [c["name"] for c in d["spec"]["template"]["spec"]["containers"]]
        for d in objects("StatefulSet")
    }
    assert sidecars["lb"] == ["lb", "nginx-exporter"]
    assert sidecars["redis"] == ["redis", "redis-exporter"]


def test_a_node_with_no_counterpart_is_an_error(document: dict[str, Any]) -> None:
    from reviewlab_common.topology import TopologyError

    # An exporter of the vIP, which is no pod: nothing on a cluster could stand for it.
    document["nodes"]["vip-exporter"] = {
        "kind": "nginx-exporter",
        "address": "127.0.0.119",
        "port": 9113,
        "watches": "vip",
    }
    with pytest.raises(TopologyError, match="vip-exporter have no counterpart"):
        k8splan.mapping(parse(document))


def test_each_patroni_cluster_spreads_its_members_over_machines(topology: Topology) -> None:
    statefulsets = {d["metadata"]["name"]: d for d in objects("StatefulSet")}
    assert topology.clusters
    for cluster in topology.clusters.values():
        pod = statefulsets[cluster.name]["spec"]["template"]
        assert pod["metadata"]["labels"][k8splan.SCOPE_LABEL] == cluster.name
        assert statefulsets[cluster.name]["spec"]["replicas"] == len(cluster.members)
        (term,) = pod["spec"]["affinity"]["podAntiAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        assert term["labelSelector"] == {"matchLabels": {k8splan.SCOPE_LABEL: cluster.name}}
        assert term["topologyKey"] == "kubernetes.io/hostname"
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        # Patroni's Kubernetes DCS, not etcd.
        assert env["PATRONI_SCOPE"] == cluster.name
        assert env["PATRONI_KUBERNETES_USE_ENDPOINTS"] == "true"


def test_readiness_comes_from_the_kinds_checks(topology: Topology) -> None:
    probes = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
        for d in objects("Deployment") + objects("StatefulSet")
    }
    workloads = k8splan.workloads(topology)
    over_http = [w for w in workloads if w.spec.ready_check == "http"]
    others = [w for w in workloads if w.spec.ready_check != "http"]
    assert over_http and others
    for workload in over_http:
        ready_url = workload.spec.ready_url
        assert ready_url is not None
        url = urlsplit(ready_url(workload.nodes[0]))
        assert probes[workload.name]["httpGet"] == {"path": url.path, "port": url.port}
    for workload in others:
        assert probes[workload.name]["tcpSocket"] == {"port": workload.nodes[0].port}


def test_secrets_are_referenced_by_name_and_never_written() -> None:
    pods = [d["spec"]["template"] for d in objects("Deployment") + objects("StatefulSet")]
    assert pods
    for pod in pods:
        secrets = [v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v]
        assert secrets == [SECRET_NAME]
    assert objects("Secret") == []
    text = "".join(p.read_text() for p in K8S_DIR.glob("*.yaml")).lower()
    assert "password" not in text


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "the test reads matchLabels only"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _source_matches(peer: dict[str, Any], source: str | None) -> bool:
    """SOURCE: a pod of the lab's namespace (None), else an address outside it."""
    assert set(peer) <= {"podSelector", "ipBlock"}, "the test reads these peers only"
    if "podSelector" in peer:
        return source is None and peer["podSelector"] == {}
    block = peer["ipBlock"]
    inside = source is not None and ipaddress.ip_address(source) in ipaddress.ip_network(
        block["cidr"]
    )
    excepted = any(
        source is not None and ipaddress.ip_address(source) in ipaddress.ip_network(e)
        for e in block.get("except", [])
    )
    return inside and not excepted


def allowed(labels: dict[str, str], port: int, source: str | None) -> bool:
    """Whether the committed NetworkPolicies let SOURCE reach a pod with LABELS on PORT."""
    selecting = [p for p in objects("NetworkPolicy") if _selects(p["spec"]["podSelector"], labels)]
    if not selecting:
        return True  # a pod no policy selects is open to everyone
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            port_ok = ports is None or any(p["port"] == port for p in ports)
            peers = rule.get("from")
            from_ok = peers is None or any(_source_matches(p, source) for p in peers)
            if port_ok and from_ok:
                return True
    return False


def test_network_policies_mirror_the_dns_split_horizon(topology: Topology) -> None:
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in objects("Deployment") + objects("StatefulSet")
    }
    public = {e.workload.name: e for e in k8splan.entry_points(topology)}
    # The public view's names: the vIP (its load balancers), the edges, console, traces.
    assert {e.name for e in public.values()} == {"www", "cdn", "console", "traces"}
    assert {"lb", "edge", "console", "tracing"} == set(public)
    for workload in k8splan.workloads(topology):
        labels = pods[workload.name]
        for port in workload.ports:
            # Inside the lab every node answers, as the internal view names every node.
            assert allowed(labels, port.number, None), (workload.name, port)
        entry = public.get(workload.name)
        outside = {p.number for p in entry.ports} if entry else set()
        for port in workload.ports:
            assert allowed(labels, port.number, OUTSIDE) == (port.number in outside), (
                workload.name,
                port,
            )
    assert public["lb"].ports and {p.name for p in public["lb"].ports} == {"main", "ceiling"}


def test_public_entry_points_are_load_balancer_services() -> None:
    services = {d["metadata"]["name"]: d for d in objects("Service")}
    for name in ("www", "cdn", "console", "traces"):
        assert services[name]["spec"]["type"] == "LoadBalancer"
    internal = [s for n, s in services.items() if n not in ("www", "cdn", "console", "traces")]
    assert internal
    assert all(s["spec"].get("type", "ClusterIP") == "ClusterIP" for s in internal)
    # primary.<cluster>: Patroni keeps the Endpoints of the Service named after the scope.
    assert "selector" not in services["catalog"]["spec"]
    assert services["catalog-replicas"]["spec"]["selector"]["role"] == "replica"
