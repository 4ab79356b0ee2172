"""The DNS node: named, and beside it the watch that keeps replicas.<cluster> to serving members.

Patroni's role-change callbacks set the records when roles change, but a replica that stops
answering changes no role, and Patroni itself notices a lost member only after ttl. So the DNS
node checks every cluster each second (like Consul's health-checked DNS answers): a replica
leaves replicas.<cluster> once it stops answering a connect (or Patroni sees it stopped) and
comes back once it streams again. It runs in the DNS node on either runtime:
`python -m reviewlab_lab.dnswatch NAMED...` starts named as its child, forwards the stop
signal to it and exits with it.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from reviewlab_common import dns as lab_dns
from reviewlab_common.topology import Cluster, Topology, current

from reviewlab_lab import dnsrecords

WATCH_EVERY_S = 1.0

Say = Callable[[str], None]


def replicas_name(cluster: Cluster) -> str:
    return f"replicas.{cluster.name}"


def published(topology: Topology, cluster: Cluster) -> list[str]:
    try:
        return sorted(lab_dns.lookup(topology, replicas_name(cluster), timeout=1.0))
    except lab_dns.DnsError:
        return []  # no record (every replica out), or the DNS not answering yet


def watch_once(topology: Topology, say: Say) -> dict[str, list[str]]:
    """Bring each cluster's replicas record to the replicas serving now; return what changed."""
    changes: dict[str, list[str]] = {}
    for cluster in topology.clusters.values():
        members = dnsrecords.patroni_members(cluster, timeout=1.0)
        if not members:
            continue  # Patroni not answering (not provisioned yet, or the cluster is down)
        have = published(topology, cluster)
        serving = dnsrecords.serving_replicas(topology, cluster, members, listed=have)
        if serving != have:
            changes[replicas_name(cluster)] = serving
            gone, back = sorted(set(have) - set(serving)), sorted(set(serving) - set(have))
            say(
                f"{replicas_name(cluster)}: {' '.join(serving) or '(none)'}"
                + (f"; dropped {' '.join(gone)} (stopped or not answering)" if gone else "")
                + (f"; back {' '.join(back)}" if back else "")
            )
    if changes:
        dnsrecords.replace_records(topology, changes)
    return changes


def watch(topology: Topology, stop: threading.Event, say: Say) -> None:
    while not stop.wait(WATCH_EVERY_S):
        try:
            watch_once(topology, say)
        except Exception as exc:  # the watch must outlive any one failed round
            say(f"replicas watch: {type(exc).__name__}: {exc}")


def serve(named: list[str]) -> int:
    """Run NAMED as a child with the watch beside it; exit with named's status."""
    topology = current()
    child = subprocess.Popen(named)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    stop = threading.Event()

    def say(line: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} dns watch: {line}", flush=True)

    threading.Thread(target=watch, args=(topology, stop, say), daemon=True).start()
    status = child.wait()
    stop.set()
    return status


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m reviewlab_lab.dnswatch NAMED-COMMAND...")
    sys.exit(serve(sys.argv[1:]))
