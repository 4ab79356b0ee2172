"""`reviewlab tour`: the guided tour, whole (interactive or unattended), one step, or its list."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from reviewlab_common.topology import Topology


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "tour", help="the guided tour: every concept run live on the lab (docs/tour.md)"
    )
    p.add_argument(
        "--no-input",
        action="store_true",
        help="run every step unattended (CI); exit 1 if any failed",
    )
    tour_sub = p.add_subparsers(dest="tour_command")
    tour_sub.add_parser("list", help="the steps, in order")
    p = tour_sub.add_parser("run", help="run one step alone")
    p.add_argument("step", metavar="NAME", help="a name from `reviewlab tour list`")
    p = tour_sub.add_parser("docs", help="write docs/tour.md from the steps")
    p.add_argument("--check", action="store_true", help="only say whether it is up to date")


def listing() -> str:
    from reviewlab_lab.tour.registry import STEPS

    width = max(len(s.name) for s in STEPS)
    lines = [f"{n:>2}. {s.name:<{width}}  {s.title}" for n, s in enumerate(STEPS, 1)]
    return "\n".join([*lines, "", "run one: reviewlab tour run NAME (or make tour STEP=NAME)"])


def run(topology: Topology, args: argparse.Namespace) -> None:
    from reviewlab_lab.tour import docs, registry

    match args.tour_command:
        case "list":
            print(listing())
            return
        case "docs":
            if args.check:
                print(docs.check())
                return
            changed = docs.generate()
            print(f"{docs.TOUR_DOC}: {'written' if changed else 'unchanged'}")
            return
        case "run":
            steps = [registry.step(args.step)]
            interactive = False
        case _:
            steps = list(registry.STEPS)
            interactive = not args.no_input and sys.stdin.isatty()
    walk(topology, steps, interactive)


def walk(topology: Topology, steps: list[Any], interactive: bool) -> None:
    """Run STEPS on the lab, each run sent to the console's tour pages; one line per failed
    step on stderr, and exit 1 if any failed."""
    from reviewlab_lab import runtimes
    from reviewlab_lab.chaos.run import interrupts_as_keyboard, lab_is_up
    from reviewlab_lab.tour import pages, registry, runner

    lab_is_up(topology)
    runtime = runtimes.of(topology)

    def publish(step: Any, outcome: runner.Outcome) -> str | None:
        return pages.publish(
            topology, step, outcome, catalogue=registry.STEPS, runtime=runtime.name
        )

    started = time.monotonic()
    try:
        with interrupts_as_keyboard():
            outcomes = runner.tour(
                steps, topology, runtime, ask=input if interactive else None, publish=publish
            )
    except KeyboardInterrupt:
        sys.exit("tour interrupted: the step it was in put back what it had changed")
    for line in runner.summary(outcomes, time.monotonic() - started):
        print(line)
    failed = runner.failures(outcomes)
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    if failed:
        sys.exit(1)
