"""`reviewlab lb`: show and switch the load balancer's layer and algorithm."""

from __future__ import annotations

import argparse
from typing import Any

from reviewlab_common.topology import Topology

from reviewlab_lab import loadbalancer
from reviewlab_lab.paths import LabPaths
from reviewlab_lab.procs import Supervisor
from reviewlab_lab.render import Renderer


def add_parser(sub: Any) -> None:
    p = sub.add_parser("lb", help="the load balancer (vIP)")
    lb_sub = p.add_subparsers(dest="lb_command", required=True)
    lb_sub.add_parser("show", help="print the current layer and algorithm")
    p = lb_sub.add_parser("set", help="switch layer/algorithm live (graceful nginx reload)")
    p.add_argument("--layer", choices=loadbalancer.LAYERS)
    p.add_argument("--algorithm", choices=sorted(loadbalancer.ALGORITHMS))


def run(topology: Topology, args: argparse.Namespace) -> None:
    paths = LabPaths.of(topology)
    mode = loadbalancer.current_mode(paths)
    if args.lb_command == "show":
        print(f"layer {mode.layer}, algorithm {mode.algorithm}")
        return
    new = loadbalancer.LbMode(
        layer=args.layer or mode.layer, algorithm=args.algorithm or mode.algorithm
    )
    loadbalancer.save_mode(paths, new)
    renderer = Renderer(topology, paths)
    renderer.programs()
    lb = topology.one("lb")
    if lb.name in renderer.changed:
        Supervisor(topology, paths).signal_node(lb.name, "HUP")
    print(
        f"load balancer: layer {new.layer}, algorithm {new.algorithm} (nginx reloaded gracefully)"
    )
