"""`reviewlab shard`: the shards and their buckets; add a shard, move buckets, rebalance."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from reviewlab_common import shards
from reviewlab_common.topology import Topology

from reviewlab_lab.errors import LabFailed


def add_parser(sub: Any) -> None:
    p = sub.add_parser("shard", help="the review shards: status, add, move buckets, rebalance")
    shard_sub = p.add_subparsers(dest="shard_command", required=True)
    shard_sub.add_parser("status", help="buckets per shard, and the move in progress")
    p = shard_sub.add_parser(
        "add", help="start a shard the topology declares, migrate it, register it with no buckets"
    )
    p.add_argument("name", help="a [clusters.NAME] of purpose shard in infra/topology.toml")
    p = shard_sub.add_parser("move", help="move buckets to another shard, online")
    p.add_argument("buckets", nargs="?", help="e.g. 3,4,10-12")
    p.add_argument("--to", dest="target", metavar="SHARD")
    p.add_argument("--resume", action="store_true", help="finish the move in progress")
    p.add_argument("--abort", action="store_true", help="undo what the move has not flipped")
    p.add_argument("--no-live", action="store_true", help="no live view (for logs and CI)")
    p = shard_sub.add_parser("rebalance", help="move buckets until every shard holds its share")
    p.add_argument("--dry-run", action="store_true", help="only print the plan")
    p.add_argument("--no-live", action="store_true", help="no live view (for logs and CI)")


def run(topology: Topology, args: argparse.Namespace) -> None:
    from reviewlab_lab.chaos.run import interrupts_as_keyboard
    from reviewlab_lab.resharding import plan, record, runner

    live = not getattr(args, "no_live", True) and sys.stdout.isatty()
    match args.shard_command:
        case "status":
            print(status(topology))
        case "add":
            print(add(topology, args.name))
        case "move" if args.resume and args.abort:
            raise LabFailed("--resume and --abort exclude each other: pick one")
        case "move" if args.abort:
            for line in runner.abort(topology):
                print(line)
        case "move" if args.resume:
            with interrupts_as_keyboard():
                _finish(runner.resume(topology, live=live))
        case "move":
            if not args.buckets or not args.target:
                raise LabFailed(
                    "name the buckets and the shard: shard move 3,4,10-12 --to reviews-2"
                )
            try:
                buckets = plan.parse_buckets(args.buckets, topology.lab.buckets)
            except plan.PlanRefused as exc:
                raise LabFailed(str(exc)) from exc
            with interrupts_as_keyboard():
                _finish(runner.start(topology, buckets, args.target, live=live))
        case "rebalance":
            moves = runner.rebalance_plan(topology)
            if not moves:
                print("every shard holds its share already: nothing to move")
                return
            for target, buckets in moves.items():
                print(f"{len(buckets)} buckets to {target}: {plan_text(buckets)}")
            if args.dry_run:
                return
            etcd = record.root(topology)
            del etcd
            with interrupts_as_keyboard():
                for target, buckets in moves.items():
                    _finish(runner.start(topology, buckets, target, live=live))


def plan_text(buckets: list[int]) -> str:
    """Buckets as ranges: [1, 2, 3, 7] -> '1-3,7'."""
    parts: list[str] = []
    for bucket in sorted(buckets):
        if parts and parts[-1].split("-")[-1] == str(bucket - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{bucket}"
        else:
            parts.append(str(bucket))
    return ",".join(parts)


def _finish(result: dict[str, Any]) -> None:
    from reviewlab_lab.resharding import view

    print(view.as_markdown(result))
    print(f"report: {result['path']}")
    if result["outcome"] != "done":
        raise LabFailed(
            f"move {result['outcome']}; the map points at a complete copy of every bucket: "
            "`reviewlab shard move --resume` finishes it, `--abort` undoes what is not flipped"
        )


def status(topology: Topology) -> str:
    from reviewlab_lab.resharding import plan, record

    etcd = record.root(topology)
    mapping, revision = record.placement(etcd)
    known = record.registered(etcd, topology)
    lines = [f"shard map revision {revision}, {len(mapping)} buckets"]
    for shard, count in plan.counts(mapping, known).items():
        held = sorted(b for b, s in mapping.items() if s == shard)
        lines.append(f"  {shard:<12} {count:>4} buckets  {plan_text(held) or '-'}")
    found = record.current(etcd)
    lines.append(f"move in progress: {found[0].describe()}" if found else "no move in progress")
    return "\n".join(lines)


def add(topology: Topology, name: str) -> str:
    """Start NAME's nodes if they are not running, migrate, DNS, register: `reviewlab up`
    does all of it for what the topology declares."""
    from reviewlab_lab import lifecycle
    from reviewlab_lab.resharding import record

    cluster = topology.clusters.get(name)
    if cluster is None or cluster.purpose != "shard":
        raise LabFailed(
            f'unknown shard {name!r}: declare [clusters.{name}] (purpose = "shard") and its '
            "nodes in infra/topology.toml first"
        )
    etcd = record.root(topology)
    found = etcd.get(shards.SHARD_SET_KEY)
    was = found is not None and name in json.loads(found[0])
    lifecycle.up(topology)
    if not was:
        # Web servers and workers make their shard routers (and the relay its listeners)
        # when they start: a shard new to them needs them started again, one at a time.
        restart_services(topology)
    mapping, _ = record.placement(etcd)
    held = sum(1 for s in mapping.values() if s == name)
    state = "was registered already" if was else "registered"
    return (
        f"{name}: {len(cluster.members)} nodes running, schema at head, in the DNS, {state} in "
        f"the shard map with {held} buckets; `reviewlab shard move BUCKETS --to {name}` fills it"
    )


def restart_services(topology: Topology) -> None:
    """Every web server and worker restarted in turn, each ready before the next."""
    from reviewlab_lab import ready, runtimes

    runtime = runtimes.of(topology)
    for node in [*topology.of_kind("web"), *topology.of_kind("worker")]:
        runtime.restart(node.name)
        failed = ready.wait_ready(topology, [node], report=lambda *_: None)
        if failed:
            raise LabFailed(
                f"{node.name} was restarted to learn the new shard and is not ready: "
                "`reviewlab status` shows why"
            )
        print(f"  {node.name} restarted: it routes to the new shard", flush=True)
