"""deploy/k8s/, generated from the topology: `reviewlab k8s generate`.

One file per workload (its controller and Services), the public Services, the
NetworkPolicies, Patroni's RBAC, the namespace, and a kustomization that lists them all, so
`kubectl apply -k deploy/k8s` takes the lot. The images keep the Compose file's names; the
kustomization moves them to a registry (REGISTRY, a placeholder to replace). The files are
committed; unit tests fail when they are stale or do not validate against KUBERNETES_VERSION.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reviewlab_common import topology as lab_topology
from reviewlab_common.topology import Topology

from reviewlab_lab import k8saccess, k8smanifests, k8splan, kinds
from reviewlab_lab.files import generated_yaml
from reviewlab_lab.k8smanifests import NAMESPACE, meta
from reviewlab_lab.paths import REPO

K8S_DIR = REPO / "deploy" / "k8s"
COMMAND = "reviewlab k8s generate"
# The one Kubernetes version the files are checked against (kubernetes-validate, strict).
KUBERNETES_VERSION = "1.37.0"
# Where a cluster pulls the images from: replace it (docs/kubernetes.md) with a registry the
# cluster reaches, after pushing the images `make images` builds to it.
REGISTRY = "registry.invalid"
KUSTOMIZATION = "kustomization.yaml"
HEADER = (
    "# Review Lab on Kubernetes, on paper: generated from infra/topology.toml by\n"
    f"# `{COMMAND}`. Do not edit: change the topology and regenerate.\n"
    f"# Checked against Kubernetes {KUBERNETES_VERSION}, never applied by the lab's CI\n"
    "# (docs/kubernetes.md).\n"
)


def manifests(topology: Topology) -> dict[str, list[dict[str, Any]]]:
    """File name -> the Kubernetes objects in it, every file but the kustomization."""
    # A namespace is in none: its metadata is the other objects' minus the namespace.
    own = {k: v for k, v in meta(NAMESPACE).items() if k != "namespace"}
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": own}
    files: dict[str, list[dict[str, Any]]] = {"namespace.yaml": [namespace]}
    files["patroni-rbac.yaml"] = k8saccess.patroni_rbac()
    for workload in k8splan.workloads(topology):
        objects = [*k8smanifests.services(workload), k8smanifests.controller(workload)]
        files[f"{workload.name}.yaml"] = objects
    for kind in dict.fromkeys(w.kind for w in k8splan.workloads(topology)):
        shared = k8smanifests.kind_service(topology, kind)
        if shared is not None:
            files[f"{kind}.yaml"] = [shared]
    public = [k8smanifests.public_service(e) for e in k8splan.entry_points(topology)]
    files["public-services.yaml"] = public
    files["network-policies.yaml"] = k8saccess.network_policies(topology)
    return files


def kustomization(topology: Topology, names: list[str]) -> dict[str, Any]:
    pods = [(*w.nodes[:1], *w.sidecars) for w in k8splan.workloads(topology)]
    images = dict.fromkeys(kinds.of(node).image for nodes in pods for node in nodes)
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": names,
        "images": [
            {"name": f"reviewlab/{image}", "newName": f"{REGISTRY}/reviewlab/{image}"}
            for image in images
        ],
    }


def render(topology: Topology | None = None) -> dict[str, str]:
    """File name -> its text: what deploy/k8s/ holds."""
    topology = topology or lab_topology.load(runtime="native")
    files = {name: generated_yaml(HEADER, objects) for name, objects in manifests(topology).items()}
    files[KUSTOMIZATION] = generated_yaml(HEADER, [kustomization(topology, list(files))])
    return files


def _generated(folder: Path) -> dict[str, str]:
    """The files in FOLDER this command wrote (they carry its header)."""
    if not folder.is_dir():
        return {}
    found = {p.name: p.read_text() for p in sorted(folder.glob("*.yaml"))}
    return {name: text for name, text in found.items() if text.startswith(HEADER)}


def stale_reason() -> str | None:
    """Why the committed deploy/k8s/ does not match the topology, or None."""
    expected, committed = render(), _generated(K8S_DIR)
    if committed == expected:
        return None
    differ = sorted(
        n for n in expected.keys() | committed.keys() if expected.get(n) != committed.get(n)
    )
    where = K8S_DIR.relative_to(REPO)
    return f"{where}/ does not match infra/topology.toml ({', '.join(differ)}): run `{COMMAND}`"


def generate() -> list[str]:
    """Write deploy/k8s/ and remove the generated files it no longer has; the names changed."""
    expected, committed = render(), _generated(K8S_DIR)
    K8S_DIR.mkdir(parents=True, exist_ok=True)
    changed: list[str] = []
    for name, text in expected.items():
        if committed.get(name) != text:
            (K8S_DIR / name).write_text(text)
            changed.append(name)
    for name in committed.keys() - expected.keys():
        (K8S_DIR / name).unlink()
        changed.append(name)
    return sorted(changed)
