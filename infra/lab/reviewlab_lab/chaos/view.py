"""The live view, sized for an 80x24 terminal: traffic with sparklines over the run, each
cluster's members as they really are (the runtime's state first, then Patroni's), its
primary.<cluster> and replicas.<cluster> records, the vIP's backends and the latest events.

Everything is one line per item, cut to the terminal's width; the events fill what is left.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text

from reviewlab_lab.chaos.load import Outcome
from reviewlab_lab.chaos.report import p99
from reviewlab_lab.chaos.watch import Event, Look

WINDOW_S = 1.0
SPARK_S = 25  # the sparklines' last seconds
WIDTH, HEIGHT = 80, 24  # the smallest terminal the view is made for
BARS = "▁▂▃▄▅▆▇█"
SHORT_ROLE = {"leader": "P", "sync_standby": "sync", "replica": "repl"}


def sparkline(values: list[float | None]) -> str:
    top = max((v for v in values if v is not None), default=0.0) or 1.0
    return "".join(
        " " if v is None else BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1)))]
        for v in values
    )


def _per_second(
    outcomes: list[Outcome], kind: str, now: float
) -> tuple[list[float], list[float | None]]:
    rates: list[float] = []
    worst: list[float | None] = []
    for second in range(SPARK_S, 0, -1):
        since = now - second
        mine = [o for o in outcomes if since <= o.at < since + 1 and o.kind == kind and o.ok]
        rates.append(float(len(mine)))
        found = p99([o.latency for o in mine])
        worst.append(None if found is None else found * 1000)
    return rates, worst


def traffic(outcomes: list[Outcome], now: float) -> list[Text]:
    lines = [
        Text(
            f"{'':6}{'ok/s':>5}{'fail/s':>7}{'p99ms':>6}  ok/s, last {SPARK_S} s"
            f"{'':3}p99, last {SPARK_S} s",
            style="dim",
        )
    ]
    recent = [o for o in outcomes if now - WINDOW_S <= o.at <= now]
    for kind in ("write", "read"):
        mine = [o for o in recent if o.kind == kind]
        failed = sum(not o.ok for o in mine)
        worst = p99([o.latency for o in mine])
        rates, p99s = _per_second(outcomes, kind, now)
        line = Text(f"{kind + 's':<6}{len(mine) - failed:>5}")
        line.append(f"{failed:>7}", style="bold red" if failed else "")
        line.append(f"{'-' if worst is None else f'{worst * 1000:.0f}':>6}  ")
        line.append(sparkline(list(rates)), style="green")
        line.append(" ")
        line.append(sparkline(p99s), style="red")
        lines.append(line)
    return lines


def member_state(look: Look, name: str, state: str) -> str:
    """What the member really is: stopped/paused per the runtime beats Patroni's last word."""
    runtime_state = look.nodes.get(name, "running")
    return state if runtime_state == "running" else runtime_state.upper()


def clusters(look: Look) -> list[Text]:
    lines = []
    for name, members in look.clusters.items():
        shown = []
        for member, m in sorted(members.items()):
            role = SHORT_ROLE.get(m.role, m.role)
            state = member_state(look, member, m.state)
            lag = f" {m.lag}" if m.lag and state == m.state else ""
            shown.append(f"{member.rsplit('-', 1)[-1]} {role} {state}{lag}")
        line = Text(f"{name:<10}", style="bold")
        line.append(
            ", ".join(shown) if shown else "no member answers", style="" if shown else "red"
        )
        lines.append(line)
        replicas = look.dns_replicas.get(name, [])
        lines.append(
            Text(
                f"{'':10}DNS primary {look.dns_primary.get(name, '?')}  replicas "
                + (" ".join(replicas) or "(none)"),
                style="cyan",
            )
        )
    return lines


def backends(look: Look) -> Text:
    line = Text("vIP backends: ")
    for web, ok in look.webs_ready.items():
        line.append(f"{web} ")
        line.append("ready  " if ok else "OUT  ", style="green" if ok else "bold red")
    return line


def render(
    title: str,
    phase: str,
    outcomes: list[Outcome],
    now: float,
    look: Look | None,
    events: list[Event],
    height: int = HEIGHT,
    width: int = WIDTH,
) -> Group:
    lines: list[Text] = [Text(f"{title}: {phase}", style="bold"), *traffic(outcomes, now)]
    if width < WIDTH or height < HEIGHT:
        lines.insert(0, Text(f"the view needs {WIDTH}x{HEIGHT}; this terminal is {width}x{height}"))
    if look is not None:
        lines += [*clusters(look), backends(look)]
    room = max(1, height - len(lines) - 1)
    lines.append(Text("events (s after the fault):", style="dim"))
    lines += [Text(f"{e.at:+7.1f} {e.what}") for e in events[-(room - 1) :]] if room > 1 else []
    for line in lines:
        line.no_wrap = True
        line.overflow = "ellipsis"
    return Group(*lines[:height])
