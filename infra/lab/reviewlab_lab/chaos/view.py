"""The live view: traffic, each cluster's roles and lag, DNS, the vIP's backends, events."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from reviewlab_lab.chaos.load import Outcome
from reviewlab_lab.chaos.report import p99
from reviewlab_lab.chaos.watch import Event, Look

WINDOW_S = 1.0
SHOWN_EVENTS = 12


def traffic(outcomes: list[Outcome], now: float) -> Table:
    table = Table(title="traffic through the vIP (last second)", expand=True)
    for column in ("", "ok/s", "failed/s", "p99 ms"):
        table.add_column(column, justify="right" if column else "left")
    recent = [o for o in outcomes if now - WINDOW_S <= o.at <= now]
    for kind in ("write", "read"):
        mine = [o for o in recent if o.kind == kind]
        failed = sum(not o.ok for o in mine)
        worst = p99([o.latency for o in mine])
        table.add_row(
            kind + "s",
            str(len(mine) - failed),
            Text(str(failed), style="bold red" if failed else ""),
            "-" if worst is None else f"{worst * 1000:.0f}",
        )
    return table


def clusters(look: Look) -> Table:
    table = Table(title="Patroni clusters and DNS", expand=True)
    for column in ("cluster", "members (role state lag)", "DNS primary.<cluster>"):
        table.add_column(column)
    for name, members in look.clusters.items():
        shown = []
        for member, m in sorted(members.items()):
            role = {"leader": "PRIMARY", "sync_standby": "sync"}.get(m.role, m.role)
            lag = "" if m.lag is None else f" lag {m.lag}"
            shown.append(f"{member} {role} {m.state}{lag}")
        table.add_row(
            name, "\n".join(shown) or "[red]no member answers[/red]", look.dns_primary[name]
        )
    return table


def backends(look: Look) -> Table:
    table = Table(title="vIP backends", expand=True)
    for web in look.webs_ready:
        table.add_column(web)
    table.add_row(
        *("[green]ready[/green]" if ok else "[red]out[/red]" for ok in look.webs_ready.values())
    )
    return table


def timeline(events: list[Event]) -> Table:
    table = Table(title="events (seconds after the fault)", expand=True)
    table.add_column("t", justify="right", width=8)
    table.add_column("event")
    for event in events[-SHOWN_EVENTS:]:
        table.add_row(f"{event.at:+.1f}", event.what)
    return table


def render(
    title: str,
    phase: str,
    outcomes: list[Outcome],
    now: float,
    look: Look | None,
    events: list[Event],
) -> Group:
    parts: list[object] = [Text(f"{title}: {phase}", style="bold"), traffic(outcomes, now)]
    if look is not None:
        parts += [clusters(look), backends(look)]
    parts.append(timeline(events))
    return Group(*parts)  # type: ignore[arg-type]
