"""The lab's private DNS: lookups through bind9 (TSIG-signed where the internal view asks).

Changing records (signed dynamic updates) is the lab's: reviewlab_lab.dnsrecords.
"""

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
            tsig_keyring(topology),
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


def tsig_keyring(topology: Topology) -> dict[dns.name.Name, dns.tsig.Key]:
    secret = lab_secrets.load(topology).tsig_secret
    base64.b64decode(secret)  # fail early on a damaged secrets file
    name = dns.name.from_text(lab_secrets.TSIG_KEY_NAME)
    return {name: dns.tsig.Key(name, secret, lab_secrets.TSIG_ALGORITHM)}
