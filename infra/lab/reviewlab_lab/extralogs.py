"""Logs that are not a node's own output, for `reviewlab logs NAME`.

The vIP's access and error logs, the shield's and each edge's access log and the DNS sync
log are files the nodes write beside their output. Natively they are in the lab's log
directory; under Compose each is read inside the container that writes it.
"""

from __future__ import annotations

from pathlib import Path

from reviewlab_common.topology import Topology

from reviewlab_lab import edgestats, loadbalancer, runtimes
from reviewlab_lab.paths import LabPaths

DNS_SYNC = "dns-sync"


def files(topology: Topology, paths: LabPaths | None = None) -> dict[str, tuple[list[str], Path]]:
    """Every extra log by name: (the nodes that write it, its path under PATHS, by default
    the topology's own)."""
    paths = paths or LabPaths.of(topology)
    members = topology.load_balancers()
    found = {
        # The vIP's requests, whichever member answered them.
        "lb.access": ([m.name for m in members], loadbalancer.access_log(paths)),
        **{f"{m.name}.error": ([m.name], loadbalancer.error_log(paths, m)) for m in members},
        # Patroni's role-change callback resyncs the DNS and appends to this file.
        DNS_SYNC: ([n.name for n in topology.of_kind("postgres")], paths.logs / "dns-sync.log"),
    }
    for cache in (*topology.of_kind("shield"), *topology.of_kind("edge")):
        found[f"{cache.name}.access"] = ([cache.name], edgestats.access_log(paths, cache))
    return found


def commands(topology: Topology, name: str, lines: int, follow: bool) -> list[list[str]]:
    """The commands that print log NAME: one natively, one per writing node under Compose."""
    runtime = runtimes.of(topology)
    # Where the writers keep it: under Compose, the data directory inside the containers.
    writers, path = files(topology, runtime.node_paths())[name]
    tail = ["tail", "-n", str(lines), *(["-F"] if follow else []), str(path)]
    if not runtimes.on_host(topology):
        return [tail]
    if follow:
        writers = writers[:1]
    return [runtime.exec_command(node, tail) for node in writers]
