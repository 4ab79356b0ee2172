"""The run's report: goals met or not, a chart, outages, writes read back, timings, timeline.

Written as JSON, Markdown, an SVG chart beside them and an HTML page that embeds the chart.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from reviewlab_common.topology import Topology

from reviewlab_lab import lbstats, loadbalancer
from reviewlab_lab.chaos import chart, cleanup
from reviewlab_lab.chaos.goals import Second
from reviewlab_lab.chaos.load import LOAD_USER, Load, Outcome
from reviewlab_lab.chaos.watch import Event
from reviewlab_lab.errors import LabFailed
from reviewlab_lab.paths import REPO, LabPaths

# Where reports go: the checkout's reports/, or REVIEWLAB_REPORTS (a run the console starts
# runs as the lab's user, which may not write into the checkout).
REPORTS = Path(os.environ.get("REVIEWLAB_REPORTS") or REPO / "reports")
LAST = REPORTS / "chaos-last.json"
# How long the read-back waits for a shard to have a writable primary again.
READ_BACK_S = 60.0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3)


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch in [START, END] without a successful request."""
    return gap_bounds(times, start, end)[1] - gap_bounds(times, start, end)[0]


def gap_bounds(times: list[float], start: float, end: float) -> tuple[float, float]:
    """Where the longest stretch in [START, END] without a success begins and ends."""
    marks = [start, *sorted(t for t in times if start <= t <= end), end]
    begin, finish = max(itertools.pairwise(marks), key=lambda pair: pair[1] - pair[0])
    return round(begin, 2), round(finish, 2)


def per_cluster(outcomes: list[Outcome], fault_t: float, end_t: float) -> dict[str, Any]:
    """Each cluster's writes and reads: counts, failures, the longest write gap, p99."""
    result: dict[str, Any] = {}
    for cluster in sorted({o.shard for o in outcomes}):
        mine = [o for o in outcomes if o.shard == cluster]
        writes = [o for o in mine if o.kind == "write"]
        reads = [o for o in mine if o.kind == "read"]
        ok_writes = [o.at for o in writes if o.ok]
        result[cluster] = {
            "writes_ok": sum(o.ok for o in writes),
            "writes_failed": sum(not o.ok for o in writes),
            "reads_ok": sum(o.ok for o in reads),
            "reads_failed": sum(not o.ok for o in reads),
            "write_gap_s": round(longest_gap(ok_writes, fault_t, end_t), 2) if writes else None,
            # When the first write after that gap was acknowledged, in seconds after the fault.
            "writes_back_s": round(gap_bounds(ok_writes, fault_t, end_t)[1] - fault_t, 2)
            if any(not o.ok for o in writes)
            else None,
            "slowest_failure_s": _round(max((o.latency for o in mine if not o.ok), default=None)),
            "median_failure_s": _round(median([o.latency for o in mine if not o.ok])),
            "p99_s": p99([o.latency for o in mine]),
            "failure_statuses": sorted({o.status for o in mine if not o.ok}),
        }
    return result


def read_back(topology: Topology, load: Load) -> dict[str, Any]:
    """Every acknowledged write, looked up on its shard's current primary (deleted afterwards
    by cleanup.remove_run, also when the run is cut short)."""
    acked = {o.review_id: o for o in load.outcomes if o.kind != "read" and o.review_id}
    pattern = cleanup.like_prefix(load.body(""))

    def rows_of(conn: psycopg.Connection[Any]) -> list[tuple[int, str, int]]:
        found = conn.execute("SELECT id, body, user_id FROM reviews WHERE body LIKE %s", (pattern,))
        return [(int(r[0]), str(r[1]), int(r[2])) for r in found.fetchall()]

    stored: list[StoredRow] = []
    for cluster in topology.shards:
        try:
            rows = cleanup.on_primary(topology, cluster, rows_of, within=READ_BACK_S)
        except LabFailed as exc:
            raise LabFailed(f"could not read the writes back: {exc}") from exc
        stored += [StoredRow(cluster.name, review_id, body, user) for review_id, body, user in rows]
    return count_writes(acked, stored, load.outcomes)


@dataclass(frozen=True)
class StoredRow:
    """A row of the run as a shard's primary holds it."""

    shard: str
    review_id: int
    body: str
    user_id: int = LOAD_USER


def count_writes(
    acked: dict[int, Outcome], stored: list[StoredRow], outcomes: list[Outcome]
) -> dict[str, Any]:
    """What the shards hold against what the clients were told.

    A duplicate is a second review for one write (its body carries the write's key): another
    id with the same body, by the load's user. The same id on two shards is not a second
    review but a row on a shard that does not own its bucket (a copy); it is counted apart.
    So are rows another user posted with a body of the run: a fuzzer running at the same time
    reads the shop's newest reviews and posts their bodies again as its own (schemathesis
    did, as alex: 31 rows with 14 of a load's bodies in 40 s), which is not a double write.
    """
    ids_of: dict[str, set[int]] = {}
    shards_of: dict[int, set[str]] = {}
    others = [row for row in stored if row.user_id != LOAD_USER]
    for row in stored:
        if row.user_id != LOAD_USER:
            continue
        ids_of.setdefault(row.body, set()).add(row.review_id)
        shards_of.setdefault(row.review_id, set()).add(row.shard)
    found = set(shards_of)
    lost = sorted(set(acked) - found)
    doubled = {body: ids for body, ids in ids_of.items() if len(ids) > 1}
    return {
        "acknowledged": len(acked),
        "lost": len(lost),
        "lost_ids": lost[:20],
        "lost_at_s": [round(acked[i].at, 2) for i in lost[:20]],
        "duplicates": sum(len(ids) - 1 for ids in doubled.values()),
        # Which writes were doubled, for a report that has any: the body and every id it got.
        "duplicate_examples": [
            {"body": body, "ids": [str(i) for i in sorted(ids)]}
            for body, ids in sorted(doubled.items())[:5]
        ],
        "on_two_shards": sum(len(s) > 1 for s in shards_of.values()),
        "posted_by_others": len(others),
        # Rows the client never saw acknowledged (its request failed or timed out, yet the
        # write was kept): a retry with the same key replays them instead of writing again.
        "kept_unacknowledged": len(found - set(acked)),
        "retried_keys": len({o.key for o in outcomes if o.kind == "write" and not o.ok}),
    }


def first(events: list[Event], kind: str, *, node: str = "", cluster: str = "") -> float | None:
    for event in events:
        if event.at < 0 or event.kind != kind:
            continue
        if node and event.node != node:
            continue
        if cluster and not event.what.startswith(f"{cluster}:") and cluster not in event.what:
            continue
        return event.at
    return None


def timings(events: list[Event], target: str, cluster: str | None) -> dict[str, float | None]:
    """Seconds from the fault to each thing that noticed it, the promotion, the DNS updates."""
    found: dict[str, float | None] = {
        # A web server's read router ejected the target (a failed connect or a timeout).
        "router_ejected_s": first(events, "ejected", node=target),
        # Patroni's view of the target changed (stopped, or its key expired after ttl).
        "patroni_noticed_s": first(events, "detected", node=target),
        # The DNS node's watch dropped it from replicas.<cluster>, and put it back.
        "dns_replicas_dropped_s": first(events, "dns_dropped", node=target),
        "dns_replicas_back_s": first(events, "dns_back", node=target),
        "role_changes": sum(e.kind in ("promoted", "demoted") for e in events if e.at >= 0),
        # Another load balancer answered on the vIP (the watcher looks every 0.5 s).
        "vip_moved_s": next(
            (e.at for e in events if e.kind == "vip" and e.node and e.at >= 0), None
        ),
        **split_brain(events),
    }
    if cluster:
        found["promote_s"] = first(events, "promoted", cluster=cluster)
        found["dns_update_s"] = first(events, "dns", cluster=f"primary.{cluster}")
        rejoined = [e.at for e in events if e.node == target and e.kind == "rejoined" and e.at >= 0]
        found["rejoined_s"] = rejoined[-1] if rejoined else None
    return found


def split_brain(events: list[Event]) -> dict[str, float | None]:
    """When two load balancers first carried the vIP at once, and for how long (until one
    alone did); None where it did not happen."""
    carried = [(e.at, len(e.node.split(",")) if e.node else 0) for e in events
               if e.kind == "carriers" and e.at >= 0]  # fmt: skip
    began = next((at for at, count in carried if count > 1), None)
    ended = next((at for at, count in carried if began is not None and at > began and count == 1),
                 None)  # fmt: skip
    return {
        "split_brain_s": began,
        "split_brain_for_s": None if began is None or ended is None else round(ended - began, 2),
    }


def lb_retries(topology: Topology, since_epoch: float) -> int | None:
    """Requests of the run that nginx moved on to another web server after a failure, from the
    vIP's access log (as `reviewlab lb stats` reads it); None without a log to read."""
    log = loadbalancer.access_log(LabPaths.of(topology))
    if not log.exists():
        return None
    entries = lbstats.read(log, since=time.time() - since_epoch)
    return sum(1 for e in entries if e.attempts > 1)


def touched(events: list[Event], topology: Topology, target: str) -> list[Event]:
    """The events of the clusters the fault touched (the target's), and of non-cluster nodes."""
    cluster = topology.nodes[target].cluster if target in topology.nodes else None
    members = {m.name for m in topology.clusters[cluster].members} if cluster else {target}
    others = [c for c in topology.clusters if c != cluster]
    keep = []
    for event in events:
        node = topology.nodes.get(event.node)
        about_other = any(event.what.startswith(f"{c}:") or f".{c} " in event.what for c in others)
        if event.node in members or (node is not None and node.cluster is None) or not about_other:
            keep.append(event)
    return keep


def write(report: dict[str, Any]) -> Path:
    """Write the report as JSON, Markdown, an SVG chart and HTML; return the Markdown's path."""
    REPORTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = REPORTS / f"chaos-{stamp}-{report['scenario']}"
    svg_path = base.with_suffix(".svg")
    report["chart"] = svg_path.name
    text = json.dumps(report, indent=2)
    base.with_suffix(".json").write_text(text)
    LAST.write_text(text)
    seconds = [Second(**s) for s in report.get("series", [])]
    picture = chart.svg(
        f"{report['scenario']} on {report['target']}", seconds, (0.0, float(report["fault_s"]))
    )
    svg_path.write_text(picture)
    markdown = base.with_suffix(".md")
    markdown.write_text(as_markdown(report))
    base.with_suffix(".html").write_text(as_html(report, picture))
    return markdown


def shown(value: object) -> str:
    """A report value: '-' when it did not happen."""
    return "-" if value is None else str(value)


def last() -> dict[str, Any]:
    if not LAST.exists():
        raise LabFailed(
            "no chaos report yet: run `reviewlab chaos run replica-kill` (or `make chaos`)"
        )
    data: dict[str, Any] = json.loads(LAST.read_text())
    return data


def as_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Chaos run: {report['scenario']} on {report['target']}",
        "",
        f"{report['about']}",
        "",
        f"- started: {report['started']}, runtime {report['runtime']}, load "
        f"{report['load']['writers']} writers + {report['load']['readers']} readers",
        f"- fault lasted {report['fault_s']} s; the run lasted {report['run_s']} s",
        "",
        "## Goals",
        "",
        "| goal | target | measured | met |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {g['what']} | {g['target']} | {g['measured']} | {'yes' if g['met'] else '**NO**'} |"
        for g in report.get("goals", [])
    ]
    lines += [
        "",
        f"![throughput and p99 over time]({report.get('chart', '')})",
        "",
        "## Acknowledged writes",
        "",
    ]
    verdict = report["writes"]
    lines += [
        f"- acknowledged: {verdict['acknowledged']}, **lost: {verdict['lost']}**, "
        f"duplicates: {verdict['duplicates']}, keys retried: {verdict['retried_keys']}, "
        f"kept though unacknowledged: {shown(verdict.get('kept_unacknowledged'))}, "
        f"on two shards: {shown(verdict.get('on_two_shards'))}, "
        f"bodies of the run posted by other users: {shown(verdict.get('posted_by_others'))}",
        *(
            f"- doubled: `{d['body']}` as ids {', '.join(d['ids'])}"
            for d in verdict.get("duplicate_examples", [])
        ),
        "",
        "## Per cluster",
        "",
        "| cluster | writes ok | writes failed | longest write gap (s) | writes back at (s) "
        "| reads ok | reads failed "
        "| median / slowest failure (s) | p99 (s) | failure statuses |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in report["clusters"].items():
        lines.append(
            f"| {name} | {c['writes_ok']} | {c['writes_failed']} | {shown(c['write_gap_s'])} "
            f"| {shown(c.get('writes_back_s'))} "
            f"| {c['reads_ok']} | {c['reads_failed']} "
            f"| {shown(c.get('median_failure_s'))} / {shown(c['slowest_failure_s'])} "
            f"| {shown(c['p99_s'])} "
            f"| {' '.join(map(str, c['failure_statuses']))} |"
        )
    jobs = report.get("photo_jobs")
    if jobs:
        lines += ["", "## Photo jobs", "", "- " + ", ".join(f"{k}: {v}" for k, v in jobs.items())]
    lines += ["", "## Timings (seconds after the fault)", ""]
    lines += [f"- {k}: {shown(v)}" for k, v in report["timings"].items()]
    retried = report.get("lb_retries")
    if retried is not None:
        lines += [
            "",
            "## The vIP",
            "",
            f"- requests nginx retried on another web server: {retried}",
        ]
    scope = "every cluster" if report.get("all_events") else "the clusters the fault touched"
    lines += ["", f"## Timeline ({scope})", "", "| t (s) | event |", "|---|---|"]
    lines += [f"| {e['at']:+.2f} | {e['what']} |" for e in report["events"]]
    return "\n".join(lines) + "\n"


def as_html(report: dict[str, Any], picture: str) -> str:
    """A page with the goals, the chart inline and the whole Markdown report."""
    rows = "".join(
        f"<tr><td>{html.escape(g['what'])}</td><td>{html.escape(g['target'])}</td>"
        f"<td>{html.escape(g['measured'])}</td>"
        f"<td style='color:{'green' if g['met'] else 'red'}'>{'met' if g['met'] else 'NOT met'}"
        "</td></tr>"
        for g in report.get("goals", [])
    )
    title = html.escape(f"Chaos run: {report['scenario']} on {report['target']}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{border:1px solid #ccc;padding:4px 8px}table{border-collapse:collapse}</style>"
        f"</head><body><h1>{title}</h1><p>{html.escape(report['about'])}</p>"
        f"<h2>Goals</h2><table><tr><th>goal</th><th>target</th><th>measured</th><th></th></tr>"
        f"{rows}</table><h2>Throughput and p99</h2>{picture}"
        f"<h2>The whole report</h2><pre>{html.escape(as_markdown(report))}</pre></body></html>\n"
    )


def events_json(events: list[Event]) -> list[dict[str, Any]]:
    return [asdict(e) for e in events]
