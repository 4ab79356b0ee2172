"""Which names the private DNS serves, derived from the topology and the clusters' roles, and
the TSIG-signed dynamic updates that set them."""

from __future__ import annotations

from typing import Any

import dns.exception
import dns.name
import dns.query
import dns.rcode
import dns.update
import httpx
from reviewlab_common import dns as lab_dns
from reviewlab_common import httpclient
from reviewlab_common.outliers import accepts_connections
from reviewlab_common.secrets import TSIG_ALGORITHM, TSIG_KEY_NAME
from reviewlab_common.topology import Cluster, Node, Topology

# Patroni's state of a replica that replays the primary's WAL. A listed replica stays listed
# while it is "running" too: with its primary lost it stops streaming but still serves reads
# (the routers check how far it has replayed), and those reads are all a shard has until a
# replica is promoted. A replica that left the record comes back only once it streams.
STREAMING = "streaming"
STILL_SERVING = frozenset({STREAMING, "running"})


def static_records(topology: Topology) -> dict[str, list[str]]:
    """Internal view: one name per node, plus the service names."""
    records = {node.name: [node.address] for node in topology.nodes.values()}
    for service, target in topology.services.items():
        records[service] = [topology.nodes[target].address]
    return records


def public_records(topology: Topology, edge: Node | None = None) -> dict[str, str]:
    """Public view: only the service names outside clients may see (www, cdn).

    Outside clients reach the lab where the machine publishes it: the nodes' host addresses.
    EDGE, if given, is the CDN edge this view's clients get for `cdn` (GeoDNS, geodns.py).
    """
    records = {
        service: topology.nodes[target].host_address
        for service, target in topology.services.items()
    }
    if edge is not None:
        records["cdn"] = edge.host_address
    return records


def patroni_members(cluster: Cluster, timeout: float = 2.0) -> dict[str, dict[str, Any]]:
    """Member name -> Patroni's view of it (role, state, lag), from the first member answering."""
    for member in cluster.members:
        try:
            reply = httpclient.get(
                f"http://{member.address}:{member.rest_port}/cluster", timeout=timeout
            )
            reply.raise_for_status()
        except httpx.HTTPError:
            continue
        return {m["name"]: m for m in reply.json().get("members", [])}
    return {}


def cluster_roles(cluster: Cluster, timeout: float = 2.0) -> dict[str, str]:
    """Member name -> role ('leader', 'replica', 'sync_standby', ...)."""
    return {name: str(m["role"]) for name, m in patroni_members(cluster, timeout).items()}


def serving_replicas(
    topology: Topology,
    cluster: Cluster,
    members: dict[str, dict[str, Any]],
    listed: list[str] | None = None,
) -> list[str]:
    """Addresses of the replicas that serve reads now: streaming (or running, if LISTED
    already; None: any that runs) in Patroni's view, and answering a connect.

    Patroni keeps a lost member's last state until its key expires (ttl); the connect, bounded
    by the runtime's connect timeout, is what tells a dead member from a live one at once.
    """
    timeout = topology.lab.runtime.connect_timeout_s

    def state_serves(address: str, state: object) -> bool:
        if state == STREAMING:
            return True
        return state in STILL_SERVING and (listed is None or address in listed)

    return sorted(
        m.address
        for m in cluster.members
        if (member := members.get(m.name))
        and member.get("role") != "leader"
        and state_serves(m.address, member.get("state"))
        and accepts_connections(m.address, m.port, timeout)
    )


def role_records(topology: Topology, cluster: Cluster) -> dict[str, list[str]]:
    """primary.<cluster> and replicas.<cluster>: Patroni's leader, and the replicas serving."""
    members = patroni_members(cluster)
    if not members:
        return {}  # nobody answered: keep the last known records rather than erase them
    by_name = {m.name: m.address for m in cluster.members}
    primary = [by_name[n] for n, m in members.items() if m.get("role") == "leader" and n in by_name]
    return {
        f"primary.{cluster.name}": primary,
        f"replicas.{cluster.name}": serving_replicas(topology, cluster, members),
    }


def sync(topology: Topology, clusters: list[Cluster] | None = None) -> dict[str, list[str]]:
    """Push the current records to the DNS by signed dynamic update; return what was set."""
    changes: dict[str, list[str]] = {}
    if clusters is None:
        changes |= static_records(topology)
        clusters = list(topology.clusters.values())
    for cluster in clusters:
        changes |= role_records(topology, cluster)
    replace_records(topology, changes)
    return changes


def replace_records(
    topology: Topology,
    changes: dict[str, list[str]],
    *,
    signed: bool = True,
    timeout: float = 3.0,
) -> None:
    """Set the A records of each name (relative to the domain) to exactly the given addresses.

    An empty list deletes the name. The update is TSIG-signed unless `signed` is False
    (which the DNS refuses: that is how the lab shows the key matters).
    """
    node = topology.one("dns")
    zone = topology.lab.domain + "."
    if signed:
        keyring = lab_dns.tsig_keyring(topology)
        update = dns.update.UpdateMessage(
            zone,
            keyring=keyring,
            keyname=dns.name.from_text(TSIG_KEY_NAME),
            keyalgorithm=TSIG_ALGORITHM,
        )
    else:
        update = dns.update.UpdateMessage(zone)
    for name, addresses in changes.items():
        update.delete(name, "A")
        for address in addresses:
            update.add(name, 5, "A", address)
    try:
        response = dns.query.tcp(update, node.address, port=node.port, timeout=timeout)
    except (OSError, dns.exception.DNSException) as exc:
        raise lab_dns.DnsError(f"DNS update to {node.endpoint} failed: {exc}") from exc
    if response.rcode() != dns.rcode.NOERROR:
        raise lab_dns.DnsError(f"DNS refused the update: {dns.rcode.to_text(response.rcode())}")
