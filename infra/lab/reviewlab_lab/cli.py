"""`reviewlab`: run the lab on either runtime (up, down, status, logs, nodes, DNS, lb, faults,
chaos, the guided tour)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from reviewlab_common import secrets as lab_secrets
from reviewlab_common import tokens
from reviewlab_common.topology import RUNTIMES, Topology, TopologyError

from reviewlab_lab import dnsrecords, errors, kinds, lifecycle, runtimes, status


def _token(topology: Topology, args: argparse.Namespace) -> None:
    from reviewlab_lab.users import user_id

    if args.ttl <= 0:
        raise errors.LabFailed(f"--ttl must be a positive number of seconds, not {args.ttl}")
    uid = user_id(topology, args.user)
    print(tokens.issue(lab_secrets.load(topology).token_secret, uid, ttl_s=args.ttl))


def _logs(topology: Topology, args: argparse.Namespace) -> None:
    from reviewlab_lab import extralogs

    if args.node in extralogs.files(topology):
        for command in extralogs.commands(topology, args.node, args.lines, args.follow):
            subprocess.run(command, check=False)
        return
    runtime = runtimes.of(topology)
    if args.node != "supervisord" or runtime.name != "native":
        runtime.node(args.node)
    subprocess.run(runtime.log_command(args.node, args.lines, args.follow), check=False)


def _status(topology: Topology, args: argparse.Namespace) -> None:
    statuses = status.collect(topology)
    if args.json:
        print(json.dumps(status.as_json(statuses), indent=2))
    else:
        print(status.table(statuses, runtimes.of(topology).name))


def _dns(topology: Topology, args: argparse.Namespace) -> None:
    if args.dns_command == "lookup":
        from reviewlab_common import dns as lab_dns

        from reviewlab_lab import labnetwork

        if args.source is None:  # asked at the DNS's lab-network address
            labnetwork.require(topology)
        found = {
            # A source address asks where the machine reaches the DNS (published under Compose).
            name: lab_dns.lookup(
                topology,
                _relative(topology, name),
                source=args.source,
                published=args.source is not None,
            )
            for name in args.names
        }
        print(json.dumps(found))
        return
    _dns_sync(topology, args)


def _relative(topology: Topology, name: str) -> str:
    """NAME relative to the lab's domain: `www.shop.internal` and `www` are the same name."""
    full = name.rstrip(".")
    suffix = "." + topology.lab.domain
    return full[: -len(suffix)] if full.endswith(suffix) else full


def _dns_sync(topology: Topology, args: argparse.Namespace) -> None:
    if args.cluster and args.cluster not in topology.clusters:
        raise TopologyError(
            f"no cluster {args.cluster!r}; clusters: {', '.join(topology.clusters)}"
        )
    clusters = [topology.clusters[args.cluster]] if args.cluster else None
    for name, addresses in sorted(dnsrecords.sync(topology, clusters).items()):
        print(f"{name}.{topology.lab.domain}: {' '.join(addresses) or '(none)'}")


def _fault_target(topology: Topology, name: str) -> str:
    node = topology.nodes.get(name)
    # Web servers delay every API request; workers delay every job (reviewlab_common.faults).
    delayable = kinds.with_fault("delay")
    if node is None or node.kind not in delayable:
        names = ", ".join(n.name for n in topology.nodes.values() if n.kind in delayable)
        raise TopologyError(f"{name!r} is not a web server or worker; choose one of: {names}")
    return name


def _fault(topology: Topology, args: argparse.Namespace) -> None:
    _fault_target(topology, args.node)
    if args.delay_ms < 0:
        raise TopologyError(f"the delay must be 0 or more milliseconds, not {args.delay_ms}")
    runtimes.of(topology).set_delay(args.node, args.delay_ms)
    print(
        f"{args.node}: added latency {args.delay_ms} ms"
        if args.delay_ms
        else f"{args.node}: no added latency"
    )


def _node(topology: Topology, args: argparse.Namespace) -> None:
    """Control one node: what a learner (or a chaos step) does to watch the lab react."""
    runtimes.of(topology).act(args.action, args.node)
    print(f"{args.node}: {args.action} done; watch it with `reviewlab status`")


def _fresh_or_fail(stale: str | None, generated: str) -> None:
    """`generate --check` of a file made from the topology: why it is stale, or that it is not."""
    if stale:
        raise TopologyError(stale)
    print(f"{generated} matches the topology")


def _compose(topology: Topology, args: argparse.Namespace) -> None:
    from reviewlab_lab import composefile
    from reviewlab_lab.composefile import COMPOSE_FILE

    if args.compose_command == "generate":
        if args.check:
            _fresh_or_fail(composefile.stale_reason(), COMPOSE_FILE.name)
            return
        changed = composefile.generate()
        state = "written" if changed else "unchanged"
        print(f"{COMPOSE_FILE} {state} ({len(topology.nodes)} nodes)")


def _k8s(topology: Topology, args: argparse.Namespace) -> None:
    from reviewlab_lab import k8sfiles
    from reviewlab_lab.k8sfiles import K8S_DIR
    from reviewlab_lab.paths import REPO

    if args.k8s_command == "generate":
        if args.check:
            _fresh_or_fail(k8sfiles.stale_reason(), f"{K8S_DIR.relative_to(REPO)}/")
            return
        changed = k8sfiles.generate()
        state = f"written: {', '.join(changed)}" if changed else "unchanged"
        print(f"{K8S_DIR} {state} ({len(topology.nodes)} nodes)")


def _swarm(topology: Topology, args: argparse.Namespace) -> None:
    from reviewlab_lab import swarmfiles
    from reviewlab_lab.paths import REPO
    from reviewlab_lab.swarmfiles import STACK_FILE

    if args.swarm_command == "generate":
        if args.check:
            _fresh_or_fail(swarmfiles.stale_reason(), str(STACK_FILE.relative_to(REPO)))
            return
        changed = swarmfiles.generate()
        state = "written" if changed else "unchanged"
        print(f"{STACK_FILE} {state} ({len(topology.nodes)} nodes)")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="reviewlab", description=__doc__)
    root.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="native or compose (default: REVIEWLAB_RUNTIME, else the one running, else native)",
    )
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="generate the lab's secrets (once) and own its data directory")
    sub.add_parser("up", help="start every node, provision, wait until all are ready")
    sub.add_parser("down", help="stop every node; keep the data")
    p = sub.add_parser("reset", help="stop every node and wipe the data")
    p.add_argument(
        "--data",
        action="store_true",
        help="only delete every review and its photos; the lab keeps running",
    )
    p = sub.add_parser("status", help="one entry per node")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("logs", help="a node's log")
    p.add_argument(
        "node",
        help="a node, or lb.access, lb-1.error, edge-1.access, dns-sync (files nodes write)",
    )
    p.add_argument("-n", "--lines", type=int, default=50)
    p.add_argument("-f", "--follow", action="store_true")
    p = sub.add_parser("node", help="start, stop, restart, kill (SIGKILL), pause or resume a node")
    p.add_argument("action", choices=runtimes.NODE_ACTIONS)
    p.add_argument("node")
    p = sub.add_parser("token", help="print a bearer token for a demo user")
    p.add_argument("user")
    p.add_argument("--ttl", type=int, default=tokens.DEFAULT_TTL_S, help="seconds")
    p = sub.add_parser("dns", help="the private DNS")
    dns_sub = p.add_subparsers(dest="dns_command", required=True)
    p = dns_sub.add_parser("sync", help="push node and role records by signed dynamic update")
    p.add_argument("--cluster", help="only this Patroni cluster's primary/replicas records")
    p = dns_sub.add_parser(
        "lookup",
        help="what the DNS answers for NAMEs: natively this machine is on the lab's network "
        "(the internal view); --from 127.0.1.5 asks as a shopper outside it (the public view)",
    )
    p.add_argument(
        "names", nargs="+", metavar="NAME", help="e.g. www, www.shop.internal or primary.catalog"
    )
    p.add_argument(
        "--from", dest="source", metavar="ADDRESS", help="the address the query leaves from"
    )
    p = sub.add_parser("fault", help="lab-only faults")
    fault_sub = p.add_subparsers(dest="fault_command", required=True)
    p = fault_sub.add_parser(
        "delay", help="add latency to every API request of a web server, or every job of a worker"
    )
    p.add_argument("node")
    p.add_argument("delay_ms", type=int, help="0 removes it")
    p = sub.add_parser("compose", help="the Compose file, generated from the topology")
    compose_sub = p.add_subparsers(dest="compose_command", required=True)
    p = compose_sub.add_parser("generate", help="write docker-compose.yml from the topology")
    p.add_argument("--check", action="store_true", help="only say whether it is up to date")
    p = sub.add_parser("k8s", help="Kubernetes manifests, generated from the topology (not run)")
    k8s_sub = p.add_subparsers(dest="k8s_command", required=True)
    p = k8s_sub.add_parser("generate", help="write deploy/k8s/ from the topology")
    p.add_argument("--check", action="store_true", help="only say whether it is up to date")
    p = sub.add_parser("swarm", help="a Docker Swarm stack, generated from the topology (not run)")
    swarm_sub = p.add_subparsers(dest="swarm_command", required=True)
    p = swarm_sub.add_parser("generate", help="write deploy/swarm-stack.yml from the topology")
    p.add_argument("--check", action="store_true", help="only say whether it is up to date")
    p = sub.add_parser("docs", help="the README's node table, generated from the topology")
    docs_sub = p.add_subparsers(dest="docs_command", required=True)
    p = docs_sub.add_parser("generate", help="write README.md's node table from the topology")
    p.add_argument("--check", action="store_true", help="only say whether it is up to date")
    p = sub.add_parser("provision", help="DNS records, shard map, bucket, schemas, demo data")
    p = sub.add_parser("run", help="inside a container: render a node's config and run it")
    p.add_argument("node")
    from reviewlab_lab import cdncli, chaoscli, dbcli, hosts, lbcli, shardcli, tourcli, tracecli

    lbcli.add_parser(sub)
    hosts.add_parser(sub)
    dbcli.add_parser(sub)
    chaoscli.add_parser(sub)
    shardcli.add_parser(sub)
    tracecli.add_parser(sub)
    cdncli.add_parser(sub)
    tourcli.add_parser(sub)
    return root


def _delegate_to(topology: Topology, args: argparse.Namespace) -> str | None:
    """On the machine, with a Compose lab: the container where this command must run.

    Acting on a node goes through the runtime; what runs here reads files or a network only
    a container sees (the vIP's log, the DNS's signed updates).
    """
    if not runtimes.on_host(topology):
        return None
    match args.command:
        case "lb" if args.lb_command == "stats":
            # The member that holds the vIP has seen its requests since it took it over.
            holder = runtimes.of(topology).vip_holder()
            return holder or topology.load_balancers()[0].name
        case "dns" if args.dns_command == "sync":
            return topology.one("dns").name
    return None


def _without_runtime_option(argv: list[str]) -> list[str]:
    """ARGV minus `--runtime X` / `--runtime=X`: inside a container the runtime is known."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--runtime":
            skip = True
        elif not arg.startswith("--runtime="):
            kept.append(arg)
    return kept


def main(argv: list[str] | None = None) -> None:
    with errors.one_line():
        raw = sys.argv[1:] if argv is None else argv
        args = parser().parse_args(raw)
        topology = runtimes.activate(args.runtime)
        container_node = _delegate_to(topology, args)
        if container_node is not None:
            runtime = runtimes.of(topology)
            command = _without_runtime_option(raw)
            done = subprocess.run(runtime.exec_command(container_node, ["reviewlab", *command]))
            sys.exit(done.returncode)
        _dispatch(topology, args)


def _dispatch(topology: Topology, args: argparse.Namespace) -> None:
    match args.command:
        case "init":
            lifecycle.init(topology)
        case "up":
            lifecycle.up(topology)
        case "down":
            lifecycle.down(topology)
        case "reset" if args.data:
            from reviewlab_lab import datareset

            for line in datareset.clear_reviews(topology):
                print(line)
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
            _dns(topology, args)
        case "fault":
            _fault(topology, args)
        case "compose":
            _compose(topology, args)
        case "k8s":
            _k8s(topology, args)
        case "swarm":
            _swarm(topology, args)
        case "docs":
            from reviewlab_lab import nodetable

            nodetable.run(args)
        case "provision":
            lifecycle.provision_all(topology)
        case "run":
            lifecycle.run_node(topology, args.node)
        case "lb":
            from reviewlab_lab import lbcli

            lbcli.run(topology, args)
        case "chaos":
            from reviewlab_lab import chaoscli

            chaoscli.run(topology, args)
        case "db":
            from reviewlab_lab import dbcli

            dbcli.run(topology, args)
        case "hosts":
            from reviewlab_lab import hosts

            hosts.run(topology, args)
        case "cdn":
            from reviewlab_lab import cdncli

            cdncli.run(topology, args)
        case "trace":
            from reviewlab_lab import tracecli

            tracecli.run(topology, args)
        case "shard":
            from reviewlab_lab import shardcli

            shardcli.run(topology, args)
        case "tour":
            from reviewlab_lab import tourcli

            tourcli.run(topology, args)


if __name__ == "__main__":
    main()
