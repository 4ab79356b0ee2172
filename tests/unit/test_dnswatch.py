"""The DNS node's replicas watch: a replica that stops answering leaves replicas.<cluster> and
comes back once it streams again. Patroni, the probe and the DNS are the test's; no network."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from reviewlab_common.topology import Topology, parse
from reviewlab_lab import dnsrecords, dnswatch
from reviewlab_lab.paths import TOPOLOGY_PATH


class Lab:
    """Patroni's view, which members answer a connect, and the records the DNS serves."""

    def __init__(self, topology: Topology) -> None:
        catalog = topology.catalog
        self.addresses = {m.name: m.address for m in catalog.members}
        leader, *replicas = (m.name for m in catalog.members)
        self.members: dict[str, dict[str, Any]] = {
            leader: {"name": leader, "role": "leader", "state": "running"},
            **{n: {"name": n, "role": "replica", "state": "streaming"} for n in replicas},
        }
        self.down: set[str] = set()
        self.records = {"replicas.catalog": sorted(self.addresses[n] for n in replicas)}
        self.updates: list[dict[str, list[str]]] = []


@pytest.fixture()
def topology() -> Topology:
    with TOPOLOGY_PATH.open("rb") as handle:
        return parse(tomllib.load(handle))


@pytest.fixture()
def lab(topology: Topology, monkeypatch: pytest.MonkeyPatch) -> Lab:
    lab = Lab(topology)
    by_address = {a: n for n, a in lab.addresses.items()}
    monkeypatch.setattr(
        dnsrecords,
        "patroni_members",
        lambda cluster, timeout=2.0: lab.members if cluster.name == "catalog" else {},
    )
    monkeypatch.setattr(
        dnsrecords, "accepts_connections", lambda a, p, t: by_address[a] not in lab.down
    )

    def lookup(topology: Topology, name: str, timeout: float = 2.0) -> list[str]:
        if name not in lab.records:
            raise dnswatch.lab_dns.DnsError(f"{name}: NXDOMAIN")
        return lab.records[name]

    def replace(topology: Topology, changes: dict[str, list[str]], **_: Any) -> None:
        lab.updates.append(changes)
        for name, addresses in changes.items():
            if addresses:
                lab.records[name] = addresses
            else:
                lab.records.pop(name, None)

    monkeypatch.setattr(dnswatch.lab_dns, "lookup", lookup)
    monkeypatch.setattr(dnswatch.dnsrecords, "replace_records", replace)
    return lab


def test_nothing_is_written_while_every_replica_serves(topology: Topology, lab: Lab) -> None:
    assert dnswatch.watch_once(topology, print) == {}
    assert lab.updates == []


def test_a_replica_that_stops_answering_leaves_the_record_and_comes_back_streaming(
    topology: Topology, lab: Lab
) -> None:
    victim = sorted(n for n, m in lab.members.items() if m["role"] != "leader")[0]
    lab.down.add(victim)  # Patroni still says "streaming": its key lives until ttl
    said: list[str] = []
    dnswatch.watch_once(topology, said.append)
    assert lab.addresses[victim] not in lab.records["replicas.catalog"]
    assert "dropped " + lab.addresses[victim] in said[0]

    lab.down.clear()
    lab.members[victim]["state"] = "starting"  # answers, but does not stream yet: stays out
    dnswatch.watch_once(topology, said.append)
    assert lab.addresses[victim] not in lab.records["replicas.catalog"]

    lab.members[victim]["state"] = "streaming"
    dnswatch.watch_once(topology, said.append)
    assert lab.addresses[victim] in lab.records["replicas.catalog"]
    assert "back " + lab.addresses[victim] in said[-1]


def test_a_listed_replica_whose_primary_is_lost_stays_while_it_answers(
    topology: Topology, lab: Lab
) -> None:
    replica = sorted(n for n, m in lab.members.items() if m["role"] != "leader")[0]
    lab.members[replica]["state"] = "running"  # its primary is gone: not streaming, still reads
    dnswatch.watch_once(topology, print)
    assert lab.addresses[replica] in lab.records["replicas.catalog"]
    lab.members[replica]["state"] = "stopped"
    dnswatch.watch_once(topology, print)
    assert lab.addresses[replica] not in lab.records["replicas.catalog"]


def test_with_patroni_silent_the_records_are_kept(topology: Topology, lab: Lab) -> None:
    lab.members.clear()
    assert dnswatch.watch_once(topology, print) == {}
    assert lab.updates == []
