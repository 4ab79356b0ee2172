"""`make load`: the shoppers of locustfile.py against the vIP, headless, with a report.

Run: python -m tests.load.run [--users N] [--spawn N] [--duration 60s] [--processes N] [--ui]
Writes Locust's HTML report and CSV statistics into reports/, with the server's side of the
same window (tests/load/serverside.py) added to the HTML and written beside it as Markdown.
Exits non-zero when Locust fails or more than --max-failure-ratio of the requests failed.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from markdown_it import MarkdownIt
from reviewlab_common.topology import Topology
from reviewlab_lab import runtimes
from reviewlab_lab.paths import REPO

from tests.load import serverside
from tests.load.names import READY

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
MAX_USERS = 2000
MAX_SECONDS = 3600
LOCUST = Path(sys.executable).with_name("locust")
UI_ADDRESS, UI_PORT = "127.0.0.1", 8089


def seconds_of(duration: str) -> int:
    """Locust's run time ("90", "90s", "5m", "1h30m") in seconds, bounded."""
    total, number = 0, ""
    for char in duration.strip().lower():
        if char.isdigit():
            number += char
        elif char in "hms" and number:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[char]
            number = ""
        else:
            raise argparse.ArgumentTypeError(f"a duration like 60s, 5m or 1h30m, not {duration!r}")
    total += int(number or 0)
    if not 1 <= total <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"keep the run between 1 s and {MAX_SECONDS} s")
    return total


def rows(stats_csv: Path) -> dict[str, dict[str, str]]:
    with open(stats_csv, newline="") as handle:
        return {row["Name"]: row for row in csv.DictReader(handle)}


def failure_ratio(stats: dict[str, dict[str, str]]) -> float:
    total = stats["Aggregated"]
    requests = int(total["Request Count"])
    return int(total["Failure Count"]) / requests if requests else 1.0


def ready_latency(stats: dict[str, dict[str, str]]) -> serverside.ReadyLatency | None:
    row = stats.get(READY)
    if row is None:
        return None
    return serverside.ReadyLatency(
        count=int(row["Request Count"]) - int(row["Failure Count"]),
        p50_ms=float(row["50%"]),
        p95_ms=float(row["95%"]),
        failures=int(row["Failure Count"]),
    )


# Close to the look of Locust's own report tables, so the server's side reads as part of it.
SERVER_SIDE_STYLE = """<style>
.server-side { margin: 2em; font-family: sans-serif; }
.server-side table { border-collapse: collapse; margin: 0.5em 0 1em; }
.server-side th, .server-side td { border: 1px solid #ccc; padding: 0.3em 0.8em; }
.server-side th { background: #f0f0f0; }
</style>"""


def server_side_html(markdown: str) -> str:
    """The server's side report (Markdown) as an HTML section: headings, tables and lists."""
    rendered = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return f'{SERVER_SIDE_STYLE}<section class="server-side">{rendered}</section>'


def add_to_html(report_html: Path, markdown: str) -> None:
    """The server's side at the end of Locust's own report, rendered in its page."""
    section = server_side_html(markdown)
    text = report_html.read_text()
    at = text.rfind("</body>")
    report_html.write_text(text[:at] + section + text[at:] if at >= 0 else text + section)


def vip_problem(vip: str) -> str | None:
    try:
        reply = httpx.get(f"{vip}/healthz", timeout=5)
    except httpx.HTTPError as exc:
        return f"{vip} did not answer ({exc})"
    return None if reply.status_code == 200 else f"{vip} answered {reply.status_code}"


def locust_argv(args: argparse.Namespace, vip: str, prefix: Path) -> list[str]:
    argv = [
        str(LOCUST),
        "-f",
        str(LOCUSTFILE),
        "--host",
        vip,
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.spawn),
        "--run-time",
        f"{args.duration}s",
        "--csv",
        str(prefix),
        "--html",
        f"{prefix}.html",
        "--only-summary",
        # The threshold below decides; Locust's own "any failure" exit is off.
        "--exit-code-on-error",
        "0",
        "--stop-timeout",
        "35",  # a shopper waiting for a cutout finishes its task
    ]
    if args.processes != 1:
        argv += ["--processes", str(args.processes)]
    return argv


def run(args: argparse.Namespace, topology: Topology) -> int:
    vip = topology.nodes[topology.services["www"]].host_url
    problem = vip_problem(vip)
    if problem:
        print(f"make load: the lab is not answering ({problem}); run `make up` first")
        return 2
    if args.ui:
        print(
            f"Locust's web UI: http://{UI_ADDRESS}:{UI_PORT} (shoppers against {vip}); Ctrl-C ends"
        )
        ui = [str(LOCUST), "-f", str(LOCUSTFILE), "--host", vip, "--web-host", UI_ADDRESS]
        ui += ["--web-port", str(UI_PORT), "--processes", str(args.processes)]
        env = {**os.environ, "PYTHONPATH": str(REPO), "LOAD_THINK_S": args.think}
        return subprocess.run(ui, env=env, check=False).returncode
    args.reports.mkdir(parents=True, exist_ok=True)
    prefix = args.reports / f"load-{time.strftime('%Y%m%d-%H%M%S')}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "LOAD_THINK_S": args.think}
    print(
        f"make load: {args.users} shoppers (spawn {args.spawn}/s) for {args.duration} s "
        f"against {vip}, {args.processes if args.processes > 0 else 'one per core'} processes",
        flush=True,
    )
    started = time.time()
    with serverside.Sampler(topology) as sampler:
        locust = subprocess.run(locust_argv(args, vip, prefix), env=env, check=False)
    window = time.time() - started
    stats_csv = Path(f"{prefix}_stats.csv")
    if not stats_csv.exists():
        print(f"make load: Locust wrote no statistics (exit {locust.returncode})")
        return locust.returncode or 1
    stats = rows(stats_csv)
    server = serverside.report(topology, window, sampler.samples, ready_latency(stats))
    server_md = Path(f"{prefix}_server.md")
    server_md.write_text(server)
    add_to_html(Path(f"{prefix}.html"), server)
    print()
    print(server)
    ratio = failure_ratio(stats)
    print(f"HTML report:     {prefix}.html")
    print(f"CSV statistics:  {stats_csv} (and _failures.csv, _exceptions.csv, _stats_history.csv)")
    print(f"server's side:   {server_md}")
    print(f"failure ratio:   {ratio:.2%} (threshold {args.max_failure_ratio:.2%})")
    if locust.returncode != 0:
        print(f"make load: Locust exited with {locust.returncode}")
        return locust.returncode
    return 1 if ratio > args.max_failure_ratio else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="concurrent shoppers (20)")
    parser.add_argument("--spawn", type=float, default=5, help="shoppers started per second (5)")
    parser.add_argument("--duration", type=seconds_of, default="60s", help="run time (60s)")
    parser.add_argument(
        "--processes", type=int, default=-1, help="Locust processes (-1: one per core)"
    )
    parser.add_argument("--think", default="1-4", help="think time, MIN-MAX seconds (1-4)")
    parser.add_argument(
        "--max-failure-ratio", type=float, default=0.01, help="exit 1 above it (0.01)"
    )
    parser.add_argument("--reports", type=Path, default=REPO / "reports")
    parser.add_argument("--ui", action="store_true", help=f"the web UI on {UI_ADDRESS}:{UI_PORT}")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= MAX_USERS:
        parser.error(f"--users: between 1 and {MAX_USERS}")
    return run(args, runtimes.activate())


if __name__ == "__main__":
    sys.exit(main())
