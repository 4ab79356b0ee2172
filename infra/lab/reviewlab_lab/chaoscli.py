"""`reviewlab chaos`: list the scenarios, run one under load, re-print the last report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from reviewlab_common.topology import Topology

from reviewlab_lab.chaos import report, scenarios


def add_parser(sub: Any) -> None:
    p = sub.add_parser("chaos", help="break a node on purpose under load and report")
    chaos_sub = p.add_subparsers(dest="chaos_command", required=True)
    chaos_sub.add_parser("list", help="every scenario, what happens and what to watch")
    p = chaos_sub.add_parser("run", help="run one scenario under load with a live view")
    p.add_argument("scenario", help="a name from `reviewlab chaos list`")
    p.add_argument("--target", metavar="NODE", help="the node to break (default: chosen live)")
    p.add_argument("--duration", type=float, metavar="S", help="seconds the fault lasts")
    p.add_argument("--load", type=int, default=4, metavar="N", help="N writers and N readers")
    p.add_argument("--no-live", action="store_true", help="no live view (for logs and CI)")
    p.add_argument(
        "--all-events",
        action="store_true",
        help="the report's timeline shows every cluster, not only those the fault touched",
    )
    p = chaos_sub.add_parser("report", help="print the last run's report")
    p.add_argument("--json", action="store_true")
    chaos_sub.add_parser("heal", help="undo every network partition a run left behind")


def listing() -> str:
    lines = []
    for s in scenarios.SCENARIOS.values():
        lines += [f"{s.name}  (target: {s.target}; goal: {s.goal})", f"  {s.about}", ""]
    return "\n".join(lines).rstrip()


def run(topology: Topology, args: argparse.Namespace) -> None:
    from reviewlab_lab.chaos.run import Options, execute

    match args.chaos_command:
        case "list":
            print(listing())
        case "report":
            last = report.last()
            print(json.dumps(last, indent=2) if args.json else report.as_markdown(last))
        case "heal":
            from reviewlab_lab import runtimes

            runtimes.of(topology).heal_all()
            print("no partition left in place")
        case "run":
            options = Options(
                scenario=scenarios.scenario(args.scenario),
                target=args.target,
                duration=args.duration,
                load=args.load,
                live=not args.no_live and sys.stdout.isatty(),
                all_events=args.all_events,
            )
            try:
                result = execute(topology, options, print)
            except KeyboardInterrupt:
                sys.exit("chaos run interrupted: every node it touched was restored")
            print(report.as_markdown(result))
            base = result["path"].removesuffix(".md")
            print(
                f"report: {result['path']} (and {base}.html with the chart, .svg, .json); "
                "`reviewlab chaos report` re-prints it"
            )
