"""Prometheus's scrape config, generated from the topology: one target per node it can read.

Every target carries three labels the console reads: `node` (whose figures these are), `kind`
(that node's kind) and `via` (the node that answers the scrape: the node itself, or the
exporter that reads it). A node of a kind listed nowhere here is not scraped, and the console
shows it as unknown rather than healthy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reviewlab_common.topology import Node, Topology

# How often every target is read, and how long one scrape may take: the console refreshes
# every 2 s, and a node that does not answer within a second counts as not answering.
SCRAPE_INTERVAL = "2s"
SCRAPE_TIMEOUT = "1s"
# Bounded retention: the console's charts show the last 15 minutes.
RETENTION_TIME = "6h"
RETENTION_SIZE = "256MB"
# MinIO's Prometheus endpoint (metrics v2), read with the bearer token MinIO accepts.
MINIO_METRICS_PATH = "/minio/v2/metrics/cluster"


@dataclass(frozen=True)
class Scrape:
    """Where one kind's nodes are read: the port field, the path, whether MinIO's token."""

    port_field: str = "port"
    path: str = "/metrics"
    minio_token: bool = False


# Kinds read directly, on their own /metrics.
DIRECT: dict[str, Scrape] = {
    "web": Scrape(),
    "worker": Scrape(),
    "postgres": Scrape(port_field="rest_port"),  # Patroni's own /metrics
    "etcd": Scrape(),
    "minio": Scrape(path=MINIO_METRICS_PATH, minio_token=True),
    "metrics": Scrape(),
    "console": Scrape(),
}
# Kinds that read another node (its field `watches`) and export its figures.
EXPORTERS = frozenset({"nginx-exporter", "redis-exporter", "bind-exporter"})


def scraped_kinds() -> frozenset[str]:
    return frozenset(DIRECT) | EXPORTERS


def _target(node: Node, port: int, subject: Node) -> dict[str, Any]:
    return {
        "targets": [f"{node.address}:{port}"],
        "labels": {"node": subject.name, "kind": subject.kind, "via": node.name},
    }


def scrape_config(topology: Topology, minio_token_file: Path) -> dict[str, Any]:
    """The whole prometheus.yml as a document: one job per kind, one target per node."""
    jobs: dict[str, dict[str, Any]] = {}
    for node in topology.nodes.values():
        if node.kind in EXPORTERS:
            assert node.watches is not None  # the topology requires it for these kinds
            scrape = Scrape()
            entry = _target(node, node.port, topology.nodes[node.watches])
        elif node.kind in DIRECT:
            scrape = DIRECT[node.kind]
            port = getattr(node, scrape.port_field)
            entry = _target(node, port, node)
        else:
            continue
        job = jobs.setdefault(node.kind, {"job_name": node.kind, "metrics_path": scrape.path})
        if scrape.minio_token:
            job["authorization"] = {"type": "Bearer", "credentials_file": str(minio_token_file)}
        job.setdefault("static_configs", []).append(entry)
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": SCRAPE_TIMEOUT,
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "scrape_configs": [jobs[kind] for kind in sorted(jobs)],
    }


def unscraped(topology: Topology) -> list[str]:
    """The nodes Prometheus reads nothing of (the console shows them as unknown)."""
    watched = {n.watches for n in topology.nodes.values() if n.kind in EXPORTERS}
    return [
        n.name
        for n in topology.nodes.values()
        if n.kind not in scraped_kinds() and n.name not in watched
    ]


# The token never expires within the lab's life; fixed, so the rendered file does not change
# from one `reviewlab up` to the next.
MINIO_TOKEN_EXPIRES = 4102444800  # 2100-01-01T00:00:00Z


def minio_bearer_token(access_key: str, secret_key: str) -> str:
    """The bearer token MinIO's Prometheus endpoint accepts (what `mc admin prometheus
    generate` prints): a JWT with issuer "prometheus" and the access key as its subject,
    signed HS512 with the secret key."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = part(json.dumps({"alg": "HS512", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"exp": MINIO_TOKEN_EXPIRES, "sub": access_key, "iss": "prometheus"}
    body = part(json.dumps(claims, separators=(",", ":")).encode())
    signed = f"{header}.{body}".encode()
    signature = hmac.new(secret_key.encode(), signed, hashlib.sha512).digest()
    return f"{header}.{body}.{part(signature)}"
