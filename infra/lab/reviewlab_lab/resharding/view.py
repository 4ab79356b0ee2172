"""A move, live (rich) and as a report like the chaos runs' (Markdown and JSON in reports/)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from reviewlab_common.topology import Topology
from rich.console import Console
from rich.live import Live
from rich.table import Table

from reviewlab_lab.chaos.report import REPORTS
from reviewlab_lab.resharding import webtier
from reviewlab_lab.resharding.mover import Progress

LAST = REPORTS / "shard-move-last.json"


def p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class MoveView:
    """Redraws the progress twice a second in a thread; also counts requests served."""

    def __init__(self, topology: Topology, progress: Progress, live: bool) -> None:
        self.topology = topology
        self.progress = progress
        self.live = live
        self.started = time.monotonic()
        self.served_before = webtier.requests_served(topology)
        self.served = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def table(self) -> Table:
        p = self.progress
        grid = Table(title="reviewlab shard move", show_header=False)
        rate = p.rows_copied / p.copy_s if p.copy_s else 0.0
        rows = [
            ("step", f"{p.step}/{p.steps}: {p.phase}"),
            ("rows copied", f"{p.rows_copied} ({rate:,.0f} rows/s)"),
            ("changes replayed", str(p.changes_replayed)),
            ("catch-up lag", f"{p.lag} changes waiting"),
            ("write freezes", ", ".join(f"{f:.3f} s" for f in p.freezes) or "-"),
            ("requests served", str(self.served)),
            ("elapsed", f"{time.monotonic() - self.started:.1f} s"),
        ]
        for key, value in rows:
            grid.add_row(key, value)
        for line in p.notes[-4:]:
            grid.add_row("", line)
        return grid

    def _count(self) -> None:
        self.served = max(0, webtier.requests_served(self.topology) - self.served_before)

    def __enter__(self) -> MoveView:
        if self.live:
            self._thread = threading.Thread(target=self._draw, daemon=True, name="move-view")
            self._thread.start()
        return self

    def _draw(self) -> None:
        with Live(self.table(), console=Console(), refresh_per_second=4) as screen:
            while not self._stop.wait(0.5):
                self._count()
                screen.update(self.table())
            screen.update(self.table())

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._count()


def report(
    progress: Progress,
    *,
    move_id: str,
    target: str,
    outcome: str,
    served: int,
    seconds: float,
    steps: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "move": move_id,
        "target": target,
        "outcome": outcome,
        "seconds": round(seconds, 2),
        "rows_copied": progress.rows_copied,
        "rows_per_s": round(progress.rows_copied / progress.copy_s) if progress.copy_s else None,
        "changes_replayed": progress.changes_replayed,
        "freezes_s": progress.freezes,
        "freeze_max_s": max(progress.freezes, default=None),
        "freeze_p99_s": p99(progress.freezes),
        "requests_served": served,
        "retries": progress.retries,
        "steps": steps,
        "notes": progress.notes,
    }


def write(result: dict[str, Any]) -> Path:
    REPORTS.mkdir(exist_ok=True)
    base = REPORTS / f"shard-move-{time.strftime('%Y%m%d-%H%M%S')}"
    text = json.dumps(result, indent=2)
    base.with_suffix(".json").write_text(text)
    LAST.write_text(text)
    path = base.with_suffix(".md")
    path.write_text(as_markdown(result))
    return path


def as_markdown(result: dict[str, Any]) -> str:
    def shown(value: object) -> str:
        return "-" if value is None else str(value)

    lines = [
        f"# Shard move {result['move']} to {result['target']}: {result['outcome']}",
        "",
        f"{result['seconds']} s; {result['rows_copied']} rows copied "
        f"({shown(result['rows_per_s'])} rows/s), {result['changes_replayed']} changes "
        f"replayed, {result['requests_served']} requests served meanwhile, "
        f"{result['retries']} retries.",
        "",
        f"Write freeze per step: max {shown(result['freeze_max_s'])} s, "
        f"p99 {shown(result['freeze_p99_s'])} s.",
        "",
        "| step | from | buckets | rows | replayed | freeze (s) | phase | verified |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, step in enumerate(result["steps"], 1):
        buckets = step["buckets"]
        span = f"{buckets[0]}-{buckets[-1]} ({len(buckets)})" if buckets else "-"
        verified = step.get("verified") or {}
        checked = (
            f"{verified.get('reviews')} reviews, {verified.get('votes')} votes" if verified else "-"
        )
        lines.append(
            f"| {number} | {step['source']} | {span} | {step['rows_copied']} | "
            f"{step['changes_replayed']} | {shown(step['freeze_s'])} | {step['phase']} | "
            f"{checked} |"
        )
    parts = [s.get("freeze_parts_ms") for s in result["steps"] if s.get("freeze_parts_ms")]
    if parts:
        lines += ["", "Where each freeze went (ms):", ""]
        for number, part in enumerate(parts, 1):
            lines.append(f"- step {number}: " + ", ".join(f"{k} {v}" for k, v in part.items()))
    if result["notes"]:
        lines += ["", *[f"- {note}" for note in result["notes"]]]
    return "\n".join(lines) + "\n"
