"""`reviewlab lb`: show, switch and watch the load balancer's layer and algorithm."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from reviewlab_common.topology import Topology

from reviewlab_lab import lbstats, loadbalancer, runtimes
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.paths import LabPaths
from reviewlab_lab.runtimes.lbswitch import RELOADED


def add_parser(sub: Any) -> None:
    p = sub.add_parser("lb", help="the load balancer (vIP)")
    lb_sub = p.add_subparsers(dest="lb_command", required=True)
    lb_sub.add_parser("show", help="print the current layer, algorithm and pools")
    p = lb_sub.add_parser("set", help="switch layer/algorithm live (graceful nginx reload)")
    p.add_argument("--layer", choices=loadbalancer.LAYERS)
    p.add_argument("--algorithm", choices=sorted(loadbalancer.ALGORITHMS))
    p.add_argument(
        "--drain",
        metavar="WEB[,WEB]",
        help="take these web servers out of rotation ('none' puts every one back)",
    )
    p = lb_sub.add_parser("stats", help="share of requests per backend, from the vIP's log")
    p.add_argument("--since", type=float, metavar="SECONDS", help="only the last SECONDS")


def describe(topology: Topology, mode: loadbalancer.LbMode) -> str:
    """The mode and where each kind of request goes in it."""
    lines = [f"load balancer: {mode}"]
    if mode.layer == "l7":
        pools = loadbalancer.pools(topology, mode)
        names = {pool: ", ".join(w.name for w in members) for pool, members in pools.items()}
        edges = ", ".join(e.name for e in topology.of_kind("edge"))
        lines += [
            f"  uploads (multipart writes) -> {names['web_upload']}",
            f"  everything else            -> {names['web_api']}",
            f"  /media/                    -> {edges}",
        ]
    else:
        webs = ", ".join(w.name for w in loadbalancer.in_rotation(topology, mode))
        lines.append(f"  every TCP connection -> {webs} (no routing by path at layer 4)")
    return "\n".join(lines)


def parse_drain(text: str) -> tuple[str, ...]:
    """--drain's value: web server names, comma separated; 'none' (or nothing) for none."""
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(sorted({name.strip() for name in text.split(",") if name.strip()}))


def run(topology: Topology, args: argparse.Namespace) -> None:
    runtime = runtimes.of(topology)
    mode = runtime.lb_mode()
    if args.lb_command == "show":
        print(describe(topology, mode))
        vip, holder = topology.vip, runtime.vip_holder()
        others = ", ".join(m for m in vip.members if m != holder)
        held = f"held by {holder}, standby {others}" if holder else "no member answers on it"
        print(f"  the vIP {vip.host_address}:{vip.port}: {held}")
        return
    if args.lb_command == "stats":
        if args.since is not None and not args.since > 0:
            raise LabFailed(f"--since must be a positive number of seconds, not {args.since:g}")
        # The vIP's own log, where the vIP writes it (the CLI runs there under Compose).
        log = loadbalancer.access_log(LabPaths.of(topology))
        print(lbstats.report(topology, log, str(mode), args.since))
        return
    drained = mode.drained if args.drain is None else parse_drain(args.drain)
    try:
        loadbalancer.check_drain(topology, drained)
    except loadbalancer.BadDrain as exc:
        sys.exit(f"reviewlab lb set: {exc}")
    new = loadbalancer.LbMode(
        layer=args.layer or mode.layer, algorithm=args.algorithm or mode.algorithm, drained=drained
    )
    try:
        changed = runtime.apply_lb_mode(new)
    except runtimes.SwitchFailed as exc:
        sys.exit(f"reviewlab lb set: {exc}")
    print(describe(topology, new))
    print(RELOADED if changed else "nothing to change")
