"""Who may reach and change what on the cluster: NetworkPolicies and Patroni's RBAC.

The policies mirror the DNS's split horizon. Inside the lab (any pod of its namespace) every
node is reachable, as the internal view names every node; from outside only the public
view's entry points are, on the ports the lab publishes: the vIP, the CDN edges, the console
and the trace UI. Patroni alone talks to the cluster's API: its Kubernetes DCS keeps the
leader lock and the primary's address in Endpoints, and its role in a pod label.
"""

from __future__ import annotations

from typing import Any

from reviewlab_common.topology import Topology

from reviewlab_lab import k8splan
from reviewlab_lab.k8smanifests import NAMESPACE, PATRONI_ACCOUNT, meta

INTERNAL_POLICY = "lab-internal"


def _public_policy_name(entry: k8splan.EntryPoint) -> str:
    return f"public-{entry.name}"


def network_policies(topology: Topology) -> list[dict[str, Any]]:
    """Every pod: from the lab's own pods only; an entry point's: from anywhere, its ports."""
    internal = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(INTERNAL_POLICY),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            # A podSelector without a namespaceSelector: pods of this namespace, the lab's.
            "ingress": [{"from": [{"podSelector": {}}]}],
        },
    }
    found = [internal]
    for entry in k8splan.entry_points(topology):
        key, value = entry.workload.group_label
        ports = [{"port": p.number, "protocol": p.protocol} for p in entry.ports]
        found.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": meta(_public_policy_name(entry)),
                "spec": {
                    "podSelector": {"matchLabels": {key: value}},
                    "policyTypes": ["Ingress"],
                    # No `from`: any source, as the public view answers anyone.
                    "ingress": [{"ports": ports}],
                },
            }
        )
    return found


def patroni_rbac() -> list[dict[str, Any]]:
    """The account Patroni's pods run as, and what its Kubernetes DCS needs of the API."""
    endpoints = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"]
    rules = [
        # The leader lock, the cluster's config and the primary's address live in Endpoints.
        {"apiGroups": [""], "resources": ["endpoints"], "verbs": endpoints},
        # Each member labels its own pod with its role (the replicas' Service selects on it).
        {
            "apiGroups": [""],
            "resources": ["pods"],
            "verbs": ["get", "list", "watch", "patch", "update"],
        },
        # The Service behind the config Endpoints, so the cluster does not clean them away.
        {"apiGroups": [""], "resources": ["services"], "verbs": ["create"]},
    ]
    subject = {"kind": "ServiceAccount", "name": PATRONI_ACCOUNT, "namespace": NAMESPACE}
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": PATRONI_ACCOUNT}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(PATRONI_ACCOUNT)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta(PATRONI_ACCOUNT),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta(PATRONI_ACCOUNT),
            "subjects": [subject],
            "roleRef": role_ref,
        },
    ]
