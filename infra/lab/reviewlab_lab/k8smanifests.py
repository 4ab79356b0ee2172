"""The Kubernetes objects that run the lab's workloads: controllers, pods and Services.

Read from the plan (k8splan): a StatefulSet or Deployment per workload, its pods in the
images the Compose file names, the lab's secrets mounted from a Secret referenced by name,
readiness from the kind's check, and the Services that replace the DNS's records. A Patroni
cluster keeps its state in Kubernetes (Patroni's Kubernetes DCS) instead of etcd: the
Endpoints of the Service named after its scope always hold the primary.
"""

from __future__ import annotations

import json
from typing import Any

from reviewlab_common.topology import Node, Topology

from reviewlab_lab import composefile, k8splan
from reviewlab_lab.k8splan import EntryPoint, Port, Probe, Workload
from reviewlab_lab.runtimes.base import NODE_ENV

NAMESPACE = "reviewlab"
PART_OF = {"app.kubernetes.io/part-of": NAMESPACE}
# The lab's secrets file (and the DNS's TSIG key beside it): made by `reviewlab init` on the
# learner's machine and loaded with `kubectl create secret`, never written into these files.
SECRET_NAME = "reviewlab-secrets"
PATRONI_ACCOUNT = "patroni"
# What each pod asks of the cluster for its data volume (KindSpec.stateful).
DATA_SIZE = "1Gi"
DATA_VOLUME, SECRETS_VOLUME = "data", "secrets"
HOSTNAME_KEY = "kubernetes.io/hostname"
# The Compose health check's rhythm (composefile): every 5 s, 3 s to answer, 3 misses.
PROBE_TIMING = {"periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3}


def meta(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": name, "namespace": NAMESPACE, "labels": {**PART_OF, **(labels or {})}}


def pod_labels(workload: Workload) -> dict[str, str]:
    key, value = workload.group_label
    return {
        **PART_OF,
        "app.kubernetes.io/name": workload.name,
        "app.kubernetes.io/component": workload.kind,
        key: value,
    }


def _ports(ports: tuple[Port, ...]) -> list[dict[str, Any]]:
    return [{"name": p.name, "containerPort": p.number, "protocol": p.protocol} for p in ports]


def _service_ports(ports: tuple[Port, ...]) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "port": p.number, "targetPort": p.name, "protocol": p.protocol}
        for p in ports
    ]


def _probe(probe: Probe) -> dict[str, Any]:
    if probe.path is None:
        return {"tcpSocket": {"port": probe.port}, **PROBE_TIMING}
    return {"httpGet": {"path": probe.path, "port": probe.port}, **PROBE_TIMING}


def _field(path: str) -> dict[str, Any]:
    return {"valueFrom": {"fieldRef": {"fieldPath": path}}}


def _patroni_env(workload: Workload) -> list[dict[str, Any]]:
    """Patroni's Kubernetes DCS: its leader lock and the primary's address in Endpoints."""
    main = next(p for p in workload.ports if p.name == k8splan.PORT_NAMES["port"])
    labels = {**PART_OF, "app.kubernetes.io/component": workload.kind}
    return [
        {"name": "PATRONI_SCOPE", "value": workload.cluster},
        {"name": "PATRONI_NAME", **_field("metadata.name")},
        {"name": "PATRONI_KUBERNETES_NAMESPACE", **_field("metadata.namespace")},
        {"name": "PATRONI_KUBERNETES_POD_IP", **_field("status.podIP")},
        {"name": "PATRONI_KUBERNETES_USE_ENDPOINTS", "value": "true"},
        {"name": "PATRONI_KUBERNETES_LABELS", "value": json.dumps(labels)},
        {"name": "PATRONI_KUBERNETES_SCOPE_LABEL", "value": k8splan.SCOPE_LABEL},
        # The leader's Endpoints name the port as the Service does, or the Service finds none.
        {
            "name": "PATRONI_KUBERNETES_PORTS",
            "value": json.dumps([{"name": main.name, "port": main.number}]),
        },
    ]


def _container(workload: Workload) -> dict[str, Any]:
    node = workload.nodes[0]
    env: list[dict[str, Any]] = [{"name": NODE_ENV, **_field("metadata.name")}]
    if workload.cluster is not None:
        env += _patroni_env(workload)
    mounts = [
        {"name": SECRETS_VOLUME, "mountPath": composefile.CONTAINER_SECRETS_DIR, "readOnly": True}
    ]
    if workload.spec.stateful:
        mounts.append({"name": DATA_VOLUME, "mountPath": composefile.CONTAINER_DATA})
    return {
        "name": workload.kind,
        "image": composefile.image_of(node),
        # As under Compose: the lab's launcher renders the node's config, then becomes it.
        "command": ["reviewlab", "run", f"$({NODE_ENV})"],
        "env": env,
        "ports": _ports(workload.ports),
        "readinessProbe": _probe(workload.probe),
        "volumeMounts": mounts,
    }


def _sidecar(exporter: Node) -> dict[str, Any]:
    ports = tuple(Port(exporter.kind, p.number, p.protocol) for p in k8splan.ports_of((exporter,)))
    return {
        "name": exporter.kind,
        "image": composefile.image_of(exporter),
        "command": ["reviewlab", "run", f"$({NODE_ENV})"],
        "env": [{"name": NODE_ENV, **_field("metadata.name")}],
        "ports": _ports(ports),
        "readinessProbe": _probe(k8splan.probe_of(exporter)),
        "volumeMounts": [
            {
                "name": SECRETS_VOLUME,
                "mountPath": composefile.CONTAINER_SECRETS_DIR,
                "readOnly": True,
            }
        ],
    }


def _anti_affinity(workload: Workload) -> dict[str, Any]:
    """No two pods of the workload on one machine: a replica beside its primary is no copy."""
    key, value = workload.group_label
    term = {"labelSelector": {"matchLabels": {key: value}}, "topologyKey": HOSTNAME_KEY}
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def _grace_s(workload: Workload) -> int | None:
    grace = workload.spec.stop_grace
    return int(grace.removesuffix("s")) if grace else None


def pod_template(workload: Workload) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [_container(workload), *(_sidecar(s) for s in workload.sidecars)],
        "volumes": [{"name": SECRETS_VOLUME, "secret": {"secretName": SECRET_NAME}}],
    }
    if workload.cluster is not None:
        spec["serviceAccountName"] = PATRONI_ACCOUNT
    else:
        # Only Patroni talks to the cluster's API; the other pods get no token.
        spec["automountServiceAccountToken"] = False
    if workload.controller == "StatefulSet" and len(workload.nodes) > 1:
        spec["affinity"] = _anti_affinity(workload)
    grace = _grace_s(workload)
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": {"labels": pod_labels(workload)}, "spec": spec}


def members_service(workload: Workload) -> str:
    """The headless Service a StatefulSet's pods are named in (catalog-0.catalog-members)."""
    return f"{workload.name}-members"


def controller(workload: Workload) -> dict[str, Any]:
    """The workload's Deployment or StatefulSet, a replica per lab node."""
    spec: dict[str, Any] = {
        "replicas": len(workload.nodes),
        "selector": {"matchLabels": {"app.kubernetes.io/name": workload.name}},
        "template": pod_template(workload),
    }
    if workload.controller == "StatefulSet":
        spec["serviceName"] = members_service(workload)
        claim = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": DATA_SIZE}},
        }
        spec["volumeClaimTemplates"] = [{"metadata": {"name": DATA_VOLUME}, "spec": claim}]
    labels = {"app.kubernetes.io/component": workload.kind}
    return {
        "apiVersion": "apps/v1",
        "kind": workload.controller,
        "metadata": meta(workload.name, labels),
        "spec": spec,
    }


def service(
    name: str,
    ports: tuple[Port, ...],
    selector: dict[str, str] | None,
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"ports": _service_ports(ports), **spec}
    if selector is not None:
        body["selector"] = selector
    else:
        # Patroni writes this Service's Endpoints itself: a target port is the pods' own number.
        body["ports"] = [{k: v for k, v in p.items() if k != "targetPort"} for p in body["ports"]]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name), "spec": body}


def services(workload: Workload) -> list[dict[str, Any]]:
    """What the DNS's internal view names: a Service per workload, a cluster's roles."""
    key, value = workload.group_label
    found: list[dict[str, Any]] = []
    if workload.cluster is not None:
        main = tuple(p for p in workload.ports if p.name == k8splan.PORT_NAMES["port"])
        # primary.<cluster>: no selector, Patroni points its Endpoints at the leader.
        found.append(service(workload.cluster, main, None))
        # replicas.<cluster>: Patroni labels each pod with its role.
        found.append(service(f"{workload.cluster}-replicas", main, {key: value, "role": "replica"}))
    else:
        found.append(service(workload.name, workload.ports, {key: value}))
    if workload.controller == "StatefulSet":
        found.append(
            service(
                members_service(workload),
                workload.ports,
                {key: value},
                clusterIP="None",
                # Members find each other before they are ready (an election, a first sync).
                publishNotReadyAddresses=True,
            )
        )
    return found


def kind_service(topology: Topology, kind: str) -> dict[str, Any] | None:
    """One Service over every pod of KIND when it is split over workloads (the web servers)."""
    split = [w for w in k8splan.workloads(topology) if w.kind == kind and w.cluster is None]
    if len(split) < 2:
        return None
    ports = split[0].ports
    return service(kind, ports, {**PART_OF, "app.kubernetes.io/component": kind})


def public_service(entry: EntryPoint) -> dict[str, Any]:
    """An entry point of the public view: a Service with an address outside the cluster."""
    key, value = entry.workload.group_label
    return service(entry.name, entry.ports, {key: value}, type="LoadBalancer")
