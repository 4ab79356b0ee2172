"""The lab's private DNS: lookups through bind9 and TSIG-signed dynamic updates."""

from __future__ import annotations

import base64

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology


class DnsError(RuntimeError):
    """The private DNS did not answer or refused a change."""


def lookup(
    topology: Topology,
    name: str,
    *,
    source: str | None = None,
    timeout: float = 2.0,
    published: bool = False,
    signed: bool = False,
) -> list[str]:
    """A records of NAME (relative to the lab's domain); [] when the name does not exist.

    `source` picks the address the query leaves from, which decides the DNS view.
    `published` asks the DNS where the machine's own programs reach it (its host address).
    `signed` signs the query with the lab's TSIG key, which the internal view also admits:
    how the machine's own tools see inside a Compose lab, whose network it is not part of.
    """
    node = topology.one("dns")
    server = node.host_address if published else node.address
    fqdn = dns.name.from_text(name if name.endswith(".") else topology.fqdn(name) + ".")
    query = dns.message.make_query(fqdn, dns.rdatatype.A)
    if signed:
        query.use_tsig(
            _keyring(topology),
            keyname=dns.name.from_text(lab_secrets.TSIG_KEY_NAME),
            algorithm=lab_secrets.TSIG_ALGORITHM,
        )
    try:
        answer = dns.query.udp(query, server, port=node.port, timeout=timeout, source=source)
    except (OSError, dns.exception.Timeout) as exc:
        raise DnsError(f"DNS at {server}:{node.port} did not answer for {fqdn}: {exc}") from exc
    if answer.rcode() == dns.rcode.NXDOMAIN:
        return []
    if answer.rcode() != dns.rcode.NOERROR:
        raise DnsError(f"DNS answered {dns.rcode.to_text(answer.rcode())} for {fqdn}")
    return sorted(
        item.address for rrset in answer.answer if rrset.rdtype == dns.rdatatype.A for item in rrset
    )


def _keyring(topology: Topology) -> dict[dns.name.Name, dns.tsig.Key]:
    secret = lab_secrets.load(topology).tsig_secret
    base64.b64decode(secret)  # fail early on a damaged secrets file
    name = dns.name.from_text(lab_secrets.TSIG_KEY_NAME)
    return {name: dns.tsig.Key(name, secret, lab_secrets.TSIG_ALGORITHM)}


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
        keyring = _keyring(topology)
        update = dns.update.UpdateMessage(
            zone,
            keyring=keyring,
            keyname=dns.name.from_text(lab_secrets.TSIG_KEY_NAME),
            keyalgorithm=lab_secrets.TSIG_ALGORITHM,
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
        raise DnsError(f"DNS update to {node.endpoint} failed: {exc}") from exc
    if response.rcode() != dns.rcode.NOERROR:
        raise DnsError(f"DNS refused the update: {dns.rcode.to_text(response.rcode())}")
