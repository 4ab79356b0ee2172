"""`reviewlab`: run the native lab (up, down, status, logs, tokens, DNS, load balancer, faults)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess

from reviewlab_common import faults, tokens
from reviewlab_common import secrets as lab_secrets
from reviewlab_common.topology import Topology, TopologyError, current

from reviewlab_lab import dnsrecords, errors, lifecycle, status
from reviewlab_lab.paths import LabPaths


def _token(topology: Topology, args: argparse.Namespace) -> None:
    from reviewlab_lab.users import user_id

    uid = user_id(topology, args.user)
    print(tokens.issue(lab_secrets.load(topology).token_secret, uid, ttl_s=args.ttl))


def _logs(topology: Topology, args: argparse.Namespace) -> None:
    if args.node not in topology.nodes and args.node != "supervisord":
        raise TopologyError(f"no node named {args.node!r}; nodes: {', '.join(topology.nodes)}")
    path = LabPaths.of(topology).log(args.node)
    command = ["tail", "-n", str(args.lines)] + (["-F"] if args.follow else []) + [str(path)]
    subprocess.run(command, check=False)


def _status(topology: Topology, args: argparse.Namespace) -> None:
    statuses = status.collect(topology)
    if args.json:
        print(json.dumps(status.as_json(statuses), indent=2))
    else:
        print(status.table(statuses))


def _dns_sync(topology: Topology, args: argparse.Namespace) -> None:
    clusters = [topology.clusters[args.cluster]] if args.cluster else None
    for name, addresses in sorted(dnsrecords.sync(topology, clusters).items()):
        print(f"{name}.{topology.lab.domain}: {' '.join(addresses) or '(none)'}")


# Web servers delay every API request; workers delay every job (see reviewlab_common.faults).
DELAYABLE_KINDS = ("web", "worker")


def _fault(topology: Topology, args: argparse.Namespace) -> None:
    node = topology.nodes.get(args.node)
    if node is None or node.kind not in DELAYABLE_KINDS:
        names = ", ".join(n.name for n in topology.nodes.values() if n.kind in DELAYABLE_KINDS)
        raise TopologyError(f"{args.node!r} is not a web server or worker; choose one of: {names}")
    if args.delay_ms < 0:
        raise TopologyError(f"the delay must be 0 or more milliseconds, not {args.delay_ms}")
    faults.set_delay(topology, args.node, args.delay_ms)
    print(
        f"{args.node}: added latency {args.delay_ms} ms"
        if args.delay_ms
        else f"{args.node}: no added latency"
    )


NODE_ACTIONS = ("start", "stop", "restart", "kill", "pause", "resume")


def _node(topology: Topology, args: argparse.Namespace) -> None:
    """Control one node: what a learner (or a chaos step) does to watch the lab react."""
    from reviewlab_lab.procs import Supervisor, postmaster_pid

    if args.node not in topology.nodes:
        raise TopologyError(f"no node named {args.node!r}; nodes: {', '.join(topology.nodes)}")
    supervisor = Supervisor(topology, LabPaths.of(topology))
    match args.action:
        case "start":
            supervisor.start_node(args.node)
        case "stop":
            supervisor.stop_node(args.node)
        case "restart":
            supervisor.restart_node(args.node)
        case "kill":  # supervisord restarts it: a crash, not a removal
            postmaster = None
            if topology.nodes[args.node].kind == "postgres":
                # A node loss: Postgres outlives a killed Patroni, so it is killed too.
                postmaster = postmaster_pid(LabPaths.of(topology).pgdata(args.node))
            supervisor.signal_node(args.node, "KILL")
            if postmaster:
                os.kill(postmaster, signal.SIGKILL)
        case "pause":
            supervisor.signal_node(args.node, "STOP")
        case "resume":
            supervisor.signal_node(args.node, "CONT")
    print(f"{args.node}: {args.action} done; watch it with `reviewlab status`")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="reviewlab", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="generate the lab's secrets (once) and own its data directory")
    sub.add_parser("up", help="render configs, start every node, wait until all are ready")
    sub.add_parser("down", help="stop every node; keep the data")
    sub.add_parser("reset", help="stop every node and wipe the data")
    p = sub.add_parser("status", help="one entry per node")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("logs", help="a node's log")
    p.add_argument("node")
    p.add_argument("-n", "--lines", type=int, default=50)
    p.add_argument("-f", "--follow", action="store_true")
    p = sub.add_parser("node", help="start, stop, restart, kill (SIGKILL), pause or resume a node")
    p.add_argument("action", choices=NODE_ACTIONS)
    p.add_argument("node")
    p = sub.add_parser("token", help="print a bearer token for a demo user")
    p.add_argument("user")
    p.add_argument("--ttl", type=int, default=tokens.DEFAULT_TTL_S, help="seconds")
    p = sub.add_parser("dns", help="the private DNS")
    dns_sub = p.add_subparsers(dest="dns_command", required=True)
    p = dns_sub.add_parser("sync", help="push node and role records by signed dynamic update")
    p.add_argument("--cluster", help="only this Patroni cluster's primary/replicas records")
    p = sub.add_parser("fault", help="lab-only faults")
    fault_sub = p.add_subparsers(dest="fault_command", required=True)
    p = fault_sub.add_parser(
        "delay", help="add latency to every API request of a web server, or every job of a worker"
    )
    p.add_argument("node")
    p.add_argument("delay_ms", type=int, help="0 removes it")
    from reviewlab_lab import lbcli

    lbcli.add_parser(sub)
    return root


def main(argv: list[str] | None = None) -> None:
    with errors.one_line():
        _dispatch(parser().parse_args(argv))


def _dispatch(args: argparse.Namespace) -> None:
    topology = current()
    match args.command:
        case "init":
            lifecycle.init(topology)
        case "up":
            lifecycle.up(topology)
        case "down":
            lifecycle.down(topology)
        case "reset":
            lifecycle.reset(topology)
        case "status":
            _status(topology, args)
        case "logs":
            _logs(topology, args)
        case "token":
            _token(topology, args)
        case "node":
            _node(topology, args)
        case "dns":
            _dns_sync(topology, args)
        case "fault":
            _fault(topology, args)
        case "lb":
            from reviewlab_lab import lbcli

            lbcli.run(topology, args)


if __name__ == "__main__":
    main()
